from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from apps.jobs import model_sources
from apps.secrets.outbound import url_problem
from apps.synthetic.probe import teacher_problem_on_worker
from workers.training.synthetic.pipeline import MAX_ROWS
from workers.training.techniques import REGISTRY

TECHNIQUES = [(name, t.synthetic.label) for name, t in REGISTRY.items()]
WORSE = " and ".join(t.short for t in REGISTRY.values() if t.synthetic.needs_worse)  # they need worse answers
TEACHERS = [
    ("endpoint", "One of this project's endpoints"),
    ("url", "An OpenAI-compatible URL (a provider, vLLM, another Atelier)"),
    ("local", "A local model, loaded by the worker"),
]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def clean(self, data: Any, initial: Any = None) -> Any:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class GenerationForm(forms.Form):
    technique = forms.ChoiceField(choices=TECHNIQUES, help_text="It decides the format of every row.")
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=2000,
        help_text="What the customized model should do, in a few sentences: the teacher reads this for every row.",
    )  # fmt: skip
    rows = forms.IntegerField(initial=50, help_text=f"How many rows to generate (1 to {MAX_ROWS:,}).")
    seeds = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='A few examples, one JSON object a line, e.g. {"prompt": "...", "completion": "..."}.',
    )  # fmt: skip
    seed_dataset = forms.ChoiceField(required=False, label="…or take seeds from a dataset")
    documents = MultipleFileField(
        required=False, widget=MultipleFileInput(attrs={"accept": ".txt,.md,.pdf,.html,.htm"}),
        help_text="Optional: .txt, .md, .pdf or .html, up to 20 MB each; examples are grounded in their passages.",
    )  # fmt: skip
    teacher = forms.ChoiceField(choices=TEACHERS, initial="url", widget=forms.RadioSelect)
    teacher_endpoint = forms.ChoiceField(required=False, label="Endpoint")
    # A CharField, not a URLField: the outbound policy's messages say more than "Enter a valid URL".
    teacher_url = forms.CharField(
        required=False, max_length=2000, label="Base URL", help_text="e.g. https://api.example.com/v1"
    )
    teacher_model = forms.CharField(required=False, max_length=200, label="Model name")
    teacher_key = forms.ChoiceField(
        required=False, label="API key",
        help_text="One of the project's secrets (Settings → Secrets): typed once there, never shown again.",
    )  # fmt: skip
    teacher_local = forms.CharField(
        required=False, max_length=500, label="Local model",
        help_text="A Hugging Face id (org/name), a model folder this server offers, or the built-in "
        "teacher, atelier-tiny/teacher.",
    )  # fmt: skip
    weak_local = forms.CharField(
        required=False, max_length=500, label=f"{WORSE}: worse answers from",
        help_text="A weaker local model (a Hugging Face id, a model folder this server offers, or "
        "atelier-tiny/base) answers each prompt; left empty, each worse answer is the chosen one cut short.",
    )  # fmt: skip

    def __init__(
        self, *args: Any, endpoints: list[tuple[str, str]], datasets: list[tuple[str, str]],
        keys: list[tuple[str, str]], project_id: int, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.project_id = project_id
        cast(forms.ChoiceField, self.fields["teacher_key"]).choices = keys
        cast(forms.ChoiceField, self.fields["teacher_endpoint"]).choices = [("", "—"), *endpoints]
        cast(forms.ChoiceField, self.fields["seed_dataset"]).choices = [("", "—"), *datasets]

    def clean_rows(self) -> int:
        rows = self.cleaned_data["rows"]
        if rows < 1:
            raise ValidationError("Ask for at least 1 row.")
        if rows > MAX_ROWS:
            raise ValidationError(f"At most {MAX_ROWS:,} rows per generation; ask for fewer, or run several.")
        return int(rows)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("teacher")
        if kind == "endpoint" and not data.get("teacher_endpoint"):
            self.add_error("teacher_endpoint", "Choose one of this project's endpoints (deploy one first).")
        elif kind == "url":
            if not data.get("teacher_url"):
                self.add_error("teacher_url", "Give the teacher's base URL.")
            elif not data.get("teacher_model"):
                self.add_error("teacher_model", "Give the model's name at that URL.")
            else:
                # The address first, here; then a worker asks the server itself (never this process).
                url = data["teacher_url"].strip()
                problem = url_problem(url) or teacher_problem_on_worker(
                    project_id=self.project_id, base_url=url, key_ref=data.get("teacher_key") or ""
                )
                if problem:
                    self.add_error("teacher_url", problem)
        elif kind == "local" and not data.get("teacher_local", "").strip():
            self.add_error("teacher_local", "Give a model folder or Hugging Face id.")
        # Only vetted models reach the worker: a hub id, an offered folder, the built-in model.
        for name, used in (
            ("teacher_local", kind == "local"),
            (
                "weak_local",
                data.get("technique") in REGISTRY and REGISTRY[data["technique"]].synthetic.needs_worse,
            ),
        ):
            if used and (data.get(name) or "").strip():
                try:
                    data[name] = model_sources.typed_model(data[name])
                except ValidationError as exc:
                    self.add_error(name, exc)
        return data


class TopicsForm(forms.Form):
    topics = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="One topic a line; its subtopics below it, each starting with “-”. Add, remove or rename freely.",
    )
    rows = forms.IntegerField(min_value=1, max_value=MAX_ROWS)
