from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Every field in a wrapper that carries its label, input, help and errors together."""

    field_template_name = "forms/field.html"
