"""Values as people write them, in one place for every page: 3e-3 (not 0.0029999999999999996), graders
as names ("Exact match, Contains", not a Python list), booleans as yes/no, durations as "about 12 min"."""

from __future__ import annotations

import math
from typing import Any

from workers.training.techniques import REGISTRY

# Names whose words are not the key with its underscores as spaces; each technique's short name.
TITLES = {"json_schema": "JSON schema", "math_match": "Math match", "python": "Python", "lora": "LoRA",
          "qlora": "QLoRA", **{key: t.short for key, t in REGISTRY.items()}}  # fmt: skip


def number(value: float) -> str:
    """A float as people type it: 3e-3, 2e-5, 1.5e-4 for the small ones; 0.95, 12, 1.25 for the rest."""
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) < 1e-2:
        mantissa, exponent = f"{value:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.4g}"


def name(key: Any) -> str:
    """A key as words: exact_match → Exact match."""
    text = str(key)
    return TITLES.get(text, text.replace("_", " ").capitalize())


def human(value: Any, key: str = "") -> str:
    """Any setting's value as people write it."""
    if value is None or value == "":
        return "automatic"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, list | tuple):
        return ", ".join(human(v) if not isinstance(v, str) else name(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{name(k)}: {human(v)}" for k, v in value.items()) or "none"
    if key in ("graders", "grader", "technique", "method"):
        return name(value)
    return str(value)


def duration(seconds: Any) -> str:
    """Seconds as a person plans with them: 45 s, 12 min, 1 h 5 min."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def share(value: Any) -> str:
    """A share of 0..1 as a percentage with one decimal, as the evaluation report writes it (0.625 →
    62.5%, 1.0 → 100.0%), so one score reads the same on every page."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value * 100:.1f}%"
