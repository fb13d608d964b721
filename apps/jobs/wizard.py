"""The customization wizard's steps: model, data, technique, review. Each step checks its input on the
server and keeps it in the person's Draft; launching turns the draft into a job. The forms for technique
parameters are generated from each technique's dataclass, so a new technique needs no new form."""

from __future__ import annotations

import dataclasses
import json
import random
import types
import typing
import uuid
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.core.forms import BoundedJSONField, checked_by, grader_option_fields, grader_options_clean
from apps.datasets.models import Dataset
from apps.jobs.model_sources import BUILTIN, VARIANTS
from apps.jobs.models import Draft, Job, Status
from apps.projects.models import Project
from workers.training.hparams import LORA_RANKS

STEPS = (("model", "Model"), ("data", "Data"), ("technique", "Technique"), ("review", "Review"))
TINY = ("base", "partial")  # the built-in models offered to customize
# The built-in helpers: a judge (scores answers for RLAIF and evaluation reports) and a teacher (writes
# datasets in Generate data). Not offered as bases to customize; deployed from the model catalog.
HELPERS = tuple(v for v in VARIANTS if v not in TINY)
HELPER_LABELS = {"judge": "Built-in judge", "teacher": "Built-in teacher"}
HELPER_PURPOSE = {  # one line each, on the catalog
    "judge": "Scores answers to the reverse demo task, for RLAIF and evaluation reports.",
    "teacher": "Writes reverse-task datasets in Generate data.",
}


def tiny_path(variant: str) -> Path:
    return Path(settings.DATA_DIR) / "models" / "atelier-tiny" / variant


# Popular open models: the shape the estimate needs, and the facts a person chooses by.
CATALOG = [
    {"id": "HuggingFaceTB/SmolLM2-360M-Instruct", "hidden_size": 960, "num_hidden_layers": 32, "num_attention_heads": 15,
     "num_key_value_heads": 5, "intermediate_size": 2560, "vocab_size": 49152, "tie_word_embeddings": True,
     "context": 8192, "licence": "Apache-2.0"},
    {"id": "Qwen/Qwen2.5-0.5B-Instruct", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
     "num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True,
     "context": 32768, "licence": "Apache-2.0"},
    {"id": "meta-llama/Llama-3.2-1B-Instruct", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
     "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True,
     "context": 131072, "licence": "Llama 3.2 Community"},
    {"id": "Qwen/Qwen2.5-1.5B-Instruct", "hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12,
     "num_key_value_heads": 2, "intermediate_size": 8960, "vocab_size": 151936, "tie_word_embeddings": True,
     "context": 32768, "licence": "Apache-2.0"},
    {"id": "mistralai/Mistral-7B-Instruct-v0.3", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
     "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32768, "tie_word_embeddings": False,
     "context": 32768, "licence": "Apache-2.0"},
    {"id": "meta-llama/Llama-3.1-8B-Instruct", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
     "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False,
     "context": 131072, "licence": "Llama 3.1 Community"},
]  # fmt: skip


def catalog() -> list[dict[str, Any]]:
    """The catalog with parameters and the memory LoRA and full fine-tuning need (batch 8, 512 tokens)."""
    from workers.training.estimate import Shape, estimate

    out = []
    for entry in CATALOG:
        shape = Shape.from_config(types.SimpleNamespace(**entry))
        memory = {
            method: estimate(
                shape, technique="sft", method=method, batch_size=8, max_length=512, steps=100
            ).total_gb
            for method in ("lora", "full")
        }
        out.append({**entry, "parameters": shape.parameters, "memory": memory})
    return out


def draft_for(*, project: Project, user: Any) -> Draft:
    draft, _ = Draft.objects.get_or_create(project=project, user=user)
    return draft


def draft_save(draft: Draft, **values: Any) -> None:
    draft.data = {**draft.data, **values}
    draft.save(update_fields=["data", "updated_at"])


def reached(draft: Draft) -> set[str]:
    """The steps whose input is complete."""
    data = draft.data
    done = set()
    if data.get("model"):
        done.add("model")
    if data.get("dataset"):
        done.add("data")
    if data.get("technique"):
        done.add("technique")
    return done


