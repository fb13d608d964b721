from __future__ import annotations

from django import forms

from apps.projects.models import PROJECT_NAME_MAX_LENGTH, Role


class ProjectForm(forms.Form):
    name = forms.CharField(
        max_length=PROJECT_NAME_MAX_LENGTH,
        error_messages={
            "required": "Give the project a name.",
            "max_length": f"A project name has at most {PROJECT_NAME_MAX_LENGTH} characters "
            "(this one has %(show_value)d).",
        },
        widget=forms.TextInput(attrs={"placeholder": "e.g. Customer replies", "autofocus": True}),
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
