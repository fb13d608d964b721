"""Run one job spec: load data and model, choose hyperparameters, train with the technique's TRL
trainer, save the adapter or model, and report everything as events. Failures a person can fix end in a
`failed` event whose message says what to change; nothing here imports Django."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.training import data as data_module
from workers.training import heldout, tracking
from workers.training.checkpoints import newest_complete, step_of
from workers.training.events import EventWriter
from workers.training.folder import Exit, JobFolder
from workers.training.guardrails import Guardrails, diverged
from workers.training.hparams import HParams, resolve
from workers.training.models import ModelError, load_model, load_tokenizer, training_base
from workers.training.spec import JobSpec, ModelRef, SpecError, Training

# No stop for lack of progress before half the planned steps: full SFT of the tiny base on the parity
# task sat at the majority label (53%) for its first 40 of 150 steps before learning the task.
MIN_PATIENCE_FRACTION = 1 / 2
# Checks in a row at 100% before a run stops at the ceiling. One was not enough: the 32-row sample of
# the demo SFT first reached 100% at step 420 of 692, where the 200 held-out rows scored 95%; the whole
# plan reached 98.5% (bench/results/early_stopping.json).
CEILING_CHECKS = 2


class StopRequest:
    """Set by SIGTERM; the callback then checkpoints at the end of the current step and stops."""

    requested = False


class TrainingError(RuntimeError):
    """A run that cannot go on, with a message a person understands."""


@dataclass
class Context:
    """What a technique's build function needs."""

    spec: JobSpec
    params: Any
    hparams: HParams
    model: Any
    tokenizer: Any
    train_rows: list[dict[str, Any]]
    callbacks: list[Any] = field(default_factory=list)

    def trainer_args(self) -> dict[str, Any]:
        h = self.hparams
        return {
            "output_dir": str(self.spec.folder.checkpoints),
            "max_steps": h.max_steps,
            "per_device_train_batch_size": h.batch_size,
            "gradient_accumulation_steps": h.gradient_accumulation,
            "learning_rate": h.learning_rate,
            "lr_scheduler_type": "cosine",
            "warmup_steps": max(1, h.max_steps // 20),
            "logging_steps": h.logging_steps,
            "save_strategy": "steps",
            "save_steps": h.save_steps,
            "save_total_limit": 2,
            "bf16": h.bf16,
            "seed": h.seed,
            "data_seed": h.seed,
            "report_to": "none",
            "gradient_checkpointing": False,
            "dataloader_num_workers": 0,
            "disable_tqdm": True,
            # Log a NaN loss as NaN (the default hides it behind earlier losses), so divergence is seen.
            "logging_nan_inf_filter": False,
        }

    def peft_config(self) -> Any:
        if self.hparams.method == "full":
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.hparams.lora_rank,
            lora_alpha=self.hparams.lora_alpha,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )

    def trainer_kwargs(self) -> dict[str, Any]:
        """What every TRL trainer takes besides its config (and, for GRPO, its rewards)."""
        return {
            "model": self.model,
            "train_dataset": self.dataset(self.train_rows),
            "processing_class": self.tokenizer,
            "peft_config": self.peft_config(),
            "callbacks": self.callbacks,
        }

    def dataset(self, rows: Any) -> Any:
        """The rows as TRL takes them: a datasets.Dataset (train_rows is one already: data.arrow_rows)."""
        from datasets import Dataset

        return rows if isinstance(rows, Dataset) else Dataset.from_list(rows)


def _token_lengths(tokenizer: Any, rows: list[dict[str, Any]]) -> list[int]:
    lengths = []
    for row in rows:
        if "messages" in row:
            text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        else:
            parts = []
            for key in ("prompt", "completion", "chosen"):
                value = row.get(key)
                if isinstance(value, list):
                    parts.append(tokenizer.apply_chat_template(value, tokenize=False))
                elif isinstance(value, str):
                    parts.append(value)
            text = "".join(parts)
        lengths.append(len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]))
    return lengths


def _params(spec: JobSpec) -> Any:
    from workers.training.techniques import REGISTRY, make_params

    return make_params(REGISTRY[spec.technique], spec.params) if spec.technique in REGISTRY else None


