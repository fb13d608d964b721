"""A run reads, converts and tokenizes only the rows its steps read (train.rows_read), so the wait before
its first step does not grow with the dataset; the estimate plans on the same rows as the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder
from workers.training.spec import JobSpec
from workers.training.train import estimate_spec, rows_read

ROOT = Path(__file__).resolve().parents[2]
TINY_PARAMS = 1_098_880


def _spec(technique: str = "sft", **training: object) -> JobSpec:
    return JobSpec.from_dict({"technique": technique, "model": "unused", "dataset": "unused.jsonl",
                              "output_dir": "unused", "training": {"method": "lora", **training}})  # fmt: skip


def test_a_short_run_on_a_large_dataset_reads_a_seeded_sample_of_its_rows():
    chosen = rows_read(_spec(max_steps=40), 10_000, TINY_PARAMS)
    assert chosen is not None and len(chosen) == 40 * 16  # 40 steps of 16 rows (the tiny model's batch)
    assert chosen == sorted(set(chosen)) and chosen[0] >= 0 and chosen[-1] < 10_000
    assert rows_read(_spec(max_steps=40), 10_000, TINY_PARAMS) == chosen  # a resumed run reads the same
    assert rows_read(_spec(max_steps=40, seed=7), 10_000, TINY_PARAMS) != chosen
    # GRPO's batch holds num_generations answers to a prompt: fewer prompts a step.
    grpo = rows_read(_spec("rlvr", max_steps=40), 10_000, TINY_PARAMS)
    assert grpo is not None and len(grpo) < len(chosen)


def test_a_run_of_an_epoch_or_more_reads_every_row():
    assert rows_read(_spec(), 200, TINY_PARAMS) is None  # automatic epochs on a small dataset
    assert rows_read(_spec(max_steps=40), 640, TINY_PARAMS) is None


def _dataset(path: Path, rows: int, long_row: int | None = None) -> Path:
    demo = [json.loads(line) for line in (tiny.DEMO / "reverse" / "sft.jsonl").read_text().splitlines()]
    with path.open("w") as out:
        for i in range(rows):
            user, answer = (m["content"] for m in demo[i % len(demo)]["messages"])
            if i == long_row:
                user = "reverse: " + " ".join("abcdefgh" * 60)  # longer than the plan's maximum length
            out.write(json.dumps({"messages": [{"role": "user", "content": f"{user} ({i})"},
                                               {"role": "assistant", "content": answer}]}) + "\n")  # fmt: skip
    return path


def test_the_run_converts_and_tokenizes_only_the_rows_it_reads_and_the_estimate_plans_the_same(
    tmp_path, tiny_model
):
    rows = 3_000
    spec_dict = {"technique": "sft", "model": str(tiny_model / "partial"), "output_dir": str(tmp_path / "job"),
                 "dataset": str(_dataset(tmp_path / "big.jsonl", rows)), "tracking": {"enabled": False},
                 "training": {"method": "lora", "max_steps": 10, "save_steps": 1000, "early_stopping": False}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec_dict))
    result = subprocess.run([sys.executable, "-m", "workers.training", "run", str(tmp_path / "spec.json")],
                            capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    events = read_events(JobFolder(tmp_path / "job").events)
    configured = next(e for e in events if e["event"] == "configured")
    assert configured["dataset_rows"] == rows and configured["rows"] == 10 * 16
    assert any(e["event"] == "step" for e in events) and events[-1]["event"] == "finished"
    # The review step's estimate plans on the same rows: the same maximum length and steps.
    planned = estimate_spec(JobSpec.from_dict(spec_dict), gpu=False)
    assert planned["hparams"]["max_length"] == configured["hparams"]["max_length"]
    assert planned["hparams"]["max_steps"] == configured["hparams"]["max_steps"] == 10
    assert planned["rows"] == rows and planned["rows_read"] == configured["rows"] == 160


def test_a_row_too_long_is_named_by_its_place_in_the_dataset_when_the_run_reads_it(tmp_path, tiny_model):
    spec = _spec(max_steps=10)
    chosen = rows_read(spec, 3_000, TINY_PARAMS)
    assert chosen is not None
    long_row = chosen[5]
    spec_dict = {"technique": "sft", "model": str(tiny_model / "partial"), "output_dir": str(tmp_path / "job"),
                 "dataset": str(_dataset(tmp_path / "big.jsonl", 3_000, long_row)), "tracking": {"enabled": False},
                 "training": {"method": "lora", "max_steps": 10, "max_length": 128}}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec_dict))
    result = subprocess.run([sys.executable, "-m", "workers.training", "run", str(tmp_path / "spec.json")],
                            capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    failed = [e for e in read_events(JobFolder(tmp_path / "job").events) if e["event"] == "failed"]
    assert result.returncode != 0 and failed, result.stderr[-2000:]
    assert f"(rows {long_row + 1};" in failed[0]["message"] and "1 rows are longer" in failed[0]["message"]
