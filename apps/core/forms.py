from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.renderers import TemplatesSetting
from django.http import HttpRequest, QueryDict


class FormRenderer(TemplatesSetting):
    """Every field in a wrapper that carries its label, input, help and errors together."""

    field_template_name = "forms/field.html"


def nesting(text: str) -> int:
    """How deeply JSON text nests, read without parsing it: Python's json module recurses, so 200,000
    opening brackets raised RecursionError (a 500) before any check could look at the value."""
    deepest = level = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def parse_bounded_json(text: str, *, max_bytes: int, max_depth: int) -> Any:
    """JSON typed into a form, refused with a ValidationError when it is too large or too deep."""
    if len(text.encode()) > max_bytes:
        raise ValidationError(f"This is over {max_bytes // 1024} KB; keep it under that.")
    if nesting(text) > max_depth:
        raise ValidationError(f"This nests deeper than {max_depth} levels.")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"This is not valid JSON: {exc}.") from exc


class BoundedJSONField(forms.JSONField):
    """A JSONField that refuses, beside the field, JSON too large or too deep to parse safely."""

    def __init__(self, *, max_bytes: int = 64 * 1024, max_depth: int = 32, **kwargs: Any) -> None:
        self.max_bytes, self.max_depth = max_bytes, max_depth
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            # Bound before Django's own json.loads runs (the same loads, so the value is unchanged).
            parse_bounded_json(value, max_bytes=self.max_bytes, max_depth=self.max_depth)
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)  # blank, not the word "null"

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Django re-parses the typed text to redisplay it; a refused text is shown back as typed.
        if isinstance(data, str) and (len(data.encode()) > self.max_bytes or nesting(data) > self.max_depth):
            return forms.fields.InvalidJSONInput(data)
        return super().bound_data(data, initial)


def checked_by(check: Any) -> Any:
    """A form validator from a training-layer check that raises ValueError with a person's message."""

    def validate(value: Any) -> None:
        try:
            check(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    return validate


# Grader options ------------------------------------------------------------------------------------------
# One UI for them wherever graders are chosen (the wizard's RLVR step, the evaluation form): each grader's
# options dataclass (workers.training.graders.GraderInfo.options) becomes fields named GRADER_OPTION,
# checked on the server with the message beside the field.


def grader_option_fields() -> dict[str, forms.Field]:
    """A field for each option of each grader: `regex_pattern`, `json_schema_schema`, `python_code`."""
    from workers.training import graders

    made: dict[str, forms.Field] = {}
    for grader in graders.REGISTRY.values():
        for option in grader.option_fields():
            meta = option.metadata
            checks = [checked_by(meta["check"])] if "check" in meta else []
            common: dict[str, Any] = {"required": False, "label": meta.get("label", option.name),
                                      "help_text": meta.get("help", ""), "validators": checks}  # fmt: skip
            kind = meta.get("kind", "text")
            if kind == "json":
                made[f"{grader.name}_{option.name}"] = BoundedJSONField(
                    widget=forms.Textarea(attrs={"rows": 3}), max_bytes=graders.MAX_SCHEMA_BYTES,
                    max_depth=graders.MAX_SCHEMA_DEPTH, **common,
                )  # fmt: skip
            elif kind == "code":
                made[f"{grader.name}_{option.name}"] = forms.CharField(
                    widget=forms.Textarea(attrs={"rows": 4}), **common
                )
            else:
                made[f"{grader.name}_{option.name}"] = forms.CharField(
                    max_length=meta.get("max_chars"), strip=False, **common
                )
    return made


def grader_options_clean(form: forms.Form, chosen: list[str]) -> dict[str, dict[str, Any]]:
    """The chosen graders' options from their fields ({grader: {option: value}}); an option a chosen
    grader cannot run without, left blank, is an error beside its field."""
    from workers.training import graders

    options: dict[str, dict[str, Any]] = {}
    for name in chosen:
        grader = graders.REGISTRY.get(name)
        for option in grader.option_fields() if grader else ():
            key = f"{name}_{option.name}"
            value = form.cleaned_data.get(key)
            if key in form.errors:
                continue
            if value in (None, ""):
                form.add_error(key, f"The {name.replace('_', ' ')} grader needs this.")
            else:
                options.setdefault(name, {})[option.name] = value
    return options


# A form's values kept across a detour ---------------------------------------------------------------------
# A button inside a form may post the whole form to another view (its `formaction`), which acts and sends
# the person back: "Deploy the built-in judge" beside a form's judge field. What was typed is kept in the
# session for the page it goes back to, and that page shows it again as the form's initial values; the
# field the detour filled in (the new endpoint) is set to what it made. Files cannot be kept: a browser
# never fills a file input from a page.
KEPT_SESSION_KEY = "kept_form"
NOT_KEPT = ("csrfmiddlewaretoken", "use", "next")
# A key typed on a form (the judge's "Or type the key") is a secret: saved encrypted when its form is
# submitted, and never written into the session in the clear. A very long value (pasted data) is not
# kept either: the session row is no place for it.
SECRET_SUFFIX = "new_key"  # noqa: S105 - a field name, not a password
KEPT_MAX_CHARS = 64 * 1024


def form_keep(request: HttpRequest, *, path: str, use: str = "", value: str = "") -> None:
    """Keep the request's posted values for the page at `path`, with the field `use` set to `value`."""
    data = {
        k: v for k, v in request.POST.lists()
        if k not in NOT_KEPT and not k.endswith(SECRET_SUFFIX) and sum(map(len, v)) <= KEPT_MAX_CHARS
    }  # fmt: skip
    if use:
        data[use] = [value]
    request.session[KEPT_SESSION_KEY] = {"path": path, "data": data, "use": use}


def form_kept(request: HttpRequest) -> tuple[QueryDict, str] | None:
    """(the values kept for this page, the field the detour set) once, or None: they are for the next
    visit of that page only."""
    kept = request.session.get(KEPT_SESSION_KEY)
    if not isinstance(kept, dict) or kept.get("path") != request.path:
        return None
    del request.session[KEPT_SESSION_KEY]
    data = QueryDict(mutable=True)
    for key, values in (kept.get("data") or {}).items():
        data.setlist(key, [str(v) for v in values])
    return data, str(kept.get("use") or "")


def initial_from(form: forms.Form, data: QueryDict) -> dict[str, Any]:
    """The form's fields' values in posted `data` (under the form's prefix), as initial values: read by
    each widget as a bound form reads them (a checkbox left unticked is False, a multiple choice a list),
    so the page shows what was typed without validating it. Files are left out."""
    values: dict[str, Any] = {}
    for name, field in form.fields.items():
        if isinstance(field, forms.FileField):
            continue
        key = form.add_prefix(name)
        # A checkbox, or a multiple choice, left empty is absent from the data but not omitted.
        if field.widget.value_omitted_from_data(data, {}, key):
            continue
        value = field.widget.value_from_datadict(data, {}, key)
        if isinstance(field, forms.JSONField):  # its initial is the value, shown again as JSON
            value = field.bound_data(value, None)
        values[name] = value
    return values
