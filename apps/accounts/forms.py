from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator

from apps.projects.models import Project, Role


class InvitationForm(forms.Form):
    email = forms.EmailField()
    project = forms.ModelChoiceField(
        queryset=Project.objects.all(),
        required=False,
        empty_label="No project yet",
        help_text="They join this project when they accept.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class InvitationAcceptForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data
