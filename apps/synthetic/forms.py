from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from apps.jobs import model_sources
from workers.training.synthetic.pipeline import MAX_ROWS

TECHNIQUES = [
    ("sft", "SFT: prompts and ideal answers"),
    ("dpo", "DPO: prompts with a better and a worse answer"),
    ("rlvr", "RLVR: tasks with a checkable answer"),
    ("rlaif", "RLAIF: prompts for a judge to score"),
]
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
    teacher_url = forms.URLField(
        required=False, label="Base URL", help_text="e.g. https://api.example.com/v1"
    )
    teacher_model = forms.CharField(required=False, max_length=200, label="Model name")
    teacher_key_env = forms.CharField(
        required=False, max_length=100, label="API key: environment variable",
        help_text="The name of a variable on the workers that holds the key (keys are never stored here).",
    )  # fmt: skip
    teacher_local = forms.CharField(
        required=False, max_length=500, label="Local model",
        help_text="A Hugging Face id (org/name), a model folder this server offers, or the built-in "
        "atelier-tiny/partial.",
    )  # fmt: skip
    weak_local = forms.CharField(
        required=False, max_length=500, label="DPO: rejected answers from",
        help_text="A weaker local model (a Hugging Face id, a model folder this server offers, or "
        "atelier-tiny/base) answers each prompt; left empty, each rejected answer is the chosen one cut short.",
    )  # fmt: skip

    def __init__(
        self, *args: Any, endpoints: list[tuple[str, str]], datasets: list[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
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
                problem = probe(data["teacher_url"])
                if problem:
                    self.add_error("teacher_url", problem)
        elif kind == "local" and not data.get("teacher_local", "").strip():
            self.add_error("teacher_local", "Give a model folder or Hugging Face id.")
        # Only vetted models reach the worker: a hub id, an offered folder, the built-in model.
        for name, used in (
            ("teacher_local", kind == "local"),
            ("weak_local", data.get("technique") == "dpo"),
        ):
            if used and (data.get(name) or "").strip():
                try:
                    data[name] = model_sources.typed_model(data[name])
                except ValidationError as exc:
                    self.add_error(name, exc)
        return data


def probe(base_url: str, timeout: float = 5.0) -> str | None:
    """Why the teacher's URL cannot be used, or None: a person learns it here, not from a failed job."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/models")  # noqa: S310 - the user's URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404, 405):
            return None  # it answers: a key is needed, or it lists no models; the run will tell more
        return f"The teacher at {base_url} answered {exc.code}."
    except (urllib.error.URLError, OSError) as exc:
        return f"The teacher at {base_url} cannot be reached: {getattr(exc, 'reason', exc)}."
    except ValueError:
        return (
            f"The teacher at {base_url} does not answer like an OpenAI-compatible API (no JSON at /models)."
        )
    return None


class TopicsForm(forms.Form):
    topics = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="One topic a line; its subtopics below it, each starting with “-”. Add, remove or rename freely.",
    )
    rows = forms.IntegerField(min_value=1, max_value=MAX_ROWS)
