from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workers.training import tiny

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.training", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_the_training_layer_never_imports_django():
    code = (
        "import sys, workers.training, workers.training.__main__, workers.training.spec, workers.training.data, "
        "workers.training.events, workers.training.models, workers.training.tiny, workers.training.generation, "
        "workers.training.train, workers.training.hparams, workers.training.techniques\n"
        "print([m for m in sys.modules if m == 'django' or m.startswith('django.') or m.startswith('apps')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_validate_reports_a_good_dataset():
    result = _cli("validate", str(tiny.DEMO / "reverse" / "dpo.jsonl"), "--technique", "dpo")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["ok"], report["good_rows"], report["columns"]) == (
        True,
        400,
        ["prompt", "chosen", "rejected"],
    )


def test_validate_names_the_bad_lines_and_exits_non_zero(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "", "answer": "b"}\n')
    result = _cli("validate", str(path), "--technique", "rlvr")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"] == [{"line": 2, "message": "“prompt” is empty"}]


def test_build_tiny_skips_a_model_that_is_built(tiny_model):
    result = _cli("build-tiny", "--out", str(tiny_model))
    assert result.returncode == 0
    assert "already built" in result.stdout


def test_estimate_prints_memory_time_and_the_hyperparameters_a_spec_would_get(tmp_path, tiny_model):
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "technique": "sft",
                "model": str(tiny_model / "base"),
                "output_dir": str(tmp_path),
                "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
                "training": {"method": "full"},
            }
        )
    )
    result = _cli("estimate", str(spec))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["estimate"]["compute_class"] == "CPU" and report["estimate"]["total_gb"] < 1
    assert report["parameters"] == 1_098_880 and report["hparams"]["method"] == "full"
    assert 5 < report["estimate"]["seconds"] < 300
