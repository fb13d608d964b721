"""The job spec: everything a training process needs, as plain JSON. The web app writes it; the
training layer reads nothing else (no database, no Django).

A spec is built and checked without its `output_dir`: the job's folder is filled in by whoever creates
it (workers.training.folder.JobFolder.write_spec). Every place that writes a spec builds it with one of
the builders at the end of this module, one a kind of job: training, evaluation, data generation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workers.training.folder import JobFolder

METHODS = ("lora", "qlora", "full")


class SpecError(ValueError):
    """A spec that cannot be run, with a message a person understands."""


@dataclass(frozen=True)
class ModelRef:
    """Where the base model comes from: a Hugging Face id, a local folder, or an earlier job's output
    (a folder holding a merged model, or an adapter whose adapter_config.json names its base)."""

    name_or_path: str
    revision: str | None = None


@dataclass(frozen=True)
class Training:
    """Choices common to every technique. None means "choose automatically" (workers.training.hparams)."""

    method: str = "lora"
    max_steps: int | None = None
    epochs: float | None = None
    batch_size: int | None = None
    gradient_accumulation: int | None = None
    learning_rate: float | None = None
    lora_rank: int | None = None
    max_length: int | None = None
    save_steps: int | None = None
    eval_max_new_tokens: int = 24
    # The held-out selection the trainer scores before and after, and the automatic evaluation with it
    # (workers.training.heldout): the first rows of the eval file, answered in batches of this size.
    eval_max_rows: int = 200
    eval_batch_size: int = 16
    seed: int = 42
    # Convergence: score a held-out sample every `eval_every` steps (None: about ten times a run), keep
    # the best checkpoint by it and stop after `patience` checks without a gain (None: 3) or at 100%.
    early_stopping: bool = True
    eval_every: int | None = None
    patience: int | None = None


@dataclass(frozen=True)
class Tracking:
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "atelier"
    run_name: str | None = None
    register_as: str | None = None


@dataclass(frozen=True)
class JobSpec:
    technique: str
    model: ModelRef
    dataset: str
    output_dir: str = ""  # the job's folder; empty in a spec that is only checked
    eval_dataset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    training: Training = field(default_factory=Training)
    tracking: Tracking = field(default_factory=Tracking)
    column_map: dict[str, str] = field(default_factory=dict)
    # The dataset's format (workers.training.formats: "auto" recognises it from its columns)
    data_format: str = "auto"
    job_id: str = "local"
    # Checkpointless, elastic training on torchft (workers.training.resilient); empty: a plain run.
    resilience: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

    @property
    def folder(self) -> JobFolder:
        return JobFolder(self.output)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        try:
            known = {f.name for f in fields(cls)}
            unknown = set(data) - known
            if unknown:
                raise SpecError(f"Unknown spec fields: {', '.join(sorted(unknown))}.")
            model = data.get("model")
            if isinstance(model, str):
                model = {"name_or_path": model}
            if not isinstance(model, dict):
                raise SpecError("The spec has no “model”.")
            training = Training(**(data.get("training") or {}))
            for name in ("eval_every", "patience", "eval_max_rows", "eval_batch_size"):
                value = getattr(training, name)
                if value is not None and (not isinstance(value, int) or value < 1):
                    raise SpecError(
                        f"Training {name.replace('_', ' ')} must be a whole number of at least 1."
                    )
            if training.method not in METHODS:
                raise SpecError(
                    f"Training method must be one of {', '.join(METHODS)}, not “{training.method}”."
                )
            return cls(
                technique=data["technique"],
                model=ModelRef(**model),
                dataset=data["dataset"],
                output_dir=str(data.get("output_dir") or ""),
                eval_dataset=data.get("eval_dataset"),
                params=dict(data.get("params") or {}),
                training=training,
                tracking=Tracking(**(data.get("tracking") or {})),
                column_map=dict(data.get("column_map") or {}),
                data_format=str(data.get("data_format") or "auto"),
                job_id=str(data.get("job_id", "local")),
                resilience=dict(data.get("resilience") or {}),
            )
        except KeyError as exc:
            raise SpecError(f"The spec has no “{exc.args[0]}”.") from exc
        except TypeError as exc:
            raise SpecError(f"The spec is malformed: {exc}.") from exc

    @classmethod
    def load(cls, path: Path) -> JobSpec:
        return cls.from_dict(read_spec(path))


def read_spec(path: Path) -> dict[str, Any]:
    """A spec file's JSON object; SpecError when it is missing or not JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"No spec file at {path}.") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"The spec file {path} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise SpecError(f"The spec file {path} does not hold a JSON object.")
    return data


