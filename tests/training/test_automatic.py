"""The automatic path is the tested path: each technique launched through the wizard's services with no
Technique setting changed (the parameters form posted as the page shows it, the training form with
only its method), trained by the real Celery worker, and its result checked from the outside: plain
transformers + PEFT load the artifact, answer the demo's 50 held-out reverse prompts greedily, and
workers.training.graders.exact_match grades them (no Atelier code besides the graders). The test uploads a
subset of the demo rows, as a person may; the automatic plan scales with the rows. Nothing here sets a
learning rate, steps, epochs, temperature or any other Technique value.

Measured on 2 shared cores (bench/results/hparams_sweep.json has the sweep behind the values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.datasets.services import dataset_upload
from apps.endpoints.forms import judge_endpoint_choices
from apps.endpoints.services import endpoint_deploy_builtin
from apps.jobs import wizard
from apps.jobs.models import Job, Status
from apps.jobs.services import job_create
from apps.secrets.services import key_choices
from tests.endpoints.conftest import wait_ready
from tests.harness import wait_for_job
from workers.training import tiny
from workers.training.graders import exact_match
from workers.training.hparams import resolve
from workers.training.spec import Training
from workers.training.techniques import REGISTRY, make_params

REVERSE = tiny.DEMO / "reverse"
TINY_PARAMS = 1_100_000


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# The plan, without training ----------------------------------------------------------------------------


def _plan(technique: str, rows: int, method: str = "lora", params: Any = None, n_params: int = TINY_PARAMS):
    return resolve(Training(method=method), technique=technique, n_params=n_params, n_rows=rows,
                   token_lengths=[30] * 10, context=256, bf16_supported=False, params=params)  # fmt: skip


def test_the_demo_sft_plan_is_three_epochs_and_early_stopping_ends_it():
    # 4,100 demo rows less the automatic 10% held out, three epochs in batches of 16. A shorter plan
    # (300 steps) ended its schedule before the task was learnt: 0.83 held-out, against 0.985 for these
    # (bench/results/early_stopping.json), which early stopping ends at the held-out sample's ceiling.
    plan = _plan("sft", 3690)
    assert (plan.max_steps, plan.epochs, plan.batch_size) == (692, 3.0, 16)
    assert _plan("sft", 400).epochs == 3.0
    assert _plan("sft", 20).epochs == 5.0  # at least 100 examples seen (OpenAI's rule)


def test_grpo_sampling_is_chosen_by_the_plan_and_the_person_still_wins():
    auto = make_params(REGISTRY["rlvr"], {})
    assert (auto.num_generations, auto.temperature, auto.beta) == (None, None, None)
    plan = _plan("rlvr", 200, params=auto)
    assert (plan.num_generations, plan.temperature, plan.kl_beta) == (
        8,
        0.7,
        0.0,
    )  # measured on the tiny model
    big = _plan("rlvr", 200, params=auto, n_params=7_000_000_000)
    assert (big.num_generations, big.temperature, big.kl_beta) == (8, 1.0, 0.0)  # TRL's GRPOConfig defaults
    # On the tiny model, two passes over the prompts, each answered num_generations times, in batches
    # of 32 answers (4 prompts a step: with 2, the reward moved with which words came up).
    assert (plan.batch_size, plan.epochs) == (32, 2.0)
    assert plan.max_steps == 200 * 2 * 8 // 32
    # The automatic LoRA rate that collapsed GRPO on the tiny model (3e-3) is not chosen again.
    assert plan.learning_rate <= 1e-3
    mine = _plan("rlvr", 200, params=make_params(REGISTRY["rlvr"], {"num_generations": 4, "beta": 0.1}))
    assert (mine.num_generations, mine.kl_beta, mine.max_steps) == (4, 0.1, 200 * 2 * 4 // 32)
    # A larger prompt file: one pass once it holds 400 prompts (the demo's 3,690: 922 steps).
    assert (_plan("rlvr", 300, params=auto).epochs, _plan("rlvr", 3690, params=auto).epochs) == (1.333, 1.0)
    assert _plan("rlvr", 3690, params=auto).max_steps == 3690 * 8 // 32 + 1
    # Larger models: one pass, TRL's batch of 8 (accumulated to 16 answers).
    assert (big.epochs, big.batch_size * big.gradient_accumulation, big.max_steps) == (1.0, 16, 200 * 8 // 16)
    assert _plan("sft", 200).num_generations is None


def test_larger_models_get_the_documented_starting_points():
    big = 7_000_000_000
    assert _plan("sft", 10_000, n_params=big).learning_rate == 2e-4  # Unsloth's LoRA guide
    assert _plan("sft", 10_000, method="full", n_params=big).learning_rate == 2e-5  # TRL's SFTConfig
    assert _plan("dpo", 10_000, n_params=big).learning_rate == 5e-6  # LLaMA-Factory's LoRA DPO example
    assert _plan("rlvr", 10_000, method="full", n_params=big).learning_rate == 1e-6  # TRL's GRPOConfig
    # OpenAI's automatic epochs: at most 25,000 examples seen, at least one epoch.
    assert _plan("sft", 100_000, n_params=big).epochs == 1.0
    assert _plan("sft", 20, n_params=big).epochs == 5.0


# The wizard, the worker, and the outside check ---------------------------------------------------------


def _as_posted(form_class: type, prefix: str, shown: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a browser posts for a form left as the page shows it: each field's initial value (`shown`:
    what the page fills in itself, such as the deployed built-in judge)."""
    form = form_class(prefix=prefix, initial=shown)
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        key = form.add_prefix(name)
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        elif isinstance(value, list | tuple):
            data[key] = list(value)
        elif isinstance(value, dict):
            data[key] = json.dumps(value)
        elif value not in (None, ""):
            data[key] = str(value)
    return data


