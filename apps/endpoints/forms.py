"""A choice of the project's endpoints, for forms that use one as a judge (the wizard's RLAIF step, the
evaluation form): offered by name, sent by id, and an id outside the project is a 404, as every object
outside a person's projects is (DESIGN.md), never a hint that it exists elsewhere."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import Http404

from apps.endpoints.models import Endpoint


def judge_endpoint_choices(*, project_id: int) -> list[tuple[str, str]]:
    """The project's deployed endpoints, as (id, what people read)."""
    endpoints = Endpoint.objects.filter(project_id=project_id, active=True).order_by("name")
    return [("", "None: a URL below")] + [(str(e.pk), f"{e.name} ({e.label or e.base})") for e in endpoints]


class EndpointChoiceField(forms.ChoiceField):
    """One of `choices` by id. An id that is a number but not offered (another project's, or a deleted
    one) raises Http404 from validation; anything that is not a number is an ordinary invalid choice."""

    def validate(self, value: Any) -> None:
        if value in self.empty_values or not str(value).isdigit():
            super().validate(value)
            return
        if not self.valid_value(value):
            raise Http404("No such endpoint.")