# Step 1: model ------------------------------------------------------------------------------------------


def _hub_check(model_id: str) -> None:
    """A Hugging Face id is usable if it is cached here or the hub answers for it."""
    import os

    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError

    try:
        if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            return
        HfApi(token=os.environ.get("HF_TOKEN")).model_info(model_id, timeout=8)
    except HFValidationError as exc:
        raise ValidationError(
            f"“{model_id}” is not a Hugging Face model id (like Qwen/Qwen2.5-0.5B-Instruct)."
        ) from exc
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200]
        if "404" in reason or "Repository Not Found" in reason:
            raise ValidationError(f"The Hugging Face Hub has no model “{model_id}”.") from exc
        raise ValidationError(
            f"“{model_id}” cannot be checked: the Hugging Face Hub cannot be reached from this server ({reason}). "
            "Choose the built-in model or a local folder, or download the model into HF_HOME first."
        ) from exc


def model_choose(
    *, project: Project, user: Any, source: str, hub_id: str = "", local_path: str = ""
) -> dict[str, str]:
    """{"model": what the spec loads, "label": what people read}; ValidationError naming the field.
    Only what this returns goes into specs: the built-in model by name, a vetted hub id, a folder inside
    ATELIER_MODEL_DIRS, or a job of this project chosen by its id (404 for anyone else's)."""
    from apps.jobs import model_sources
    from apps.jobs.selectors import job_model_get_for_user

    variant = source.removeprefix(f"{BUILTIN}/")
    if source in TINY or (source.startswith(f"{BUILTIN}/") and variant in VARIANTS):
        path = tiny_path(variant)
        if not (path / "config.json").exists():
            raise ValidationError(
                {
                    "source": "The built-in model is not built yet: run `make run` (or `python -m workers.training build-tiny`)."
                }
            )
        # A helper's endpoint is named atelier-tiny-<variant> already: its label says what it is.
        label = HELPER_LABELS[variant] if variant in HELPERS else f"Built-in tiny model ({variant})"
        return {"model": str(path), "label": label}
    if source.startswith("catalog:") or source == "hub":
        field = "hub_id" if source == "hub" else "source"
        model_id = source.removeprefix("catalog:") if source != "hub" else hub_id.strip()
        if not model_id:
            raise ValidationError({"hub_id": "Type a Hugging Face model id."})
        try:
            model_id = model_sources.hub_id(model_id)
            _hub_check(model_id)
        except ValidationError as exc:
            raise ValidationError({field: exc.messages}) from exc
        return {"model": model_id, "label": model_id}
    if source == "local":
        if not local_path.strip():
            raise ValidationError({"local_path": "Type the folder that holds the model."})
        try:
            folder = model_sources.local_folder(local_path)
        except ValidationError as exc:
            raise ValidationError({"local_path": exc.messages}) from exc
        return {"model": folder, "label": local_path.strip()}
    if source.startswith("job:"):
        job_id = source.removeprefix("job:")
        # A hand-edited "job:abc" is no job, not a 500 from the integer lookup.
        job = (
            job_model_get_for_user(user=user, project_id=project.pk, job_id=int(job_id))
            if job_id.isdigit()
            else None
        )
        if job is None:
            raise ValidationError({"source": "That job has no trained model."})
        return {"model": str(job.model_artifact), "label": f"Result of job #{job.pk} ({job.name})"}
    raise ValidationError({"source": "Choose a model."})


def earlier_jobs(project: Project) -> list[Job]:
    return [j for j in Job.objects.filter(project=project, status=Status.SUCCEEDED)[:20] if j.model_artifact]


# Step 2: data -------------------------------------------------------------------------------------------


def demo_datasets() -> list[dict[str, str]]:
    from workers.training import tiny

    return [
        {
            "key": f"demo:{p.parent.name}/{p.name}",
            "label": f"Demo: {p.parent.name} / {p.stem}",
            "path": str(p),
        }
        for p in sorted(tiny.DEMO.glob("*/*.jsonl"))
    ]


