"""Every run in the real MLflow server, read back through its REST API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import mlflow_get
from workers.training import tiny
from workers.training.events import read_events
from workers.training.folder import JobFolder

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services


def _run(tmp_path: Path, model: Path, tracking: dict, steps: int = 8) -> list[dict]:
    spec = {
        "technique": "sft",
        "model": str(model),
        "dataset": str(tiny.DEMO / "reverse" / "sft.jsonl"),
        "eval_dataset": str(tiny.DEMO / "reverse" / "eval.jsonl"),
        "output_dir": str(tmp_path / "out"),
        "training": {"method": "lora", "max_steps": steps},
        "tracking": tracking,
        "job_id": "42",
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "workers.training", "run", str(tmp_path / "spec.json")],
        cwd=ROOT, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return read_events(JobFolder(tmp_path / "out").events)


def test_a_run_its_params_metrics_artifacts_and_model_version_are_in_mlflow(
    tmp_path, tiny_model, mlflow_service
):
    events = _run(
        tmp_path, tiny_model / "partial",
        {"tracking_uri": mlflow_service, "experiment": "project-7", "register_as": f"reverse-{tmp_path.name}"},
    )  # fmt: skip
    finished = events[-1]
    assert finished["event"] == "finished"
    run_id = finished["mlflow"]["run_id"]

    run = mlflow_get(mlflow_service, "runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["run_name"] == "sft-42"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["spec.technique"] == "sft" and params["hparams.method"] == "lora"
    assert float(params["hparams.learning_rate"]) > 0
    metrics = {m["key"] for m in run["data"]["metrics"]}
    assert {"loss", "learning_rate", "grad_norm", "heldout_after"} <= metrics
    assert any(key.startswith("system/") for key in metrics)
    history = mlflow_get(mlflow_service, "metrics/get-history", run_id=run_id, metric_key="loss")["metrics"]
    assert sorted(m["step"] for m in history) == list(range(1, 9))
    experiment = mlflow_get(mlflow_service, "experiments/get-by-name", experiment_name="project-7")[
        "experiment"
    ]
    assert run["info"]["experiment_id"] == experiment["experiment_id"]

    files = mlflow_get(mlflow_service, "artifacts/list", run_id=run_id, path="adapter")["files"]
    assert "adapter/adapter_model.safetensors" in {f["path"] for f in files}
    name = f"reverse-{tmp_path.name}"
    versions = mlflow_get(mlflow_service, "model-versions/search", filter=f"name='{name}'")["model_versions"]
    assert [(v["version"], v["run_id"]) for v in versions] == [("1", run_id)]
    assert finished["mlflow"] == {"run_id": run_id, "registered_model": name, "version": 1}


def test_training_goes_on_with_a_warning_when_mlflow_is_down(tmp_path, tiny_model):
    events = _run(tmp_path, tiny_model / "partial", {"tracking_uri": "http://127.0.0.1:9"}, steps=3)
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert warnings and "MLflow at http://127.0.0.1:9 cannot be reached" in warnings[0]
    assert events[-1]["event"] == "finished" and events[-1]["mlflow"] is None


def test_a_run_id_left_from_another_tracking_store_starts_a_new_run(tmp_path, tiny_model, mlflow_service):
    (tmp_path / "out").mkdir()
    JobFolder(tmp_path / "out").run_id.write_text("04b0e32df054438894ee234df7ff135d")
    events = _run(
        tmp_path, tiny_model / "partial", {"tracking_uri": mlflow_service, "experiment": "stale"}, steps=2
    )
    run_id = events[-1]["mlflow"]["run_id"]
    assert run_id != "04b0e32df054438894ee234df7ff135d"
    assert mlflow_get(mlflow_service, "runs/get", run_id=run_id)["run"]["info"]["status"] == "FINISHED"


def test_step_metrics_reach_mlflow_once_a_checkpoint_covers_them_and_redone_steps_once(
    tmp_path, mlflow_service
):
    import mlflow

    from workers.training import tracking

    def loss_steps(run_id: str) -> list[int]:
        history = mlflow_get(mlflow_service, "metrics/get-history", run_id=run_id, metric_key="loss")
        return sorted(m["step"] for m in history.get("metrics", []))

    tracker, problem = tracking.start(
        tracking_uri=mlflow_service, experiment="pending", run_name="r", output=tmp_path, params={}
    )
    assert tracker is not None, problem
    for step in range(1, 11):
        tracker.log_step({"loss": 1.0 / step, "epoch": 0.1 * step}, step)
        if step == 4:
            tracker.checkpoint(4)
    assert loss_steps(tracker.run_id) == [1, 2, 3, 4]  # 5-10 may be done again: not sent yet
    mlflow.end_run("KILLED")  # what the process's death leaves (another process resumes the run)
    # Killed after writing checkpoint 8 but before sending its points: the next process sends 5-8 from
    # the pending file and drops 9-10, which it trains again.
    again, _ = tracking.start(
        tracking_uri=mlflow_service, experiment="pending", run_name="r", output=tmp_path, params={}
    )
    assert again is not None and again.run_id == tracker.run_id
    again.resumed(8)
    assert loss_steps(again.run_id) == [1, 2, 3, 4, 5, 6, 7, 8]
    again.resumed(8)  # sent twice (killed before the pending file was rewritten): still one point a step
    for step in (9, 10):
        again.log_step({"loss": 0.5}, step)
    again.finish(artifact=tmp_path / "empty", kind="adapter", register_as=None, metrics={"global_step": 10})
    assert loss_steps(again.run_id) == list(range(1, 11))
    redone = mlflow_get(mlflow_service, "metrics/get-history", run_id=again.run_id, metric_key="loss")
    assert {m["value"] for m in redone["metrics"] if m["step"] == 10} == {0.5}
