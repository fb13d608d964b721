"""The web process never imports torch or transformers: the whole wizard, clicked through with Django's
test client in a fresh interpreter (other tests' imports would otherwise be in sys.modules already), leaves
neither in sys.modules. The Data step's preview and the Technique and Review steps' estimate read the
model's files with light libraries (workers.training.model_files); the Try button's model runs in a
subprocess of its own (`python -m workers.training try`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
TECHNIQUES = ("sft", "dpo", "rlvr", "rlaif")


def _rows(n: int = 40) -> bytes:
    """One small dataset every technique accepts: a prompt with an SFT completion, a DPO pair, an RLVR
    reference answer (and the prompt RLAIF's judge scores answers to)."""
    rows = []
    for i in range(n):
        word = f"w{i:03d}"
        letters, backwards = " ".join(word), " ".join(reversed(word))
        rows.append({"prompt": f"reverse: {letters}", "completion": backwards, "chosen": backwards,
                     "rejected": letters, "answer": backwards})  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# What each technique's POST chooses beside the shared training choices (20 steps of LoRA).
CHOICES: dict[str, dict[str, Any]] = {
    "sft": {},
    "dpo": {},
    "rlvr": {"p-graders": ["exact_match"], "p-num_generations": "4"},
    # A judge that is never reached: the step only checks the URL and the Try says so per row.
    "rlaif": {"p-judge_url": "http://127.0.0.1:9/v1", "p-judge_model": "m", "p-num_generations": "4"},
}


def walk_the_wizard() -> None:
    """Run in a fresh interpreter (see the test): click through every step as a person does, then print
    one JSON line: what was seen on the way, the heavy modules imported, the first Technique GET's time
    and the process's peak RSS. The rows it creates are deleted again."""
    import resource

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from apps.datasets.models import Dataset
    from apps.projects.services import project_create

    setup_test_environment()
    user = get_user_model().objects.create_user(username=f"imports-{os.getpid()}", password="x")
    project = project_create(user=user, name="Imports", description="")
    seen: dict[str, Any] = {}
    try:
        client = Client()
        client.force_login(user)

        def url(step: str) -> str:
            return reverse(f"wizard-{step}", kwargs={"project_id": project.pk})

        seen["model"] = client.get(url("model")).status_code
        seen["model_post"] = client.post(url("model"), {"source": "partial"}).status_code
        upload = SimpleUploadedFile("reverse.jsonl", _rows())
        seen["upload"] = client.post(
            url("data"), {"file": upload, "eval_choice": "auto", "go": "check"}
        ).status_code
        page = client.get(url("data")).content.decode()
        seen["preview"] = "&lt;|im_start|&gt;assistant" in page and "No preview" not in page
        key = f"dataset:{Dataset.objects.get(project=project).pk}"
        seen["data_next"] = client.post(
            url("data"), {"dataset": key, "eval_choice": "auto", "go": "next"}
        ).status_code
        seen["technique"], seen["placeholders"], seen["posted"], seen["tried"] = {}, {}, {}, {}
        for technique in TECHNIQUES:
            started = time.monotonic()
            page = client.get(f"{url('technique')}?technique={technique}").content.decode()
            seen["technique"][technique] = round(time.monotonic() - started, 3)
            seen["placeholders"][technique] = 'placeholder="automatic: ' in page
            chosen = {"technique": technique, "t-method": "lora", "t-max_steps": "20", **CHOICES[technique]}
            if technique in ("rlvr", "rlaif"):
                tried = client.post(reverse("wizard-try", kwargs={"project_id": project.pk}), chosen)
                seen["tried"][technique] = tried.content.decode().count("<strong>")
            seen["posted"][technique] = client.post(url("technique"), chosen).status_code
        review = client.get(url("review")).content.decode()
        seen["review"] = "20 steps" in review and " GB (weights" in review
    finally:
        project.delete()
        user.delete()
    seen["heavy"] = sorted(m for m in HEAVY if m in sys.modules)
    seen["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(seen))


def test_the_whole_wizard_imports_neither_torch_nor_transformers(tiny_model, test_db_url):
    base = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", "from tests.jobs.test_web_imports import walk_the_wizard; walk_the_wizard()"],
        cwd=base, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": test_db_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    print(seen)
    assert seen["model"] == 200 and seen["model_post"] == seen["upload"] == seen["data_next"] == 302
    assert seen["preview"] and seen["review"]
    assert all(seen["placeholders"].values()) and set(seen["posted"].values()) == {302}
    assert seen["tried"] == {"rlvr": 4, "rlaif": 4}  # four rows scored, by the grader and by the judge
    assert seen["heavy"] == []


def test_the_preview_renders_and_counts_the_rows_as_transformers_does(tiny_model):
    """The Data step's preview, read without transformers, shows the texts and the token lengths that
    transformers' tokenizer gives for the same rows (plain prompt/completion, DPO pairs, RLAIF prompts
    with the generation prompt, chats)."""
    from apps.jobs.wizard import histogram, preview
    from workers.training.data import render_row
    from workers.training.models import load_tokenizer
    from workers.training.spec import ModelRef

    made = [json.loads(line) for line in _rows(12).decode().splitlines()]
    rows = (
        [{k: r[k] for k in ("prompt", "completion")} for r in made[:4]]
        + [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in made[4:8]]
        + [{"prompt": r["prompt"]} for r in made[8:10]]  # with the generation prompt
        + [
            {
                "messages": [
                    {"role": "user", "content": r["prompt"]},
                    {"role": "assistant", "content": r["answer"]},
                ]
            }
            for r in made[10:]
        ]
    )
    model = str(tiny_model / "partial")
    shown = preview(model, rows)
    tokenizer = load_tokenizer(ModelRef(model))
    texts = [render_row(tokenizer, row) for row in rows]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert {k: shown[k] for k in ("preview", "histogram", "longest")} == {
        "preview": texts[:3],
        "histogram": histogram(lengths),
        "longest": max(lengths),
    }
    assert ["".join(text for text, _ in spans) for spans in shown["preview_tokens"]] == texts[:3]
    assert texts[8].endswith("<|im_start|>assistant\n") and len(set(lengths)) > 1
