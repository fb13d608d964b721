from __future__ import annotations

from django import forms

from apps.secrets.models import SECRET_NAME_MAX_LENGTH
from apps.secrets.services import MAX_VALUE_LENGTH


class SecretForm(forms.Form):
    name = forms.CharField(
        max_length=SECRET_NAME_MAX_LENGTH, help_text="How jobs choose it, e.g. openai. Saving a name again replaces its key.",
        widget=forms.TextInput(attrs={"placeholder": "openai", "autocomplete": "off"}),
    )  # fmt: skip
    # render_value=False: a page that shows the form again (an error) never sends the key back.
    value = forms.CharField(
        max_length=MAX_VALUE_LENGTH, label="Key", help_text="Stored encrypted; never shown again.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )  # fmt: skip
