"""Template filters over apps.core.formatting: `{{ value|human }}`, `{{ value|human:"graders" }}`,
`{{ seconds|duration }}`, `{{ key|title_name }}`."""

from __future__ import annotations

from typing import Any

from django import template

from apps.core import formatting

register = template.Library()


@register.filter
def human(value: Any, key: str = "") -> str:
    return formatting.human(value, key)


@register.filter
def duration(seconds: Any) -> str:
    return formatting.duration(seconds)


@register.filter
def title_name(key: Any) -> str:
    return formatting.name(key)


@register.filter
def share(value: Any) -> str:
    return formatting.share(value)