def rows_read(spec: JobSpec, n_rows: int, n_params: int) -> list[int] | None:
    """Which of the dataset's `n_rows` rows a run reads, when its steps read fewer than all of them (a
    40-step job on 200,000 rows reads 640): a sample drawn with the run's seed, in the file's order,
    so that a resumed run reads the same rows. None: every row (an epoch or more). Only these rows are
    tokenized, measured for the maximum length and handed to the trainer, so the wait before the first
    step does not grow with the dataset (bench/training.py --first-step). The trainer shuffles them as
    it would have shuffled all of them: a random part of one epoch either way."""
    import random

    plan = resolve(spec.training, technique=spec.technique, n_params=n_params, n_rows=n_rows, token_lengths=[],
                   context=2048, bf16_supported=False, params=_params(spec))  # fmt: skip
    # GRPO's batch holds answers, num_generations to a prompt (hparams.resolve).
    needed = math.ceil(
        plan.max_steps * plan.batch_size * plan.gradient_accumulation / (plan.num_generations or 1)
    )
    if needed >= n_rows:
        return None
    return sorted(random.Random(spec.training.seed).sample(range(n_rows), needed))


def pick(rows: Any, chosen: list[int] | None) -> Any:
    """The rows rows_read chose (a list's or a datasets.Dataset's)."""
    if chosen is None:
        return rows
    return rows.select(chosen) if hasattr(rows, "select") else [rows[i] for i in chosen]


def plan_hparams(
    spec: JobSpec,
    tokenizer: Any,
    rows: Any,
    n_params: int,
    config: Any,
    bf16: bool,
    n_rows: int | None = None,
) -> tuple[HParams, list[int]]:
    """The hyperparameters a spec gets on this model and data, with the token length of each row it
    reads. `rows`: the rows the run reads (rows_read's pick); `n_rows`: the dataset's rows, which set
    the steps (default: len(rows)). The technique's parameters count too: the GRPO answers a person sets
    per prompt set the steps."""
    lengths = _token_lengths(tokenizer, rows)
    hparams = resolve(
        spec.training,
        technique=spec.technique,
        n_params=n_params,
        n_rows=len(rows) if n_rows is None else n_rows,
        token_lengths=lengths,
        context=int(getattr(config, "max_position_embeddings", 2048) or 2048),
        bf16_supported=bf16,
        params=_params(spec),
    )
    return hparams, lengths


def _events_callback(events: EventWriter, output: Path, max_steps: int, tracker: Any = None) -> Any:
    from transformers import TrainerCallback

    class EventsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.first_step: int | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self.first_step is None:
                self.first_step, self.started = state.global_step, time.monotonic()
            if StopRequest.requested:
                control.should_save = True
                control.should_training_stop = True
            if JobFolder(output).cancel.exists():
                events.emit("cancelling", step=state.global_step)
                control.should_training_stop = True
            return control

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> Any:
            logs = dict(logs or {})
            bad = [
                k
                for k in ("loss", "grad_norm")
                if isinstance(logs.get(k), float) and not math.isfinite(logs[k])
            ]
            if bad:
                alarm = diverged(state.global_step, bad[0], logs[bad[0]])
                events.emit("guardrail", step=state.global_step, code=alarm.code, level=alarm.level,
                            message=alarm.message)  # fmt: skip
                raise TrainingError(alarm.message)
            done = state.global_step - (self.first_step or 0)
            elapsed = time.monotonic() - self.started
            eta = elapsed / done * (max_steps - state.global_step) if done > 0 else None
            events.emit("step", step=state.global_step, max_steps=max_steps, metrics=logs, eta_seconds=eta)
            if tracker is not None:
                tracker.log_step(logs, step=state.global_step)  # sent once a checkpoint covers it
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            # Called after the checkpoint is fully written: its steps will never be redone.
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if tracker is not None:
                tracker.checkpoint(state.global_step)
            events.emit("checkpoint", step=state.global_step, path=str(path))
            return control

    return EventsCallback()