# Builders: the spec of each kind of job as the web app stores it (JSON), checked by the kind's own reader
# without an output_dir; SpecError in words when it cannot run. What only the worker knows (the folder,
# the job's id, the tracking server, keys) is not part of it.


def new_training_spec(
    *,
    technique: str,
    model: str,
    dataset: str,
    eval_dataset: str | None = None,
    params: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    column_map: dict[str, str] | None = None,
    resilience: dict[str, Any] | None = None,
    data_format: str = "auto",
) -> dict[str, Any]:
    """A training job's spec (read by JobSpec)."""
    spec: dict[str, Any] = {
        "technique": technique, "model": model, "dataset": dataset, "eval_dataset": eval_dataset or None,
        "params": dict(params or {}), "training": dict(training or {}), "column_map": dict(column_map or {}),
    }  # fmt: skip
    if data_format != "auto":  # only a dataset whose format the person chose has the key
        spec["data_format"] = data_format
    if resilience:  # only a resilient job has the key (workers.replicas finds them by it)
        spec["resilience"] = dict(resilience)
    JobSpec.from_dict(spec)
    return spec


def new_evaluation_spec(
    *,
    models: list[dict[str, Any]],
    dataset: str,
    graders: list[str],
    grader_options: dict[str, dict[str, Any]] | None = None,
    text_metrics: bool = True,
    judge: dict[str, Any] | None = None,
    benchmarks: list[str] | None = None,
    max_rows: int,
    max_new_tokens: int,
    batch_size: int,
    column_map: dict[str, str] | None = None,
    data_format: str = "auto",
) -> dict[str, Any]:
    """An evaluation job's spec (read by workers.training.evaluation.EvalSpec): `models` are
    {"label", "model", "mlflow_run_id"}, the first the baseline."""
    from workers.training.evaluation import EvalSpec

    spec: dict[str, Any] = {
        "kind": "evaluation", "models": [dict(m) for m in models], "dataset": dataset, "graders": list(graders),
        "grader_options": dict(grader_options or {}), "text_metrics": text_metrics, "judge": judge,
        "benchmarks": list(benchmarks or []), "max_rows": max_rows, "max_new_tokens": max_new_tokens,
        "batch_size": batch_size, "column_map": dict(column_map or {}),
    }  # fmt: skip
    if data_format != "auto":
        spec["data_format"] = data_format
    EvalSpec.from_dict(spec)
    return spec


def new_synthesis_spec(
    *,
    technique: str,
    description: str,
    rows: int,
    teacher: dict[str, Any],
    stage: str,
    seeds: list[dict[str, Any]] | None = None,
    documents: list[str] | None = None,
    weak: dict[str, Any] | None = None,
    topics: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A data generation job's spec (read by workers.training.synthetic.pipeline.SynthSpec): `stage`
    "topics" stops after proposing the topic tree, "all" writes the rows (from `topics` when given)."""
    from workers.training.synthetic.pipeline import SynthSpec

    spec: dict[str, Any] = {
        "technique": technique, "description": description.strip(), "rows": rows, "teacher": teacher,
        "seeds": list(seeds or []), "documents": list(documents or []), "weak": weak, "stage": stage,
    }  # fmt: skip
    if topics is not None:
        spec["topics"] = topics
    SynthSpec.from_dict(spec)
    return spec
