"""Evaluation: two or more models answer the same held-out prompts, and the answers are scored by the
graders, reference-based text metrics, an AI judge (rubric scores, and pairwise in both orders), the
reference answer's loss under each model, length and latency; every headline number gets a bootstrap
interval. `python -m workers.training evaluate SPEC.json` writes OUTPUT/report.json and
OUTPUT/samples.jsonl and reports progress as events, like a training run.

Durable in the same way: answers are appended to OUTPUT/generations/ batch by batch, so a run that is
stopped (SIGTERM, a worker that died) resumes where it was; the CANCEL file stops it between batches. A
model that fails to load, a grader whose reference column is missing, a judge that cannot be reached:
each becomes a problem in the report, in words, and the results that still mean something are kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from workers.training import heldout, metrics
from workers.training.events import EventWriter
from workers.training.folder import JobFolder
from workers.training.graders import text
from workers.training.models import ModelError
from workers.training.spec import ModelRef, SpecError, read_spec
from workers.training.train import Interrupted, StopRequest, report_events


@dataclass(frozen=True)
class Candidate:
    """One model of the comparison; the first of a spec's models is the baseline the others are set
    against. `mlflow_run_id`: the training run that gets this model's evaluation metrics."""

    label: str
    model: ModelRef
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class JudgeSpec:
    base_url: str
    model: str
    rubric: str = "The answer is correct, complete and does what the request asks."
    api_key_env: str = "ATELIER_JUDGE_API_KEY"  # workers.training.keys.JUDGE_KEY_ENV, filled by the runner
    key: str = ""  # the project secret it comes from ("secret:NAME"): a name, never the key itself
    # One of the project's endpoints (its id): the runner fills base_url (the gateway) and model, and
    # puts a key made for this run in api_key_env.
    endpoint: int | None = None
    scores: bool = True
    pairwise: bool = True
    timeout: float = 30.0


@dataclass(frozen=True)
class EvalSpec:
    models: tuple[Candidate, ...]
    dataset: str
    output_dir: str = ""  # the job's folder; empty in a spec that is only checked
    column_map: dict[str, str] = field(default_factory=dict)
    data_format: str = "auto"  # workers.training.formats
    graders: tuple[str, ...] = ("exact_match",)
    grader_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    text_metrics: bool = True
    loss: bool = True
    judge: JudgeSpec | None = None
    benchmarks: tuple[str, ...] = ()
    benchmark_limit: int | None = 100
    max_rows: int = 200
    max_new_tokens: int = 64
    batch_size: int = 16
    seed: int = 0
    tracking_uri: str | None = None
    job_id: str = "local"

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    @property
    def folder(self) -> JobFolder:
        return JobFolder(self.output)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalSpec:
        try:
            unknown = set(data) - {f.name for f in fields(cls)} - {"kind"}
            if unknown:
                raise SpecError(f"Unknown evaluation spec fields: {', '.join(sorted(unknown))}.")
            models = []
            for item in data["models"]:
                model = item["model"]
                model = ModelRef(model) if isinstance(model, str) else ModelRef(**model)
                models.append(Candidate(str(item["label"]), model, item.get("mlflow_run_id")))
            if len(models) < 2:
                raise SpecError("An evaluation compares at least two models.")
            labels = [m.label for m in models]
            if len(set(labels)) != len(labels):
                raise SpecError("Each model of an evaluation needs its own label.")
            judge = JudgeSpec(**data["judge"]) if data.get("judge") else None
            rest = {k: v for k, v in data.items() if k not in ("models", "judge", "kind")}
            for key in ("graders", "benchmarks"):
                if key in rest:
                    rest[key] = tuple(rest[key])
            spec = cls(models=tuple(models), judge=judge, **rest)
        except KeyError as exc:
            raise SpecError(f"The evaluation spec has no “{exc.args[0]}”.") from exc
        except TypeError as exc:
            raise SpecError(f"The evaluation spec is malformed: {exc}.") from exc
        if not 1 <= spec.max_rows <= 100_000:
            raise SpecError("Evaluate between 1 and 100,000 rows.")
        if not 1 <= spec.max_new_tokens <= 8192:
            raise SpecError("The longest answer must be between 1 and 8,192 tokens.")
        return spec

    @classmethod
    def load(cls, path: Path) -> EvalSpec:
        return cls.from_dict(read_spec(path))


class _Cancelled(Exception):
    pass


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "model"