def run(spec: JobSpec, events: EventWriter) -> dict[str, Any]:
    """Train; return the `finished` event. Raises TrainingError (and the data, model and spec errors)
    with messages for people; the CLI turns them into a `failed` event."""
    import torch

    from workers.training.techniques import REGISTRY, make_params

    if spec.technique not in REGISTRY:
        raise SpecError(f"Unknown technique “{spec.technique}”: choose one of {', '.join(REGISTRY)}.")
    technique = REGISTRY[spec.technique]
    params = make_params(technique, spec.params)
    spec.output.mkdir(parents=True, exist_ok=True)
    events.emit(
        "started",
        job_id=spec.job_id,
        technique=spec.technique,
        model=spec.model.name_or_path,
        pid=os.getpid(),
    )

    # The data checked first, in one streamed pass (a bad row stops the run before any model is loaded);
    # the rows themselves are read later, into an Arrow cache (data.arrow_rows), never a list.
    n_rows = data_module.check_file(
        spec.dataset, spec.technique, spec.column_map, data_format=spec.data_format
    )
    # The held-out selection the automatic evaluation scores too (heldout.select_rows), and the grader
    # that leads: before → after, the checks during training and the report's number are one function.
    eval_rows = (
        heldout.select_rows(spec.eval_dataset, spec.column_map, spec.training.eval_max_rows, spec.data_format)
        if spec.eval_dataset
        else []
    )
    # An earlier job's adapter: train from its merged full model (written once, in that job's folder), so
    # the adapter saved here names a base that every tool loads (workers/training/models.py).
    base = training_base(spec.model, scratch=spec.output / "base")
    names, options = heldout.graders_for(spec.technique, params)
    grader = heldout.first_usable(names, options, eval_rows)
    if grader is None:
        eval_rows = []
    scoring = Scoring(eval_rows, grader or "", options.get(grader or "", {}), spec.training)
    # Scored before the training model is loaded, loaded the way the evaluation loads it: the
    # evaluation's "base" number is this one exactly, and two copies never share the memory.
    before = None
    if eval_rows:
        scorer, scorer_tokenizer = heldout.load_for_scoring(base)
        before = scoring.full(scorer, scorer_tokenizer)
        del scorer
    tokenizer = load_tokenizer(base)
    # On a GPU a LoRA base is frozen in bf16; full fine-tuning keeps fp32 weights under bf16 autocast
    # (the Trainer's bf16=True). estimate.py assumes the same.
    bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    lora_on_gpu = spec.training.method == "lora" and bf16
    model = load_model(base, method=spec.training.method, dtype=torch.bfloat16 if lora_on_gpu else None)
    # num_parameters() counts a 4-bit (QLoRA) weight's packed uint8 storage as the weights it holds;
    # summing numel() there counts the quantized linear layers at half their size.
    n_params = model.num_parameters()
    # The rows the run reads, alone: converted, cached, measured and tokenized (rows_read).
    chosen = rows_read(spec, n_rows, n_params)
    wanted = None if chosen is None else set(chosen)  # check_file let no bad row through
    train_rows = data_module.arrow_rows(
        lambda: (
            data_module.for_model([row], tokenizer)[0]
            for row in data_module.good_rows(
                spec.dataset, spec.technique, spec.column_map, spec.data_format, only=wanted
            )
        ),
        spec.folder.rows_cache,
    )
    hparams, lengths = plan_hparams(spec, tokenizer, train_rows, n_params, model.config, bf16, n_rows=n_rows)
    numbers = chosen or range(len(lengths))
    too_long = [numbers[i] + 1 for i, n in enumerate(lengths) if n > hparams.max_length]
    if too_long:
        shown = ", ".join(map(str, too_long[:10])) + (" …" if len(too_long) > 10 else "")
        raise TrainingError(
            f"{len(too_long)} rows are longer than the maximum length of {hparams.max_length} tokens "
            f"(rows {shown}; the longest has {max(lengths)}). Raise the maximum length or shorten those rows."
        )
    events.emit("configured", hparams=asdict(hparams), parameters=n_params, rows=len(train_rows),
                dataset_rows=n_rows)  # fmt: skip

    tracker = None
    if spec.tracking.enabled:
        tracker, problem = tracking.start(
            tracking_uri=spec.tracking.tracking_uri,
            experiment=spec.tracking.experiment,
            run_name=spec.tracking.run_name or f"{spec.technique}-{spec.job_id}",
            output=spec.output,
            params={"spec": json.loads(spec.to_json()), "hparams": asdict(hparams), "parameters": n_params},
        )
        if problem:
            events.warning(problem)
    try:
        return _train(
            spec, events, technique, params, hparams, model, tokenizer, train_rows, scoring, before, tracker
        )
    except BaseException:
        if tracker is not None:
            tracker.fail()
        raise


