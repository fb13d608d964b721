"""Each format Atelier recognises trains: a small file of each, as other tools write it, converted by the
trainer itself (the spec names the raw file; the format is recognised from its columns) and trained a few
steps through the CLI, all in one process (`run` takes several specs). Checked from the outside: the
adapter loads with plain PEFT, the rows the run reports are the file's rows, and the trainer read them
from an Arrow cache in the job's folder (data.arrow_rows), not a list."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from workers.training import formats

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["cat", "dog", "sun", "moon", "tree", "star", "fish", "bird", "lake", "rain", "snow", "wind"]


def _spaced(word: str) -> str:
    return " ".join(word)


def _pair(word: str) -> tuple[str, str]:
    return f"reverse: {_spaced(word)}", _spaced(word[::-1])


def _chat(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


# format key → (technique, one row of that format per word)
FILES: dict[str, tuple[str, Any]] = {
    "alpaca": ("sft", lambda w: {"instruction": "Reverse the letters.", "input": _spaced(w), "output": _pair(w)[1]}),
    "sharegpt": ("sft", lambda w: {"conversations": [{"from": "human", "value": _pair(w)[0]},
                                                     {"from": "gpt", "value": _pair(w)[1]}]}),
    "dolly": ("sft", lambda w: {"instruction": "Reverse the letters.", "context": _spaced(w), "response": _pair(w)[1]}),
    "question-answer": ("sft", lambda w: {"question": _pair(w)[0], "answer": _pair(w)[1]}),
    "input-output": ("sft", lambda w: {"input": _pair(w)[0], "output": _pair(w)[1]}),
    "implicit-preference": ("dpo", lambda w: {
        "chosen": _chat(("user", _pair(w)[0]), ("assistant", _pair(w)[1])),
        "rejected": _chat(("user", _pair(w)[0]), ("assistant", _spaced(w)))}),
    "standard": ("sft", lambda w: {"messages": _chat(("system", "Be brief."), ("user", _pair(w)[0]),
                                                     ("assistant", _pair(w)[1]))}),
}  # fmt: skip


def test_every_recognised_format_has_a_file_here():
    assert set(FILES) == {*formats.KNOWN, formats.STANDARD}


def test_each_recognised_format_trains_through_the_cli(tmp_path, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    specs = []
    for key, (technique, make) in FILES.items():
        path = tmp_path / f"{key}.jsonl"
        path.write_text("".join(json.dumps(make(w)) + "\n" for w in WORDS))
        out = tmp_path / f"job-{key}"
        spec = {"technique": technique, "model": str(tiny_model / "partial"), "dataset": str(path),
                "output_dir": str(out), "tracking": {"enabled": False},
                "training": {"method": "lora", "max_steps": 2, "batch_size": 4}}  # fmt: skip
        (tmp_path / f"{key}.json").write_text(json.dumps(spec))
        specs.append(str(tmp_path / f"{key}.json"))
    result = subprocess.run([sys.executable, "-m", "workers.training", "run", *specs], capture_output=True,
                            text=True, cwd=ROOT, check=False, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for key in FILES:
        folder = tmp_path / f"job-{key}"
        events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        finished = [e for e in events if e["event"] == "finished"]
        assert finished, (key, events[-1])
        configured = next(e for e in events if e["event"] == "configured")
        assert configured["rows"] == len(WORDS), (key, configured)
        assert any((folder / "rows-arrow").rglob("*.arrow")), "the trainer reads its rows from an Arrow cache"
        adapter = next(p for p in folder.rglob("adapter_config.json")).parent
        base = AutoModelForCausalLM.from_pretrained(tiny_model / "partial")
        PeftModel.from_pretrained(base, adapter)  # loads as any tool would load it