def eval_rows(spec: EvalSpec) -> list[dict[str, Any]]:
    """The rows to evaluate: the held-out selection the trainer scores too (heldout.select_rows)."""
    return heldout.select_rows(spec.dataset, spec.column_map, spec.max_rows, spec.data_format)


# Generation -----------------------------------------------------------------------------------------------


def reference_losses(
    model: Any, tokenizer: Any, prompts: list[Any], answers: list[str | None]
) -> list[float | None]:
    """Mean per-token loss of each reference answer (and its end of turn) after its prompt."""
    import torch

    results: list[float | None] = [None] * len(prompts)
    items = []
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        if answer is None:
            continue
        head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        whole = tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": answer}], tokenize=False
        )
        p = tokenizer(head, add_special_tokens=False)["input_ids"]
        ids = tokenizer(whole, add_special_tokens=False)["input_ids"]
        if len(ids) > len(p) and ids[: len(p)] == p:
            items.append((i, ids, len(p)))
    if not items:
        return results
    width = max(len(ids) for _, ids, _ in items)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (_, ids, start) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, start : len(ids)] = torch.tensor(ids[start:])
        mask[row, : len(ids)] = 1
    device = model.device
    with torch.no_grad():
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    target = labels[:, 1:].reshape(-1).to(device)
    token_loss = torch.nn.functional.cross_entropy(shifted, target, ignore_index=-100, reduction="none")
    token_loss = token_loss.view(len(items), -1)
    counted = (labels[:, 1:] != -100).to(device)
    per_row = (token_loss * counted).sum(1) / counted.sum(1).clamp(min=1)
    for (i, _, _), value in zip(items, per_row.tolist(), strict=True):
        results[i] = float(value)
    return results


def _generations_file(spec: EvalSpec, index: int, candidate: Candidate) -> Path:
    return spec.folder.generations / f"{index}-{_slug(candidate.label)}.jsonl"