def _train(
    spec: JobSpec,
    events: EventWriter,
    technique: Any,
    params: Any,
    hparams: HParams,
    model: Any,
    tokenizer: Any,
    train_rows: list[dict[str, Any]],
    scoring: Scoring,
    before: heldout.Score | None,
    tracker: Any,
) -> dict[str, Any]:
    import shutil

    resume = newest_complete(spec.folder.checkpoints)
    resume_step = (step_of(resume) or 0) if resume is not None else 0
    watch = Watch()
    guards = Guardrails(hparams.max_steps, getattr(params, "max_completion_length", None))
    callbacks = [_events_callback(events, spec.output, hparams.max_steps, tracker)]
    if scoring.rows and before is not None:
        callbacks.append(
            _convergence_callback(
                spec, events, hparams, scoring, before, tokenizer, guards, watch, tracker, resume_step
            )
        )
    else:
        _clear_best(spec.output)
    callbacks.append(_guardrails_callback(events, guards, watch))
    ctx = Context(
        spec=spec,
        params=params,
        hparams=hparams,
        model=model,
        tokenizer=tokenizer,
        train_rows=train_rows,
        callbacks=callbacks,
    )
    trainer = technique.build(ctx)
    if tracker is not None:
        tracker.resumed(resume_step)
    if resume is not None:
        events.emit("resumed", step=step_of(resume), path=str(resume))
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if StopRequest.requested:
        saved = newest_complete(spec.folder.checkpoints)
        raise Interrupted((step_of(saved) or 0) if saved is not None else 0)
    kind = "model" if hparams.method == "full" else "adapter"
    artifact = spec.folder.artifact(kind)
    if artifact.exists():
        shutil.rmtree(artifact)
    best = _best(spec.output) if spec.training.early_stopping else None
    if best is not None:
        # The result is the best checkpoint by the held-out sample, not the last one.
        shutil.copytree(spec.folder.best, artifact, ignore=shutil.ignore_patterns("best.json"))
    else:
        trainer.model.save_pretrained(artifact, safe_serialization=True)
        tokenizer.save_pretrained(artifact)
    del trainer, ctx, model
    after = None
    if before is not None:
        import gc

        gc.collect()
        scorer, scorer_tokenizer = heldout.load_for_scoring(ModelRef(str(artifact)))
        after = scoring.full(scorer, scorer_tokenizer)
        del scorer
    verdict, reason = heldout.verdict(before, after)
    metrics = {
        "train_loss": result.training_loss,
        "global_step": result.global_step,
        "heldout_before": before.mean if before else None,
        "heldout_after": after.mean if after else None,
        "heldout_interval_before": before.interval if before else None,
        "heldout_interval_after": after.interval if after else None,
        "heldout_grader": before.label if before else None,
        "heldout_rows": before.n if before else 0,
        "best_step": best[0] if best is not None else None,
        "stopped_early": watch.stopped_early,
        "verdict": verdict,
        "verdict_reason": reason,
    }
    mlflow_info = None
    if tracker is not None:
        mlflow_info = tracker.finish(
            artifact=artifact, kind=kind, register_as=spec.tracking.register_as, metrics=metrics
        )
    return events.emit(
        "finished",
        artifacts={kind: str(artifact)},
        metrics=metrics,
        mlflow=mlflow_info,
        cancelled=spec.folder.cancel.exists(),
    )


