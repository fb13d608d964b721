from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """mapping[key], or None: report dictionaries are keyed by model labels, which templates cannot spell."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def metric_value(value: Any, percent: bool) -> str:
    """A metric's number as the report writes it (a share as a percentage)."""
    from apps.evaluations.present import number

    return number(value, bool(percent)) if isinstance(value, int | float) else "–"


@register.filter
def spaced(name: Any) -> str:
    """A metric key as words: exact_match → exact match."""
    return str(name).replace("_", " ")
