"""The GRPO guardrails on the numbers TRL logs (no model needed): each alarm starts once, after its
condition has held for a few logs, in words that say what to change."""

from __future__ import annotations

from workers.training.guardrails import RUN, Guardrails


def _log(reward: float = 0.4, **extra: float) -> dict[str, float]:
    return {"reward": reward, "reward_std": 0.3, "frac_reward_zero_std": 0.2, "completions/clipped_ratio": 0.0,
            "entropy": 1.0, "kl": 0.01, **extra}  # fmt: skip


def _codes(guards: Guardrails, logs: list[dict[str, float]], start: int = 1) -> list[tuple[int, str, str]]:
    found = []
    for step, log in enumerate(logs, start=start):
        found += [(step, a.code, a.level) for a in guards.on_log(step, log)]
    return found


def test_groups_without_reward_variance_are_reported_once_after_a_few_logs():
    guards = Guardrails(max_steps=100)
    alarms = _codes(guards, [_log()] * 2 + [_log(frac_reward_zero_std=0.95)] * 6)
    assert alarms == [(2 + RUN, "zero_variance", "warning")]
    alarm = guards.on_log(9, _log(frac_reward_zero_std=0.95))
    assert alarm == []  # still the same episode


def test_kl_running_away_and_entropy_collapsing_are_reported_with_what_to_change():
    guards = Guardrails(max_steps=100)
    logs = [_log()] * 2 + [_log(kl=2.5, entropy=0.05)] * RUN
    assert {code for _, code, _ in _codes(guards, logs)} == {"kl_runaway", "entropy_collapse"}
    guards = Guardrails(max_steps=100)
    alarms = [a for s, log in enumerate(logs, 1) for a in guards.on_log(s, log)]
    assert any("raise beta" in a.message for a in alarms)
    assert any("raise the" in a.message and "temperature" in a.message for a in alarms)


def test_answers_cut_off_at_the_length_limit_say_so_with_the_limit_and_what_to_change():
    guards = Guardrails(max_steps=100, max_completion_length=16)
    logs = [_log()] * 2 + [_log(**{"completions/clipped_ratio": 1.0})] * RUN
    assert _codes(guards, logs) == [(2 + RUN, "clipped", "warning")]
    guards = Guardrails(max_steps=100, max_completion_length=16)
    (alarm,) = [a for s, log in enumerate(logs, 1) for a in guards.on_log(s, log)]
    assert "cut off at the maximum length of 16 tokens" in alarm.message
    assert "lower the learning rate" in alarm.message


def test_a_reward_of_one_everywhere_says_there_is_nothing_left_to_learn():
    guards = Guardrails(max_steps=100)
    assert _codes(guards, [_log(reward=1.0, frac_reward_zero_std=1.0)] * RUN) == [
        (RUN, "reward_one", "warning")
    ]


def test_a_zero_reward_stops_the_run_only_when_it_has_been_zero_from_the_start_for_a_fifth_of_it():
    guards = Guardrails(max_steps=50)
    alarms = _codes(guards, [_log(reward=0.0)] * 10)
    assert (RUN, "reward_zero", "warning") in alarms and alarms[-1] == (10, "reward_zero", "stop")
    earned = Guardrails(max_steps=50)
    assert all(level != "stop" for *_, level in _codes(earned, [_log(reward=0.2)] + [_log(reward=0.0)] * 20))
    short = Guardrails(max_steps=4)  # a fifth of 4 steps is one log: a short run waits for RUN of them
    assert [level for *_, level in _codes(short, [_log(reward=0.0)] * RUN)][-1:] == ["stop"]
    assert all(
        level != "stop" for *_, level in _codes(Guardrails(max_steps=4), [_log(reward=0.0)] * (RUN - 1))
    )
    resumed = Guardrails(max_steps=50)  # a process resumed at step 30 never saw the first rewards
    assert all(level != "stop" for *_, level in _codes(resumed, [_log(reward=0.0)] * 10, start=30))


def test_the_held_out_score_falling_while_the_reward_rises_is_reported():
    guards = Guardrails(max_steps=100)
    _codes(guards, [_log(reward=r / 20) for r in range(20)])
    assert guards.on_heldout(0, 0.40) == []
    alarms = guards.on_heldout(20, 0.10)
    assert [a.code for a in alarms] == ["heldout_falling"]
    assert "learning to please the reward, not to do the task" in alarms[0].message