@dataclass
class Scoring:
    """The held-out rows of a run, the grader that leads and the training spec's scoring settings."""

    rows: list[dict[str, Any]]
    grader: str
    options: dict[str, Any]
    training: Training

    def full(self, model: Any, tokenizer: Any) -> heldout.Score | None:
        t = self.training
        return heldout.score(model, tokenizer, self.rows, self.grader, self.options,
                             max_new_tokens=t.eval_max_new_tokens, batch_size=t.eval_batch_size)  # fmt: skip

    def sample(self) -> list[int]:
        return heldout.sample_indices(len(self.rows), heldout.SAMPLE_ROWS, self.training.seed)

    def every(self, max_steps: int) -> int:
        # About ten checks a run, none closer than five steps: each costs one batched greedy pass.
        return self.training.eval_every or max(5, math.ceil(max_steps / 10))

    def patience(self) -> int:
        return self.training.patience or 3


@dataclass
class Watch:
    """Why a run stopped before its last step (a sentence), shared by the callbacks."""

    stopped_early: str | None = None


def _best(output: Path) -> tuple[int, float] | None:
    """(step, score) of the best checkpoint kept so far, or None."""
    try:
        info = json.loads((JobFolder(output).best / "best.json").read_text())
        return int(info["step"]), float(info["score"])
    except (OSError, ValueError, KeyError):
        return None


def _clear_best(output: Path) -> None:
    import shutil

    best = JobFolder(output).best
    for folder in (best, best.with_name(f"{best.name}.tmp"), best.with_name(f"{best.name}.old")):
        shutil.rmtree(folder, ignore_errors=True)
    JobFolder(output).heldout.unlink(missing_ok=True)