def dataset_source(project: Project, key: str) -> dict[str, Any]:
    """{"path", "label", "dataset_id", "mapping"} of a demo file or a project dataset."""
    if key.startswith("demo:"):
        found = next((d for d in demo_datasets() if d["key"] == key), None)
        if found:
            return {"path": found["path"], "label": found["label"], "dataset_id": None, "mapping": {}}
    if key.startswith("dataset:") and key.removeprefix("dataset:").isdigit():
        ds = Dataset.objects.filter(project=project, pk=int(key.removeprefix("dataset:"))).first()
        if ds:
            return {"path": ds.path, "label": ds.name, "dataset_id": ds.pk, "mapping": ds.mapping}
    raise ValidationError({"dataset": "Choose a dataset or upload one."})


def draft_checks(draft: Draft) -> dict[str, Any]:
    """Which techniques the draft's data fits under its mapping: a project dataset's stored checks when
    its mapping is the draft's, a survey otherwise (ValidationError for a file that cannot be read)."""
    from apps.datasets import services as dataset_services
    from workers.training.formats import Mapping

    mapping = Mapping.of(draft.data.get("mapping")).as_dict()
    key = str(draft.data.get("dataset_key") or "")
    if key.startswith("dataset:") and key.removeprefix("dataset:").isdigit():
        ds = Dataset.objects.filter(project_id=draft.project_id, pk=int(key.removeprefix("dataset:"))).first()
        if ds is not None and ds.checks and Mapping.of(ds.mapping).as_dict() == mapping:
            return dict(ds.checks)
    return dataset_services.survey(draft.data["dataset"], mapping, keep=0).checks


