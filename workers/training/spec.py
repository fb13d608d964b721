"""The job spec: everything a training process needs, as plain JSON. The web app writes it; the
training layer reads nothing else (no database, no Django)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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
    output_dir: str
    eval_dataset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    training: Training = field(default_factory=Training)
    tracking: Tracking = field(default_factory=Tracking)
    column_map: dict[str, str] = field(default_factory=dict)
    job_id: str = "local"
    # Checkpointless, elastic training on torchft (workers.training.resilient); empty: a plain run.
    resilience: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        return Path(self.output_dir)

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
                output_dir=data["output_dir"],
                eval_dataset=data.get("eval_dataset"),
                params=dict(data.get("params") or {}),
                training=training,
                tracking=Tracking(**(data.get("tracking") or {})),
                column_map=dict(data.get("column_map") or {}),
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