def _save_best(output: Path, model: Any, tokenizer: Any, step: int, score: float) -> None:
    """Write the best checkpoint whole or not at all: a kill half way leaves the previous best."""
    import shutil

    best = JobFolder(output).best
    tmp, old = best.with_name(f"{best.name}.tmp"), best.with_name(f"{best.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "best.json").write_text(json.dumps({"step": step, "score": score}))
    if best.exists():
        best.rename(old)
    tmp.rename(best)
    shutil.rmtree(old, ignore_errors=True)


def _convergence_callback(
    spec: JobSpec,
    events: EventWriter,
    hparams: HParams,
    scoring: Scoring,
    before: heldout.Score,
    tokenizer: Any,
    guards: Guardrails,
    watch: Watch,
    tracker: Any,
    resume_step: int,
) -> Any:
    """Every `eval_every` steps: the held-out SAMPLE scored by the same function as before → after
    (greedy, one batch, the adapter unmerged), a `heldout` event, the best checkpoint kept, and a stop
    when the sample reaches 100% or has not improved for `patience` checks."""
    from transformers import TrainerCallback

    output = spec.output
    picked = scoring.sample()
    rows = [scoring.rows[i] for i in picked]
    every, patience, max_steps = scoring.every(hparams.max_steps), scoring.patience(), hparams.max_steps
    stopping = spec.training.early_stopping

    class ConvergenceCallback(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[list[float]] = []
            if resume_step:
                # The checks up to the checkpoint resumed from stand; later ones are done again.
                with contextlib.suppress(OSError, ValueError):
                    saved = json.loads(JobFolder(output).heldout.read_text())
                    self.history = [h for h in saved["history"] if h[0] <= resume_step]
            else:
                _clear_best(output)
                start = [before.per_row[i] for i in picked]
                known = [v for v in start if v is not None]
                self.history = [[0, sum(known) / len(known) if known else 0.0]]
                events.emit("heldout", step=0, score=self.history[0][1], n=len(known), grader=scoring.grader,
                            sample=True, best=False)  # fmt: skip
                self._write()
            for step, value in self.history:
                guards.on_heldout(int(step), value)

        def _write(self) -> None:
            done = JobFolder(output).heldout
            tmp = done.with_name(f"{done.name}.tmp")
            tmp.write_text(json.dumps({"history": self.history, "every": every, "patience": patience}))
            tmp.replace(done)

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> Any:
            step = state.global_step
            if model is None or (step % every and step != max_steps) or StopRequest.requested:
                return control
            result = heldout.score(model, tokenizer, rows, scoring.grader, scoring.options,
                                   max_new_tokens=spec.training.eval_max_new_tokens, batch_size=len(rows))  # fmt: skip
            value = result.mean if result is not None else 0.0
            self.history = [h for h in self.history if h[0] != step] + [[step, value]]
            best = _best(output)
            # While the sample has not moved from its start, it cannot tell checkpoints apart: the latest
            # is kept (its loss is lower). Full SFT of the tiny base sits at 0% for its first 200-350 steps;
            # keeping the first 0% checkpoint made the result an early step's weights.
            unmoved = best is not None and value == best[1] == self.history[0][1]
            # At 100% a later check replaces the earlier one: it confirms the ceiling with weights
            # trained longer, at a lower learning rate.
            confirmed = best is not None and value == best[1] >= 1.0
            new_best = (
                stopping
                and (best is None or value > best[1] or unmoved or confirmed)
                and not (best and best[0] == step)
            )
            if new_best:
                _save_best(output, model, tokenizer, step, value)
                best = (step, value)
            self._write()
            events.emit("heldout", step=step, score=value, n=result.n if result else 0, grader=scoring.grader,
                        sample=True, best=bool(best and best[0] == step))  # fmt: skip
            if tracker is not None:
                tracker.log_step({"heldout_sample": value}, step=step)
            for alarm in guards.on_heldout(step, value):
                events.emit("guardrail", step=step, code=alarm.code, level=alarm.level, message=alarm.message)
            if not stopping or best is None or step >= max_steps:
                return control
            since = sum(1 for h in self.history if h[0] > best[0])
            last = [h[1] for h in self.history[-CEILING_CHECKS:]]
            if len(last) == CEILING_CHECKS and min(last) >= 1.0:
                watch.stopped_early = (
                    f"Stopped at step {step} of {max_steps}: the held-out sample scored 100% in "
                    f"{CEILING_CHECKS} checks in a row, so more steps could not raise it."
                )
            elif (
                since >= patience
                and step >= MIN_PATIENCE_FRACTION * max_steps
                # Nothing learnt yet and nothing lost: keep going (the tiny base learns reversal only
                # after 200 to 350 steps of full SFT, at 0% until then).
                and (best[1] > self.history[0][1] or value < self.history[0][1])
            ):
                watch.stopped_early = (
                    f"Stopped at step {step} of {max_steps}: the held-out sample has not improved for {since} "
                    f"checks since step {best[0]} ({best[1]:.0%}); the result is that step's checkpoint."
                )
            if watch.stopped_early:
                control.should_training_stop = True
                events.emit("converged", step=step, message=watch.stopped_early, best_step=best[0])
            return control

    return ConvergenceCallback()


def _guardrails_callback(events: EventWriter, guards: Guardrails, watch: Watch) -> Any:
    """TRL's logged numbers through the guardrails, as `guardrail` events; a "stop" one ends the run."""
    from transformers import TrainerCallback

    class GuardrailsCallback(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
        ) -> Any:
            for alarm in guards.on_log(state.global_step, dict(logs or {})):
                events.emit("guardrail", step=state.global_step, code=alarm.code, level=alarm.level,
                            message=alarm.message)  # fmt: skip
                if alarm.level == "stop" and not watch.stopped_early:
                    watch.stopped_early = alarm.message
                    control.should_training_stop = True
            return control

    return GuardrailsCallback()


# The time range around the estimate: the one CPU throughput figure (estimate.THROUGHPUT) was fitted on
# SFT, and the techniques' measured steps/s on the tiny model differ by 2x (bench/results/training.json:
# SFT 15.9, RLVR 10.7, DPO 8.4 steps/s) on a machine whose cores are shared; early stopping ends a run that
# converges sooner (the demo SFT had its final score after a third of its steps).
TIME_RANGE = {"low": 0.6, "low_early_stopping": 0.35, "high": 1.8}


def estimate_spec(
    spec: JobSpec, *, gpu: bool | None = None, rows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The memory and time estimate of a spec, with the hyperparameters it would get, without loading
    any weights (the config and the tokenizer are enough). `rows`: the rows the run will train on when
    they are not yet written to spec.dataset (the wizard's review, which holds out the same split that
    launching writes), so that the plan here is the plan the run makes. The config and the tokenizer
    are read without transformers (model_files): the web process asks this on every Technique step."""
    from workers.training.estimate import STARTUP_SECONDS, Shape, estimate
    from workers.training.model_files import ChatTokenizer, read_config

    if rows is None:
        rows = data_module.load(spec.dataset, spec.technique, spec.column_map, data_format=spec.data_format)
    tokenizer = ChatTokenizer.for_model(spec.model)
    rows = data_module.for_model(rows, tokenizer)
    config = read_config(spec.model)
    shape = Shape.from_config(config)
    if gpu is None:
        gpu = shape.parameters >= 50_000_000
    chosen = rows_read(spec, len(rows), shape.parameters)
    hparams, _ = plan_hparams(
        spec, tokenizer, pick(rows, chosen), shape.parameters, config, gpu, n_rows=len(rows)
    )
    generations = hparams.num_generations or int(spec.params.get("num_generations") or 4)
    guess = estimate(shape, technique=spec.technique, method=hparams.method, batch_size=hparams.batch_size,
                     max_length=hparams.max_length, steps=hparams.max_steps, lora_rank=hparams.lora_rank, gpu=gpu,
                     num_generations=generations)  # fmt: skip
    work = max(0.0, guess.seconds - STARTUP_SECONDS)
    early = bool(getattr(spec.training, "early_stopping", False))
    low = TIME_RANGE["low_early_stopping" if early else "low"]
    seconds_range = {"seconds_low": round(STARTUP_SECONDS + low * work, 1),
                     "seconds_high": round(STARTUP_SECONDS + TIME_RANGE["high"] * work, 1)}  # fmt: skip
    return {
        "estimate": guess.as_dict() | seconds_range,
        "hparams": asdict(hparams),
        "early_stopping": early,  # the planned steps are then the most it runs
        "parameters": shape.parameters,
        "rows": len(rows),
        "rows_read": len(chosen) if chosen is not None else len(rows),  # rows_read's sample, or all
    }


class Interrupted(Exception):
    """Stopped by SIGTERM at a safe point (a checkpoint, a finished batch); running again resumes."""

    def __init__(
        self, step: int, message: str = "Stopped on request after a checkpoint; run again to resume."
    ) -> None:
        super().__init__(message)
        self.step = step
        self.message = message


def _on_sigterm(signum: int, frame: Any) -> None:
    StopRequest.requested = True


def report_events(
    spec_path: Path, load: Callable[[Path], Any], work: Callable[[Any, EventWriter], Any]
) -> int:
    """A CLI command's frame: load the spec, write events to stdout and to the job folder's events file,
    turn SIGTERM into a stop at the next safe point, and end every run with an event: `interrupted`
    (Exit.INTERRUPTED), `failed` with a message for people (Exit.FAILED, Exit.BAD_SPEC for a spec that
    cannot be read) or whatever `work` emitted (Exit.OK)."""
    try:
        spec = load(spec_path)
        if not spec.output_dir:  # a spec is checked without its folder; a job runs only in one
            raise SpecError("The spec has no “output_dir”: the job's folder.")
    except SpecError as exc:
        EventWriter(None).emit("failed", message=str(exc))
        return Exit.BAD_SPEC
    spec.output.mkdir(parents=True, exist_ok=True)
    # stdout carries the events alone: whatever the libraries print goes to stderr.
    events = EventWriter(JobFolder(spec.output).events, stream=sys.stdout)
    StopRequest.requested = False  # a flag from an earlier run in this process must not stop this one
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            work(spec, events)
        return Exit.OK
    except Interrupted as stop:
        events.emit("interrupted", step=stop.step, message=stop.message)
        return Exit.INTERRUPTED
    except (SpecError, data_module.DataError, ModelError, TrainingError, ValueError) as exc:
        events.emit("failed", message=str(exc))
        return Exit.FAILED
    except Exception as exc:  # noqa: BLE001 - an unexpected failure is still reported as an event
        events.emit("failed", message=f"Failed unexpectedly: {exc}", traceback=traceback.format_exc())
        return Exit.FAILED
    finally:
        events.close()


def run_and_report(spec_path: Path) -> int:
    """The CLI's `run`: train as the spec says."""
    return report_events(spec_path, JobSpec.load, run)