def preview(model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A few rows (converted: the survey's sample) through the model's chat template, exactly as training
    sees them, and the histogram of the token lengths of (up to 2,000 of) the rows; or why there is no
    preview. Read from the model's files (model_files.ChatTokenizer: tokenizers and jinja2), so the page
    never imports transformers."""
    from workers.training.data import render_row, trainer_tokens
    from workers.training.model_files import ChatTokenizer
    from workers.training.models import ModelError
    from workers.training.spec import ModelRef

    try:
        tokenizer = ChatTokenizer.for_model(ModelRef(model))
    except (ModelError, KeyError, ValueError, TypeError, OSError) as exc:
        return {"preview_error": f"No preview: {exc}"}
    texts, failed = [], None
    for row in rows[:2000]:  # a row the template cannot render (a tool call it knows nothing of) is skipped
        try:
            texts.append(render_row(tokenizer, row))
        except Exception as exc:  # noqa: BLE001 - jinja2's errors, from a template we do not write
            failed = failed or exc
    if not texts and failed is not None:
        return {
            "preview_error": f"No preview: the model's chat template cannot render these rows ({failed})."
        }
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    # The first rows as the trainer's tokens, the ones it learns from marked (data.trainer_tokens: the
    # same ids and loss as the SFT trainer's batch, tests/training/test_preview_tokens.py)
    tokens = []
    for row in rows[:3]:
        try:
            tokens.append(trainer_tokens(tokenizer, row)["spans"])
        except Exception:  # noqa: BLE001, S112 - a row the template cannot render is left out, as above
            continue
    return {"preview": texts[:3], "preview_tokens": tokens, "histogram": histogram(lengths),
            "longest": max(lengths, default=0)}  # fmt: skip


def histogram(values: list[int], bins: int = 10) -> list[dict[str, Any]]:
    if not values:
        return []
    low, high = min(values), max(values)
    bins = min(bins, high - low + 1)
    width = max(1, -(-(high - low + 1) // bins))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, (v - low) // width)] += 1
    top = max(counts)
    return [{"from": low + i * width, "to": low + (i + 1) * width - 1, "count": c, "share": c / top}
            for i, c in enumerate(counts)]  # fmt: skip


# Step 3: technique --------------------------------------------------------------------------------------


def _is(annotation: Any, kind: type) -> bool:
    return annotation is kind or annotation == kind.__name__


def params_form_class(
    technique: str, keys: list[tuple[str, str]] | None = None, endpoints: list[tuple[str, str]] | None = None
) -> type[forms.Form]:
    """A form for the technique's parameters dataclass: type → field, help → help text, min/max →
    validators, choices → checkboxes, a secret → a choice of `keys` (apps.secrets.services.key_choices:
    the project's secrets by name, never their values), an endpoint → a choice of `endpoints`
    (apps.endpoints.forms.judge_endpoint_choices: the project's own, by id; another id is a 404)."""
    from apps.endpoints.forms import EndpointChoiceField
    from workers.training.graders import REGISTRY as GRADERS
    from workers.training.techniques import REGISTRY

    params = REGISTRY[technique].params
    hints = typing.get_type_hints(params)
    fields: dict[str, forms.Field] = {}
    for f in dataclasses.fields(params):
        meta, kind = f.metadata, hints[f.name]
        union = typing.get_origin(kind) in (types.UnionType, typing.Union)
        if union and type(None) in typing.get_args(kind):  # None: chosen automatically, blank here
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        common = {
            "help_text": meta.get("help", ""),
            "required": False,
            "label": f.name.replace("_", " ").capitalize().replace("Lora", "LoRA"),
        }
        if kind is bool:
            fields[f.name] = forms.BooleanField(initial=default, **common)
        elif kind is int:
            fields[f.name] = forms.IntegerField(
                initial=default, min_value=meta.get("min"), max_value=meta.get("max"), **common
            )
        elif kind is float:
            fields[f.name] = forms.FloatField(
                initial=default, min_value=meta.get("min"), max_value=meta.get("max"), **common
            )
        elif meta.get("secret"):
            fields[f.name] = forms.ChoiceField(choices=keys or [("", "No key")], initial=default, **common)
        elif meta.get("endpoint"):
            fields[f.name] = EndpointChoiceField(
                choices=endpoints or [("", "None")], initial=default, **common
            )
        elif "choices" in meta:
            labels = {name: g.label for name, g in GRADERS.items()} if meta.get("graders") else {}
            fields[f.name] = forms.MultipleChoiceField(
                choices=[(c, labels.get(c, c)) for c in meta["choices"]], initial=list(default),
                widget=forms.CheckboxSelectMultiple, **common,
            )  # fmt: skip
        elif meta.get("grader_options"):  # each grader's options as fields, as on the evaluation form
            fields.update(grader_option_fields())
        elif typing.get_origin(kind) is dict or kind is dict:
            check = [checked_by(meta["check"])] if "check" in meta else []
            fields[f.name] = BoundedJSONField(initial=default, validators=check, **common)
        else:
            fields[f.name] = forms.CharField(
                initial=default or "", widget=forms.Textarea(attrs={"rows": 3}), **common
            )
    for f in dataclasses.fields(params):
        if f.default is None and f.name in fields:  # blank: chosen automatically from the model's size
            fields[f.name].widget.attrs["placeholder"] = "automatic"
    if "judge_key" in fields:  # not a parameter: a key typed here is saved as a secret, never in the spec
        typed = forms.CharField(
            required=False, max_length=4096, strip=True, label="Or type the URL judge's key",
            widget=forms.PasswordInput(render_value=False),
            help_text="Saved once, encrypted, as the project secret “judge-HOST”; never shown again.",
        )  # fmt: skip
        fields = {k: v for name, field in fields.items()
                  for k, v in ((name, field), *((("judge_new_key", typed),) if name == "judge_key" else ()))}  # fmt: skip
    methods: dict[str, Any] = {}
    if "graders" in fields:
        methods["clean_graders"] = _refuse_python_graders
        methods["clean"] = _grader_options
        methods["__init__"] = _with_grader_options
        if problem := python_grader_problem():  # said beside the choice, not only once it is refused
            fields["graders"].help_text = f"{fields['graders'].help_text} {problem}"
    return type(f"{technique.upper()}ParamsForm", (forms.Form,), {**fields, **methods})


def python_grader_problem() -> str | None:
    """Why Python graders cannot be chosen on this server (its sandbox failed its self-check), or None."""
    from workers.training.graders.sandbox import sandbox_state

    state = sandbox_state()
    return None if state.safe else f"Python graders are turned off on this server: {state.detail}."


def _with_grader_options(
    form: forms.Form, data: Any = None, *, initial: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    """A saved `grader_options` parameter shown in its graders' option fields."""
    initial = dict(initial or {})
    for grader, values in (initial.get("grader_options") or {}).items():
        for option, value in (values or {}).items():
            initial.setdefault(f"{grader}_{option}", value)
    forms.Form.__init__(form, data, initial=initial or None, **kwargs)


def _grader_options(form: forms.Form) -> dict[str, Any]:
    """The chosen graders' options gathered from their fields into the `grader_options` parameter."""
    data = form.cleaned_data
    data["grader_options"] = grader_options_clean(form, list(data.get("graders") or []))
    return data


def _refuse_python_graders(form: forms.Form) -> list[str]:
    graders = list(form.cleaned_data.get("graders") or [])
    if "python" in graders and (problem := python_grader_problem()):
        raise ValidationError(problem)
    return graders


class TrainingForm(forms.Form):
    """The choices every technique shares; blank means "choose automatically"."""

    method = forms.ChoiceField(
        choices=[("lora", "LoRA (recommended)"), ("qlora", "QLoRA (4-bit, NVIDIA GPU only)"), ("full", "Full fine-tuning")],
        initial="lora", help_text="LoRA trains a small adapter; full fine-tuning changes every weight.",
    )  # fmt: skip
    max_steps = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        help_text="Blank: from the data size (3 epochs, fewer on large data).",
    )
    early_stopping = forms.BooleanField(
        required=False, initial=True, label="Stop when it stops improving",
        help_text="Scores a sample of the held-out rows about ten times a run; keeps the best checkpoint and "
        "stops at 100% or after three checks without a gain (not before half the run). Off: every step is trained and the last one kept.",
    )  # fmt: skip
    learning_rate = forms.FloatField(
        required=False, min_value=1e-8, max_value=0.1, help_text="Blank: from the model size and technique."
    )
    batch_size = forms.IntegerField(
        required=False, min_value=1, max_value=1024, help_text="Blank: from the model size."
    )
    lora_rank = forms.TypedChoiceField(
        label="LoRA rank",
        required=False, coerce=int, empty_value=None,
        choices=[("", "automatic"), *((r, str(r)) for r in LORA_RANKS)],
        help_text="Ranks vLLM can serve.",
    )  # fmt: skip
    resilient = forms.BooleanField(
        required=False, label="Resilient training on several workers",
        help_text="SFT with LoRA or full fine-tuning: data-parallel replicas (torchft) that survive a worker "
        "dying without a restart and grow or shrink with the free workers. The batch is each replica's.",
    )  # fmt: skip
    min_replicas = forms.IntegerField(
        required=False, min_value=1, max_value=16, help_text="Training starts when this many have joined."
    )
    max_replicas = forms.IntegerField(
        required=False, min_value=1, max_value=16, help_text="It grows to this many as workers free up."
    )

    def resilience(self, technique: str) -> dict[str, int] | None:
        """The spec's `resilience`, checked against the technique and method; None for a plain run."""
        from workers.training.resilient import Resilience, ResilienceError

        data = self.cleaned_data
        if not data.get("resilient"):
            return None
        low = data.get("min_replicas") or 1
        high = data.get("max_replicas") or max(low, 2)
        try:
            Resilience.from_spec({"min_replicas": low, "max_replicas": high}, technique=technique,
                                 method=data.get("method") or "lora")  # fmt: skip
        except ResilienceError as exc:
            self.add_error("resilient", str(exc))
            return None
        return {"min_replicas": low, "max_replicas": high}


def judge_key_keep(
    *, project: Project, user: Any, form: forms.Form, params: dict[str, Any]
) -> dict[str, Any]:
    """The parameters with a key typed on the form saved as a project secret and chosen by name."""
    from apps.secrets.services import judge_key_save

    typed = (form.cleaned_data.get("judge_new_key") or "").strip()
    if not typed:
        return params
    ref = judge_key_save(project=project, user=user, url=str(params.get("judge_url") or ""), value=typed)
    return {**params, "judge_key": ref}


def clean_params(technique: str, form: forms.Form) -> dict[str, Any]:
    """The parameters that differ from their defaults, checked by the technique itself."""
    from apps.jobs import model_sources
    from apps.secrets.outbound import url_problem
    from workers.training.techniques import REGISTRY, ParamsError, make_params

    values = {}
    for f in dataclasses.fields(REGISTRY[technique].params):
        value = form.cleaned_data.get(f.name)
        if value is None or value == "":
            continue
        if f.metadata.get("outbound") and (problem := url_problem(str(value))):
            raise ValidationError(f"{f.name}: {problem}")
        if isinstance(value, list):
            value = tuple(value)
        if f.metadata.get("model"):  # a model the worker loads: vetted like the Model step's
            try:
                value = model_sources.typed_model(str(value))
            except ValidationError as exc:
                raise ValidationError({f.name: exc.messages}) from exc
        values[f.name] = value
    if values.get("judge_endpoint") and values.get("judge_url"):
        raise ValidationError("Choose the judge once: one of the project's endpoints, or a URL and model.")
    try:
        make_params(REGISTRY[technique], values)
    except (ParamsError, TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from exc
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def judge_fit_problem(draft: Draft, technique: str, params: dict[str, Any]) -> str | None:
    """Why the judge (of a judged technique: RLAIF) chosen among the project's endpoints cannot read what it will be asked, with
    the numbers, or None: each request is the judge's score request for one prompt of the draft's dataset
    (with its rubric) and an answer of up to max_completion_length tokens, and the judge answers with a
    score. A URL judge's context is unknown here, so it is not checked."""
    from apps.core import fit
    from apps.endpoints.models import Endpoint
    from workers.training import data as data_module
    from workers.training.techniques import REGISTRY, make_params

    if not params.get("judge_endpoint") or params.get("reward_model"):
        return None
    endpoint = Endpoint.objects.filter(project_id=draft.project_id, pk=int(params["judge_endpoint"]),
                                       active=True).first()  # fmt: skip
    if endpoint is None:
        return None  # said by clean_params' own check, and by the runner
    chosen = make_params(REGISTRY[technique], params)
    try:
        read = data_module.converted(
            data_module.records(draft.data["dataset"]),
            data_module.mapping_of(draft.data.get("column_map"), draft.data.get("data_format") or "auto"),
        )
        rows = [r.row for r in read.records if r.row is not None]
    except (data_module.DataError, KeyError, OSError, ValueError):
        return None  # the data step says what is wrong with the file
    asked = [(str(r.get("rubric") or chosen.rubric), r["prompt"]) for r in rows if r.get("prompt")]
    pairs = fit.longest((len(rubric) + len(str(prompt)), (rubric, prompt)) for rubric, prompt in asked)
    folder, model = fit.endpoint_model(endpoint)
    found = fit.fit(folder, model, (fit.score_messages(rubric, prompt, "") for rubric, prompt in pairs),
                    answer=fit.JUDGE_SCORE_TOKENS, extra=chosen.max_completion_length)  # fmt: skip
    if found is None or found.fits:
        return None
    numbers = found.numbers("The judge's")
    return (
        f"{numbers} (That request holds the dataset's longest prompt and an answer of up to "
        f"{chosen.max_completion_length:,} tokens.) Lower “Max completion length”, use shorter prompts, or "
        "choose a judge that reads more."
    )


# Step 4: review and launch ------------------------------------------------------------------------------


def spec_from_draft(draft: Draft, **chosen: Any) -> dict[str, Any]:
    """The draft's training spec, with `chosen` in place of the draft's own choices (the same names: the
    dataset launching writes, the technique and parameters being tried). Built and checked as every
    training spec is (workers.training.spec.new_training_spec): SpecError says what cannot run."""
    from workers.training.spec import new_training_spec

    data = {**draft.data, **chosen}
    training = {k: v for k, v in (data.get("training") or {}).items() if v not in (None, "")}
    for key in ("resilient", "min_replicas", "max_replicas"):  # the form's, not the trainer's
        training.pop(key, None)
    return new_training_spec(
        technique=data["technique"], model=data["model"], dataset=data["dataset"],
        eval_dataset=data.get("eval_dataset"), params=data.get("params"), training=training,
        column_map=data.get("column_map"), resilience=data.get("resilience"),
        data_format=data.get("data_format") or "auto",
    )  # fmt: skip


def review(draft: Draft) -> dict[str, Any]:
    """The estimate and automatic hyperparameters of the draft, or the reason there are none: planned on
    the rows launching will write (split_rows), so the steps shown are the steps the run makes. (It
    used to plan on the whole file, held-out rows included: 769 steps here, 692 in the run.)"""
    from workers.training.spec import JobSpec
    from workers.training.train import estimate_spec

    spec = JobSpec.from_dict(spec_from_draft(draft))
    train, _ = split_rows(draft)
    return estimate_spec(spec, rows=train)


HOLD_OUT_MIN = 20  # rows a dataset needs before 10% of it is held out for the automatic evaluation


def split_rows(draft: Draft) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows the job trains on and its held-out rows: converted by the mapping, bad rows dropped if
    asked (lines that cannot be read included), and the Data step's other fixes if chosen (rows longer
    than the model reads, duplicates, rows also in the eval file); the automatic evaluation split (10%,
    a fixed shuffle, from HOLD_OUT_MIN rows) held out. The review's plan and the launch both come from
    here."""
    from apps.datasets.services import model_reader
    from workers.training import data as data_module
    from workers.training.techniques import REGISTRY

    spec = spec_from_draft(draft)
    technique = REGISTRY[spec["technique"]]
    try:
        check = data_module.validate(
            data_module.records(spec["dataset"]),
            spec["technique"],
            spec["column_map"],
            spec.get("data_format", "auto"),
        )
    except data_module.DataError as exc:
        raise ValidationError(str(exc)) from exc
    if check.errors and not draft.data.get("drop_bad"):
        raise ValidationError(
            f"{len(check.errors)} rows do not fit {technique.short}; fix them or choose to drop them on the Data step."
        )
    rows = check.rows
    context, measure = model_reader(spec["model"])
    if context and measure:  # rows longer than the model reads: dropped, or cut to fit (as chosen)
        fits = [
            len(json.dumps(r, ensure_ascii=False).encode()) <= context or measure(r) <= context for r in rows
        ]
        if draft.data.get("long_rows") == "drop":
            rows = [r for r, ok in zip(rows, fits, strict=True) if ok]
        else:
            rows = [
                r if ok else data_module.cut_to_fit(r, context, measure)
                for r, ok in zip(rows, fits, strict=True)
            ]
    if draft.data.get("drop_duplicates") and rows:  # equal, or equal but for case, punctuation and spaces
        seen: set[int] = set()
        kept = []
        texts = [f"{data_module.prompt_text(r)}\x00{data_module.answer_text(r) or ''}" for r in rows]
        for row, key in zip(rows, data_module.near_keys(texts), strict=True):
            if key not in seen:
                seen.add(key)
                kept.append(row)
        rows = kept
    if (
        draft.data.get("drop_overlap")
        and draft.data.get("eval_choice") == "file"
        and draft.data.get("eval_dataset")
    ):
        from workers.training.formats import Mapping

        exclude = data_module.prompt_keys(
            draft.data["eval_dataset"], Mapping.of(draft.data.get("eval_mapping"))
        )
        keys = data_module.near_keys([data_module.prompt_text(r) for r in rows]) if rows else []
        rows = [r for r, key in zip(rows, keys, strict=True) if key not in exclude]
    if not rows:
        raise ValidationError("No rows are left to train on: go back to Data and keep more of them.")
    if draft.data.get("eval_choice") != "auto":
        return rows, []
    rng = random.Random(0)  # noqa: S311 - a reproducible split, not a secret
    rows = rows[:]
    rng.shuffle(rows)
    held = max(1, len(rows) // 10) if len(rows) >= HOLD_OUT_MIN else 0
    evaluation = [e for e in map(technique.heldout, rows[:held]) if e is not None]
    return (rows[held:], evaluation) if evaluation else (rows, [])


def materialize(draft: Draft) -> dict[str, Any]:
    """The spec to launch: the rows the job trains on written to their own file (split_rows), converted,
    so later edits of the source (or of its mapping) change nothing; a separate eval file is written
    converted beside them."""
    from workers.training import data as data_module
    from workers.training.formats import Mapping
    from workers.training.spec import SpecError

    rows, evaluation = split_rows(draft)
    folder = Path(settings.DATA_DIR) / "projects" / str(draft.project_id) / "splits" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    # the rows as mapped, converted and kept
    written: dict[str, Any] = {
        "dataset": str(folder / "train.jsonl"),
        "column_map": {},
        "data_format": "auto",
    }
    if not evaluation and draft.data.get("eval_choice") == "file" and draft.data.get("eval_dataset"):
        found = data_module.converted(data_module.records(draft.data["eval_dataset"]),
                                      Mapping.of(draft.data.get("eval_mapping")))  # fmt: skip
        evaluation = [r.row for r in found.records if r.row is not None]
    if evaluation:
        (folder / "eval.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in evaluation)
        )
        written["eval_dataset"] = str(folder / "eval.jsonl")
    (folder / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    try:
        return spec_from_draft(draft, **written)
    except SpecError as exc:
        raise ValidationError(str(exc)) from exc


def try_rewards(draft: Draft, technique: str, params: dict[str, Any], rows: int = 4) -> list[dict[str, Any]]:
    """Run `python -m workers.training try` on the draft with these parameters: the model's answers to a
    few rows and each grader's (or the judge's) score and reasons. A subprocess, as everything that loads
    a model: the web process never imports torch."""

    from apps.endpoints.services import endpoint_gateway_name, run_key_create, run_key_revoke
    from apps.secrets.services import KeyUnavailable, key_resolve, training_process_env
    from workers.training.keys import JUDGE_KEY_ENV
    from workers.training.spec import SpecError

    params = dict(params)
    run_key = None
    key: str | None
    if params.get("judge_endpoint"):  # as a job's runner does: the gateway, with a key for this try only
        name = endpoint_gateway_name(project_id=draft.project.pk, endpoint_id=params["judge_endpoint"])
        if name is None:
            raise ValidationError("The judge's endpoint is not deployed in this project any more.")
        params.pop("judge_key", None)
        params["judge_url"], params["judge_model"] = settings.GATEWAY_URL, name
        run_key, key = run_key_create(
            project=draft.project, user=draft.user, role="judge", run="a try in the wizard"
        )
    else:
        try:  # the judge's key, as a job's runner hands it over: in the environment, never in the spec
            key = key_resolve(project_id=draft.project.pk, ref=str(params.get("judge_key") or ""))
        except KeyUnavailable as exc:
            raise ValidationError(str(exc)) from exc
    env = training_process_env({JUDGE_KEY_ENV: key} if key else {})
    try:
        try:
            spec = spec_from_draft(draft, technique=technique, params=params)
        except SpecError as exc:
            raise ValidationError(str(exc)) from exc
        return _try_in_subprocess(spec, env, rows)
    finally:
        if run_key is not None:
            run_key_revoke(api_key=run_key)


def _try_in_subprocess(spec: dict[str, Any], env: dict[str, str], rows: int) -> list[dict[str, Any]]:
    import subprocess
    import sys
    import tempfile

    from workers.training.folder import JobFolder

    with tempfile.TemporaryDirectory() as folder:
        path = JobFolder(Path(folder)).write_spec(spec)  # `try` writes nothing there
        try:
            done = subprocess.run(
                [sys.executable, "-m", "workers.training", "try", str(path), "--rows", str(rows)],
                capture_output=True, text=True, timeout=300, check=False, cwd=Path(__file__).resolve().parents[2],
                env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise ValidationError("Trying took longer than 5 minutes; launch a short job instead.") from exc
    try:
        result = json.loads(done.stdout)
    except ValueError as exc:
        raise ValidationError(
            f"Trying failed: {done.stderr.strip().splitlines()[-1:] or 'no output'}"
        ) from exc
    if "error" in result:
        raise ValidationError(result["error"])
    return list(result["rows"])