def _read_generations(path: Path) -> dict[int, dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                done[int(record["row"])] = record
    return done


def generate_all(
    spec: EvalSpec, index: int, candidate: Candidate, rows: list[dict[str, Any]], progress: Any
) -> dict[int, dict[str, Any]]:
    """Each row's greedy answer (with its token count, seconds and reference loss), resuming from what an
    earlier attempt wrote. Raises ModelError when the model cannot be loaded."""
    from workers.training.generation import generate

    path = _generations_file(spec, index, candidate)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = _read_generations(path)
    todo = [i for i in range(len(rows)) if i not in done]
    progress(len(done))
    if not todo:
        return done
    model, tokenizer = heldout.load_for_scoring(candidate.model)
    with path.open("a") as out:
        for start in range(0, len(todo), spec.batch_size):
            if spec.folder.cancel.exists():
                raise _Cancelled
            if StopRequest.requested:
                raise Interrupted(len(done), "Stopped on request; run again to resume where it stopped.")
            batch = todo[start : start + spec.batch_size]
            prompts = [rows[i]["prompt"] for i in batch]
            began = time.perf_counter()
            outputs = generate(
                model, tokenizer, prompts, max_new_tokens=spec.max_new_tokens, batch_size=len(batch)
            )
            seconds = (time.perf_counter() - began) / len(batch)
            losses = (
                reference_losses(model, tokenizer, prompts, [rows[i].get("answer") for i in batch])
                if spec.loss
                else [None] * len(batch)
            )
            for i, output, loss in zip(batch, outputs, losses, strict=True):
                tokens = len(tokenizer(output, add_special_tokens=False)["input_ids"])
                record = {
                    "row": i,
                    "output": output,
                    "tokens": tokens,
                    "seconds": round(seconds, 5),
                    "loss": loss,
                }
                out.write(json.dumps(record) + "\n")
                done[i] = record
            out.flush()
            progress(len(done))
    del model
    return done


# Scoring --------------------------------------------------------------------------------------------------


@dataclass
class Metric:
    key: str
    label: str
    kind: str  # grader, text, judge, loss, length, latency
    higher_is_better: bool | None = True
    percent: bool = True
    scores: dict[str, list[float | None]] = field(default_factory=dict)
    problem: str | None = None


def _columns(rows: list[dict[str, Any]]) -> set[str]:
    return set().union(*(r.keys() for r in rows))


def grade(spec: EvalSpec, rows: list[dict[str, Any]], outputs: dict[str, list[str | None]]) -> list[Metric]:
    """Each grader's 0/1 (or 0..1) score per row and model, by heldout.grade (the trainer's own
    before → after comes from the same function); a grader that cannot run says why."""
    found: list[Metric] = []
    for name in spec.graders:
        metric = Metric(name, heldout.grader_label(name), "grader")
        found.append(metric)
        options = spec.grader_options.get(name, {})
        metric.problem = heldout.grader_problem(name, options, rows)
        if metric.problem:
            continue
        for label, answers in outputs.items():
            try:
                metric.scores[label] = heldout.grade(name, options, rows, answers)
            except Exception as exc:  # noqa: BLE001 - a user's grader or schema may fail in any way
                metric.problem = f"{metric.label} failed: {exc}"
                break
    return found


def text_metrics(rows: list[dict[str, Any]], outputs: dict[str, list[str | None]]) -> list[Metric]:
    rouge = Metric("rouge_l", "ROUGE-L (F1)", "text")
    bleu = Metric("bleu", "BLEU (sentence)", "text")
    use = [i for i, r in enumerate(rows) if r.get("answer") not in (None, "")]
    if not use:
        problem = "ROUGE-L and BLEU compare with a reference answer; the eval dataset has none."
        rouge.problem = bleu.problem = problem
        return [rouge, bleu]
    for label, answers in outputs.items():
        pick = [i for i in use if answers[i] is not None]
        refs = [str(rows[i]["answer"]) for i in pick]
        hyps = [str(answers[i]) for i in pick]
        for metric, fn in ((rouge, metrics.rouge_l), (bleu, metrics.bleu)):
            scores: list[float | None] = [None] * len(rows)
            for i, value in zip(pick, fn(hyps, refs) if pick else [], strict=True):
                scores[i] = value
            metric.scores[label] = scores
    return [rouge, bleu]


def judge_all(
    spec: EvalSpec, rows: list[dict[str, Any]], outputs: dict[str, list[str | None]], baseline: str
) -> tuple[Metric | None, dict[str, Any], dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """Rubric scores per model and pairwise verdicts of each model against the baseline, both orders.
    Returns (score metric, pairwise summaries, per-row reviews, per-row comparisons)."""
    if spec.judge is None:
        return None, {}, {}, {}
    from workers.training.judge import Judge

    j = spec.judge
    judge = Judge.configured(j.base_url, j.model, j.rubric, j.api_key_env, j.timeout)
    rubric_of = [str(r.get("rubric") or spec.judge.rubric) for r in rows]
    metric = Metric("judge_score", "Judge's rubric score", "judge") if spec.judge.scores else None
    reviews: dict[str, list[dict[str, Any]]] = {}
    comparisons: dict[str, list[dict[str, Any]]] = {}
    pairwise: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=judge.concurrency) as pool:
        if metric is not None:
            for label, answers in outputs.items():
                pick = [i for i, a in enumerate(answers) if a is not None]
                verdicts = list(pool.map(lambda i, a=answers: judge.review(rows[i]["prompt"], a[i], rows[i].get("answer"), rubric_of[i]), pick))  # fmt: skip
                scores: list[float | None] = [None] * len(rows)
                notes: list[dict[str, Any]] = [{} for _ in rows]
                for i, v in zip(pick, verdicts, strict=True):
                    scores[i] = v.value
                    notes[i] = {"score": v.value, "reasoning": v.reasoning, "problem": v.problem}
                metric.scores[label] = scores
                reviews[label] = notes
            problems = [n["problem"] for notes in reviews.values() for n in notes if n.get("problem")]
            if problems and all(s is None for scores in metric.scores.values() for s in scores):
                metric.problem = f"The judge at {spec.judge.base_url} gave no score: {problems[0]}."
            elif problems:
                metric.problem = f"{len(problems)} judgements had no score (for example: {problems[0]}); they are left out."
        if spec.judge.pairwise:
            base = outputs[baseline]
            for label, answers in outputs.items():
                if label == baseline:
                    continue
                pick = [i for i in range(len(rows)) if answers[i] is not None and base[i] is not None]
                first = list(pool.map(lambda i, a=answers: judge.compare(rows[i]["prompt"], base[i], a[i], rubric_of[i]), pick))  # fmt: skip
                second = list(pool.map(lambda i, a=answers: judge.compare(rows[i]["prompt"], a[i], base[i], rubric_of[i]), pick))  # fmt: skip
                per_row: list[dict[str, Any]] = [{} for _ in rows]
                outcomes: list[str | None] = []
                disagreed: list[bool] = []
                for i, one, two in zip(pick, first, second, strict=True):
                    outcome, differ = metrics.combine_orders(one.value, two.value)
                    outcomes.append(outcome)
                    disagreed.append(differ)
                    per_row[i] = {"outcome": outcome, "disagreed": differ,
                                  "orders": [{"verdict": one.value, "reasoning": one.reasoning, "problem": one.problem},
                                             {"verdict": two.value, "reasoning": two.reasoning, "problem": two.problem}]}  # fmt: skip
                summary = metrics.pairwise_summary(outcomes, disagreed, seed=spec.seed)
                failures = [v.problem for v in (*first, *second) if v.problem]
                if failures:
                    summary["problem"] = (
                        f"{summary['unjudged']} of {len(pick)} pairs went unjudged (for example: {failures[0]})."
                    )
                pairwise[label] = summary
                comparisons[label] = per_row
    return metric, pairwise, reviews, comparisons


# The report -----------------------------------------------------------------------------------------------


def _histogram(values: list[float | None], low: float, high: float, bins: int = 10) -> list[int]:
    counts = [0] * bins
    width = (high - low) / bins or 1.0
    for v in values:
        if v is not None and math.isfinite(v):
            counts[min(bins - 1, max(0, int((v - low) / width)))] += 1
    return counts


def summarize_metric(metric: Metric, baseline: str, seed: int) -> dict[str, Any]:
    values = {label: metrics.summarize(scores, seed=seed) for label, scores in metric.scores.items()}
    base = metric.scores.get(baseline)
    deltas = {
        label: metrics.paired_delta(base, scores, seed=seed)
        if base is not None and label != baseline
        else None
        for label, scores in metric.scores.items()
    }
    finite = [v for scores in metric.scores.values() for v in scores if v is not None and math.isfinite(v)]
    if metric.percent:
        low, high = 0.0, 1.0
    else:
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        high = high if high > low else low + 1.0
    return {
        "key": metric.key, "label": metric.label, "kind": metric.kind,
        "higher_is_better": metric.higher_is_better, "percent": metric.percent,
        "values": values, "deltas": deltas, "problem": metric.problem,
        "distribution": {"low": low, "high": high,
                         "counts": {label: _histogram(scores, low, high) for label, scores in metric.scores.items()}},
    }  # fmt: skip


def _perplexity(loss: dict[str, Any]) -> dict[str, Any]:
    """exp of the loss row's numbers (exp is monotone, so the interval carries over)."""

    def exp(summary: dict[str, Any] | None) -> dict[str, Any] | None:
        if summary is None:
            return None
        return {**summary, **{k: math.exp(min(50.0, summary[k])) for k in ("mean", "low", "high")}}

    return {**loss, "key": "perplexity", "label": "Perplexity of the reference", "kind": "loss",
            "values": {k: exp(v) for k, v in loss["values"].items()},
            "deltas": dict.fromkeys(loss["deltas"]), "distribution": None}  # fmt: skip


def primary_metric(summaries: list[dict[str, Any]]) -> str | None:
    """The number the report leads with and the sample browser sorts by: the first grader that ran, else
    the judge's score, else ROUGE-L."""
    for kind in ("grader", "judge", "text"):
        for s in summaries:
            if s["kind"] == kind and any(v is not None for v in s["values"].values()):
                return str(s["key"])
    return None


def build_report(
    spec: EvalSpec,
    rows: list[dict[str, Any]],
    generations: dict[str, dict[int, dict[str, Any]]],
    errors: dict[str, str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    labels = [c.label for c in spec.models]
    baseline = labels[0]
    outputs = {
        label: [generations[label].get(i, {}).get("output") for i in range(len(rows))]
        for label in labels
        if label in generations
    }
    found: list[Metric] = [*grade(spec, rows, outputs)]
    if spec.text_metrics:
        found += text_metrics(rows, outputs)
    judge_metric, pairwise, reviews, comparisons = (
        judge_all(spec, rows, outputs, baseline) if outputs else (None, {}, {}, {})
    )
    if judge_metric is not None:
        found.append(judge_metric)
    per_row = {label: [generations[label].get(i, {}) for i in range(len(rows))] for label in outputs}
    loss = Metric("eval_loss", "Loss of the reference answer", "loss", higher_is_better=False, percent=False)
    loss.scores = {label: [r.get("loss") for r in recs] for label, recs in per_row.items()}
    if not any(v is not None for scores in loss.scores.values() for v in scores):
        loss.problem = (
            "The loss needs a reference answer; the eval dataset has none." if spec.loss else "Not asked for."
        )
    length = Metric("output_tokens", "Answer length (tokens)", "length", higher_is_better=None, percent=False)
    length.scores = {label: [r.get("tokens") for r in recs] for label, recs in per_row.items()}
    latency = Metric(
        "seconds", "Seconds per answer (batched)", "latency", higher_is_better=False, percent=False
    )
    latency.scores = {label: [r.get("seconds") for r in recs] for label, recs in per_row.items()}
    summaries = [summarize_metric(m, baseline, spec.seed) for m in found]
    loss_summary = summarize_metric(loss, baseline, spec.seed)
    summaries += [loss_summary, _perplexity(loss_summary)]
    summaries += [summarize_metric(m, baseline, spec.seed) for m in (length, latency)]
    primary = primary_metric(summaries)
    primary_scores = next((m.scores for m in found if m.key == primary), {})

    samples = []
    for i, row in enumerate(rows):
        sample: dict[str, Any] = {
            "row": i, "prompt": _prompt_text(row["prompt"]), "reference": row.get("answer"),
            "outputs": {}, "pairwise": {}, "change": {}, "delta": {},
        }  # fmt: skip
        for label in outputs:
            rec = per_row[label][i]
            sample["outputs"][label] = {
                "text": rec.get("output"), "tokens": rec.get("tokens"), "seconds": rec.get("seconds"), "loss": rec.get("loss"),
                "scores": {m.key: m.scores[label][i] for m in found if label in m.scores},
                "judge": reviews.get(label, [{}] * len(rows))[i] or None,
            }  # fmt: skip
        base_score = primary_scores.get(baseline, [None] * len(rows))[i] if primary_scores else None
        for label in outputs:
            if label == baseline:
                continue
            if label in comparisons:
                sample["pairwise"][label] = comparisons[label][i] or None
            score = primary_scores.get(label, [None] * len(rows))[i] if primary_scores else None
            if base_score is None or score is None:
                sample["change"][label], sample["delta"][label] = None, None
            else:
                delta = score - base_score
                sample["delta"][label] = delta
                sample["change"][label] = "improved" if delta > 0 else "regressed" if delta < 0 else "same"
        samples.append(sample)

    problems = [f"{label} could not be evaluated: {message}" for label, message in errors.items()]
    problems += [
        f"{s['label']}: {s['problem']}" for s in summaries if s.get("problem") and s["kind"] != "loss"
    ]
    problems += [
        f"Pairwise judge, {label}: {p['problem']}" for label, p in pairwise.items() if p.get("problem")
    ]
    counts = {
        label: {
            k: sum(1 for s in samples if s["change"].get(label) == k)
            for k in ("improved", "regressed", "same")
        }
        for label in outputs
        if label != baseline
    }
    report = {
        "version": 1,
        "job_id": spec.job_id,
        "dataset": Path(spec.dataset).name,
        "rows": len(rows),
        "baseline": baseline,
        "models": [
            {"label": c.label, "model": c.model.name_or_path, "error": errors.get(c.label), "evaluated": c.label in outputs}
            for c in spec.models
        ],
        "primary": primary,
        "metrics": summaries,
        "pairwise": pairwise,
        "changes": counts,
        "judge": {"url": spec.judge.base_url, "model": spec.judge.model, "rubric": spec.judge.rubric} if spec.judge else None,
        "problems": problems,
        "complete": not errors,
        "confidence": metrics.CONFIDENCE,
        "resamples": metrics.BOOTSTRAP_RESAMPLES,
    }  # fmt: skip
    return report, samples


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(
            f"{m.get('role', '')}: {m.get('content', '')}" if len(prompt) > 1 else str(m.get("content", ""))
            for m in prompt
        )
    return text(prompt)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers a job row keeps: each metric's mean per model, and the primary metric's."""
    out: dict[str, Any] = {
        "primary": report.get("primary"),
        "baseline": report.get("baseline"),
        "metrics": {},
    }
    for m in report["metrics"]:
        out["metrics"][m["key"]] = {label: (v or {}).get("mean") for label, v in m["values"].items()}
    return out


# The run --------------------------------------------------------------------------------------------------


def evaluate(spec: EvalSpec, events: EventWriter) -> dict[str, Any]:
    """Evaluate; return the `finished` event (cancelled when the CANCEL file stopped it)."""
    try:
        return _evaluate(spec, events)
    except _Cancelled:
        return events.emit("finished", cancelled=True, artifacts={}, metrics={})


def _evaluate(spec: EvalSpec, events: EventWriter) -> dict[str, Any]:
    spec.output.mkdir(parents=True, exist_ok=True)
    events.emit(
        "started",
        job_id=spec.job_id,
        kind="evaluation",
        models=[c.label for c in spec.models],
        pid=os.getpid(),
    )
    rows = eval_rows(spec)
    total = len(rows) * len(spec.models)
    events.emit("configured", hparams={"max_steps": total}, rows=len(rows), models=len(spec.models))
    generations: dict[str, dict[int, dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    benchmark_results: dict[str, Any] = {}
    began = time.monotonic()
    for index, candidate in enumerate(spec.models):
        offset = index * len(rows)

        def progress(done: int, offset: int = offset) -> None:
            step = offset + done
            elapsed = time.monotonic() - began
            eta = elapsed / step * (total - step) if step else None
            events.emit("step", step=step, max_steps=total, metrics={}, eta_seconds=eta)

        try:
            generations[candidate.label] = generate_all(spec, index, candidate, rows, progress)
        except (ModelError, OSError, ValueError) as exc:
            errors[candidate.label] = str(exc)
            events.warning(f"{candidate.label} could not be evaluated: {exc}")
            continue
        if spec.benchmarks:
            from workers.training.benchmarks import run_benchmarks

            benchmark_results[candidate.label] = run_benchmarks(
                candidate.model, spec.benchmarks, limit=spec.benchmark_limit
            )
    if spec.models[0].label in errors:
        # Without the baseline nothing compares; the other models' answers stay on disk for a retry.
        raise ModelError(
            f"The baseline {spec.models[0].label} could not be loaded: {errors[spec.models[0].label]}"
        )
    events.emit("scoring", message="Scoring the answers")
    report, samples = build_report(spec, rows, generations, errors)
    report["benchmarks"] = benchmark_results
    spec.folder.samples.write_text("".join(json.dumps(s) + "\n" for s in samples))
    spec.folder.report.write_text(json.dumps(report, indent=1))
    mlflow_info = _track(spec, report)
    if errors:
        names = ", ".join(errors)
        raise ModelError(
            f"{names} could not be evaluated ({'; '.join(errors.values())}); the report keeps the others."
        )
    return events.emit(
        "finished",
        artifacts={"report": str(spec.folder.report), "samples": str(spec.folder.samples)},
        metrics=headline(report),
        mlflow=mlflow_info,
        cancelled=False,
    )


def _track(spec: EvalSpec, report: dict[str, Any]) -> dict[str, Any] | None:
    """Each candidate's metrics (and the baseline's, prefixed) on its training run in MLflow, with the
    report and the per-sample table as artifacts."""
    from workers.training import tracking

    logged: dict[str, Any] = {}
    for candidate in spec.models[1:]:
        if not candidate.mlflow_run_id:
            continue
        numbers: dict[str, float] = {}
        for m in report["metrics"]:
            mine = m["values"].get(candidate.label)
            base = m["values"].get(spec.models[0].label)
            if mine:
                numbers[f"eval_{m['key']}"] = mine["mean"]
            if base:
                numbers[f"eval_base_{m['key']}"] = base["mean"]
        for key in ("win", "tie", "loss", "disagreement"):
            if candidate.label in report["pairwise"]:
                numbers[f"eval_pairwise_{key}"] = report["pairwise"][candidate.label][key]
        problem = tracking.log_evaluation(
            tracking_uri=spec.tracking_uri,
            run_id=candidate.mlflow_run_id,
            metrics=numbers,
            files=[spec.folder.report, spec.folder.samples],
        )
        logged[candidate.label] = {"run_id": candidate.mlflow_run_id, "problem": problem}
    return logged or None


def evaluate_and_report(spec_path: Path) -> int:
    """The CLI's `evaluate`, in the same frame as `run`: events, SIGTERM, failures in words."""
    return report_events(spec_path, EvalSpec.load, evaluate)
