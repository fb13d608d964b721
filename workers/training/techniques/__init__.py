"""The techniques: each one module that declares its `TECHNIQUE` (base.Technique: its data formats,
parameters dataclass, automatic learning rates, what Generate data writes for it, how it is evaluated,
and the function that builds its TRL trainer), and one line in REGISTRY. The wizard generates each
technique's form from its dataclass (type, default, and the field metadata: help, min, max, choices)."""

from __future__ import annotations

import importlib
from dataclasses import fields
from typing import Any

from workers.training.techniques.base import Technique


def _declared(*modules: str) -> dict[str, Technique]:
    found = [importlib.import_module(f"workers.training.techniques.{m}").TECHNIQUE for m in modules]
    return {t.name: t for t in found}


# One line a technique: its module declares everything else (base.Technique).
REGISTRY: dict[str, Technique] = _declared(
    "sft",
    "dpo",
    "rlvr",
    "rlaif",
    "kto",
)


class ParamsError(ValueError):
    """Parameters outside their bounds, with a message naming the field."""


def make_params(technique: Technique, values: dict[str, Any]) -> Any:
    """The technique's parameters from user values, checked against each field's bounds."""
    known = {f.name: f for f in fields(technique.params)}
    unknown = set(values) - set(known)
    if unknown:
        raise ParamsError(f"{technique.title} has no parameter {', '.join(sorted(unknown))}.")
    for name, value in values.items():
        meta = known[name].metadata
        if value is None:  # None: chosen automatically (workers.training.hparams)
            continue
        if "min" in meta and value < meta["min"]:
            raise ParamsError(f"{name} must be at least {meta['min']} (got {value}).")
        if "max" in meta and value > meta["max"]:
            raise ParamsError(f"{name} must be at most {meta['max']} (got {value}).")
        if "choices" in meta and isinstance(value, list | tuple):
            wrong = [v for v in value if v not in meta["choices"]]
            if wrong:
                raise ParamsError(
                    f"{name} may only hold {', '.join(map(str, meta['choices']))} (not {', '.join(map(str, wrong))})."
                )
            value = tuple(value)
            values = {**values, name: value}
        elif "choices" in meta and value not in meta["choices"]:
            raise ParamsError(f"{name} must be one of {', '.join(map(str, meta['choices']))} (got {value}).")
    return technique.params(**values)