def _launch(
    project, user, technique: str, rows: list[dict[str, Any]], shown: dict[str, Any] | None = None
) -> Job:
    """The wizard's steps as its views run them, changing nothing on the Technique step (`shown`: what the
    step fills in itself)."""
    draft = wizard.draft_for(project=project, user=user)
    wizard.draft_save(draft, **wizard.model_choose(project=project, user=user, source="partial"))
    upload = SimpleUploadedFile(f"{technique}.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    dataset = dataset_upload(project=project, user=user, upload=upload)
    source = wizard.dataset_source(project, f"dataset:{dataset.pk}")
    held_out = wizard.dataset_source(project, "demo:reverse/eval.jsonl")["path"]
    wizard.draft_save(draft, dataset_key=f"dataset:{dataset.pk}", dataset=source["path"], dataset_label=source["label"],
                      column_map={}, drop_bad=False, eval_choice="file", eval_dataset=held_out)  # fmt: skip
    form_class = wizard.params_form_class(
        technique, key_choices(project=project), judge_endpoint_choices(project_id=project.pk)
    )
    params_form = form_class(_as_posted(form_class, "p", shown), prefix="p")
    training_form = wizard.TrainingForm(_as_posted(wizard.TrainingForm, "t"), prefix="t")
    assert params_form.is_valid(), params_form.errors
    assert training_form.is_valid(), training_form.errors
    wizard.draft_save(draft, technique=technique, params=wizard.clean_params(technique, params_form),
                      training=training_form.cleaned_data, resilience=None)  # fmt: skip
    estimate = wizard.review(draft)
    spec = wizard.materialize(draft)
    assert not {"learning_rate", "max_steps", "epochs"} & set(spec["training"])  # all automatic
    assert spec["training"]["method"] == "lora" and spec["training"]["early_stopping"]  # the page's defaults
    return job_create(project=project, user=user, name=f"automatic {technique}", spec=spec, estimate=estimate,
                      compute_class=estimate["estimate"]["compute_class"], auto_evaluate=False)  # fmt: skip


def _load(folder: Path) -> tuple[Any, Any]:
    """An adapter (on the base its adapter_config.json names) or a full model, by plain transformers + PEFT."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = folder / "adapter_config.json"
    if config.exists():
        from peft import PeftModel

        base = json.loads(config.read_text())["base_model_name_or_path"]
        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base), folder
        ).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer


def _exact_match(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    import torch

    texts = [
        tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    answers = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return sum(exact_match([a.strip() for a in answers], [r["answer"] for r in rows])) / len(rows)


def _near_misses(rows: list[dict[str, Any]]) -> list[tuple[list[dict[str, str]], str, str]]:
    """(prompt, right answer, the answer with its two middle letters swapped) for each held-out word."""
    pairs = []
    for row in rows:
        letters = row["answer"].split()
        i = len(letters) // 2
        near = [*letters[: i - 1], letters[i], letters[i - 1], *letters[i + 1 :]]
        if near != letters:
            pairs.append((row["prompt"], row["answer"], " ".join(near)))
    return pairs


def _logp(model: Any, tokenizer: Any, prompt: list[dict[str, str]], answer: str) -> float:
    """The log-probability of an answer to a chat prompt, through the model's chat template."""
    import torch

    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    start = len(tokenizer(head, add_special_tokens=False)["input_ids"])
    ids = torch.tensor([tokenizer(whole, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        scores = model(ids).logits[0, :-1].log_softmax(-1)
    return float(scores[start - 1 :].gather(1, ids[0, start:, None]).sum())


def _preference_accuracy(model: Any, tokenizer: Any, pairs: list[tuple[Any, str, str]]) -> float:
    """Share of pairs whose right answer the model finds likelier than the near miss."""
    return sum(
        _logp(model, tokenizer, p, right) > _logp(model, tokenizer, p, near) for p, right, near in pairs
    ) / len(pairs)


def _mean_logp(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    """The mean log-probability of the held-out rows' right answers."""
    return sum(_logp(model, tokenizer, r["prompt"], r["answer"]) for r in rows) / len(rows)


@pytest.fixture
def tiny_in_data_dir(settings, tiny_model):
    settings.DATA_DIR = tiny_model.parent.parent
    return tiny_model


@pytest.fixture
def held_out() -> list[dict[str, Any]]:
    return _rows(REVERSE / "eval.jsonl")


def _trained(job: Job) -> tuple[Job, Path]:
    job = wait_for_job(job, timeout=900)
    assert job.status == Status.SUCCEEDED, job.error or job.log_tail[-2000:]
    assert job.model_artifact
    return job, Path(job.model_artifact)


def _agrees(job: Job, start: float, after: float) -> None:
    """What the job page says (its before → after on the same 50 held-out rows) is what the outside
    check found, and its outcome follows from it."""
    assert job.result["heldout_rows"] == 50
    assert (job.result["heldout_before"], job.result["heldout_after"]) == (start, after)
    assert job.outcome != "worse", job.outcome_reason


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_automatic_lora_sft_from_the_partial_model_learns_the_task(
    alice, alice_project, tiny_in_data_dir, celery_trainer, held_out
):
    start = _exact_match(*_load(tiny_in_data_dir / "partial"), held_out)
    job, artifact = _trained(_launch(alice_project, alice, "sft", _rows(REVERSE / "sft.jsonl")[:1500]))
    after = _exact_match(*_load(artifact), held_out)
    assert start <= 0.5 and after >= 0.9, (start, after)
    _agrees(job, start, after)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_automatic_dpo_raises_preference_accuracy_and_keeps_the_task(
    alice, alice_project, tiny_in_data_dir, celery_trainer, held_out
):
    pairs = _near_misses(held_out)
    base = _load(tiny_in_data_dir / "partial")
    before = (_preference_accuracy(*base, pairs), _exact_match(*base, held_out))
    job, artifact = _trained(_launch(alice_project, alice, "dpo", _rows(REVERSE / "dpo.jsonl")))
    trained = _load(artifact)
    after = (_preference_accuracy(*trained, pairs), _exact_match(*trained, held_out))
    assert after[0] > before[0] and after[1] >= before[1], (before, after)
    _agrees(job, before[1], after[1])


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_automatic_kto_on_thumbs_up_and_down_raises_the_right_answers_likelihood_and_keeps_the_task(
    alice, alice_project, tiny_in_data_dir, celery_trainer, held_out
):
    """KTO on feedback as product logs hold it: each of 100 reverse-task pairs split into a thumbs-up row
    and a thumbs-down one (the trainer never sees them paired), every setting automatic. Measured on 2
    cores (AMD EPYC), one torch thread a process: the held-out right answers' mean log-probability -13.8 →
    -9.9, exact match 36% → 38% (38 steps, about 20 s)."""
    feedback = [
        row
        for pair in _rows(REVERSE / "dpo.jsonl")[:100]
        for row in (
            {"prompt": pair["prompt"], "completion": pair["chosen"], "label": True},
            {"prompt": pair["prompt"], "completion": pair["rejected"], "label": False},
        )
    ]
    base = _load(tiny_in_data_dir / "partial")
    before = (_mean_logp(*base, held_out), _exact_match(*base, held_out))
    job, artifact = _trained(_launch(alice_project, alice, "kto", feedback))
    trained = _load(artifact)
    after = (_mean_logp(*trained, held_out), _exact_match(*trained, held_out))
    assert after[0] > before[0] and after[1] >= before[1], (before, after)
    _agrees(job, before[1], after[1])


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_automatic_rlvr_from_the_partial_model_does_not_fall_below_its_start(
    alice, alice_project, tiny_in_data_dir, celery_trainer, held_out
):
    """Not below its start, for this seed: the held-out score rose in 3 of 3 seeds on an AMD EPYC
    (32% → 38-46%) but on an Intel Xeon went 36% → 36/32/40% (bench/grpo_plan.py), so "beats its start"
    held on one CPU only; whether the plan learns on every CPU is open (see the README)."""
    start = _exact_match(*_load(tiny_in_data_dir / "partial"), held_out)
    job, artifact = _trained(_launch(alice_project, alice, "rlvr", _rows(REVERSE / "rlvr.jsonl")[:200]))
    after = _exact_match(*_load(artifact), held_out)
    assert after >= start, (start, after)
    _agrees(job, start, after)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_automatic_rlaif_judged_by_the_built_in_judge_through_the_gateway_keeps_the_task(
    alice, alice_project, tiny_in_data_dir, celery_trainer, held_out, asgi_server, engine_supervisor
):
    """RLAIF as a person runs it here: the built-in judge deployed in one click, served by the built-in
    engine and asked through the gateway with the run's key (no stand-in), chosen on the Technique step
    as the step chooses it once deployed, every other setting automatic. Every answer of every step is
    scored by the judge, the judge's reward rises (its mean over the second half of the logged steps
    against the first) and the held-out exact match does not fall.

    Measured on 2 cores (AMD EPYC): reward 0.30 → 0.45, held-out 36% → 50% (best checkpoint, step 40;
    early stopping at 70 of 100); with the judge before its checks were marked (which passed answers
    wrong only in their last letter), reward 0.32 → 0.41 and held-out 32% → 36%. With the plan before
    (2 prompts a step) the reward fell (0.41 → 0.33): which words came up outweighed what was learnt
    (workers/training/hparams.py, GRPO_EPOCHS_TINY). On an Intel Xeon the rate then automatic (3e-4) fell
    to 26%; at 1e-4, the automatic rate since, 36% → 36% there."""
    judge = endpoint_deploy_builtin(project=alice_project, user=alice, variant="judge")
    wait_ready(judge.pk)
    start = _exact_match(*_load(tiny_in_data_dir / "partial"), held_out)
    prompts = [
        {"prompt": r["prompt"]} for r in _rows(REVERSE / "rlvr.jsonl")[:200]
    ]  # no answers: RLAIF's data
    job = _launch(alice_project, alice, "rlaif", prompts, shown={"judge_endpoint": str(judge.pk)})
    assert job.spec["params"]["judge_endpoint"] == str(judge.pk) and "judge_url" not in job.spec["params"]
    job, artifact = _trained(job)
    after = _exact_match(*_load(artifact), held_out)
    assert after >= start, (start, after)
    _agrees(job, start, after)
    rewards = [p["reward"] for p in job.metrics if "reward" in p]
    assert rewards and all(0 <= r <= 1 for r in rewards)
    assert sum(rewards) > 0  # parsed scores, not the zeros of a judge that holds none
    half = len(rewards) // 2
    first, second = sum(rewards[:half]) / half, sum(rewards[half:]) / (len(rewards) - half)
    assert second > first, (first, second, rewards)
    judge.refresh_from_db()
    trained = job.result["global_step"] * 32  # each step's 32 answers (4 prompts × 8), each asked once
    assert judge.requests >= trained, (judge.requests, trained)
