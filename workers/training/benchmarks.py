"""Named benchmarks through EleutherAI's lm-evaluation-harness, on data that is already on this machine.

Atelier never downloads benchmark data: the harness runs with the Hugging Face hub offline, so a
benchmark whose dataset is not in the datasets cache (HF_HOME) gets a message saying so and how to put it
there. Local tasks of one's own (lm-eval YAML files) are found in ATELIER_BENCHMARKS_DIR.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from workers.training.spec import ModelRef


def _task_manager() -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=os.environ.get("ATELIER_BENCHMARKS_DIR") or None)


def _missing_data(name: str, exc: Exception) -> str:
    cache = os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return (
        f"The benchmark “{name}” needs its data, which is not on this machine ({exc}). Atelier never "
        f"downloads benchmark data: put the dataset into the Hugging Face cache at {cache} on a machine "
        "with internet access (for example `hf download --repo-type dataset NAME`), then evaluate again."
    )


def run_benchmarks(model: ModelRef, names: Sequence[str], limit: int | None = 100) -> dict[str, Any]:
    """{benchmark: {"metrics": {name: value}, "samples": n}} or {benchmark: {"problem": words}}."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    # The libraries read those variables once, at import; in a worker that has loaded a model before,
    # they are read already, and a missing dataset cost half a minute of retries against the network.
    import datasets.config
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from workers.training.models import load_model, load_tokenizer

    tasks = _task_manager()
    results: dict[str, Any] = {}
    lm = None
    for name in names:
        if name not in tasks.all_tasks:
            results[name] = {"problem": f"lm-evaluation-harness has no benchmark “{name}”. Check its spelling "
                                        "(`lm-eval ls tasks` lists them) or add a local task to ATELIER_BENCHMARKS_DIR."}  # fmt: skip
            continue
        if lm is None:
            lm = HFLM(
                pretrained=load_model(model, method="full"), tokenizer=load_tokenizer(model), batch_size=8
            )
        try:
            out = simple_evaluate(
                model=lm, tasks=[name], task_manager=tasks, limit=limit, apply_chat_template=True
            )
        except (ConnectionError, FileNotFoundError, OSError) as exc:
            results[name] = {"problem": _missing_data(name, exc)}
            continue
        except Exception as exc:  # noqa: BLE001 - the harness's tasks fail in many ways; say which
            results[name] = {"problem": f"The benchmark “{name}” failed: {exc}"}
            continue
        scores = (out or {}).get("results", {}).get(name, {})
        numbers = {
            key.split(",")[0]: float(value)
            for key, value in scores.items()
            if "," in key and "stderr" not in key and isinstance(value, int | float)
        }
        samples = (out or {}).get("n-samples", {}).get(name, {}).get("effective")
        results[name] = {"metrics": numbers, "samples": samples}
    return results
