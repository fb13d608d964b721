"""MLflow for every run: the only module of the training layer that imports mlflow.

One experiment per project (the spec names it), the whole spec and the chosen hyperparameters as params,
metrics at every logging step, system metrics, the adapter or model as artifacts and a registered model
version on success. A resumed run continues its MLflow run. If the tracking server is down, training goes
on: the caller gets None and says so in a warning event.

A training step's metrics reach MLflow only once a complete checkpoint covers that step (`log_step`,
`checkpoint`): MLflow cannot delete a point, and a run killed after step 57 that resumes from checkpoint
50 does steps 51-57 again, which would otherwise leave two points for each. Until then they wait in
memory and in the job folder's pending file (JobFolder.pending), so that a run killed between a checkpoint and its flush sends them when it
resumes (`resumed`); points past the checkpoint it resumes from are dropped. Sending one twice does no
harm: the point keeps its timestamp, and MLflow's store ignores an identical point.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from workers.training.folder import JobFolder

BATCH = 1000  # MLflow takes at most 1000 metrics a log_batch call


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = str(value)[:6000]


def _reachable(uri: str) -> str | None:
    """None when the server answers, else why not."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=3) as response:  # noqa: S310
            return None if response.status == 200 else f"it answered {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class Tracker:
    def __init__(self, run_id: str, tracking_uri: str, output: Path | None = None) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.pending_file = JobFolder(output).pending if output is not None else None
        self.pending: list[dict[str, Any]] = []  # {"key", "value", "timestamp", "step"}
        self.sent: dict[str, int] = {}  # the last step sent, by key

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        """Now (asynchronously): for numbers that are never redone."""
        import mlflow

        numbers = _numbers(metrics)
        if numbers:
            mlflow.log_metrics(numbers, step=step, run_id=self.run_id, synchronous=False)

    def log_step(self, metrics: dict[str, Any], step: int) -> None:
        """A training step's numbers, sent when a complete checkpoint covers the step."""
        stamp = int(time.time() * 1000)
        # One point a key and step: the Trainer's closing log repeats `epoch` at the last step, which
        # may already have gone out with its checkpoint; a later point for a pending step replaces it.
        numbers = {k: v for k, v in _numbers(metrics).items() if step > self.sent.get(k, -1)}
        points = [{"key": k, "value": v, "timestamp": stamp, "step": step} for k, v in numbers.items()]
        self.pending = [p for p in self.pending if not (p["step"] == step and p["key"] in numbers)] + points
        if self.pending_file is not None and points:
            with self.pending_file.open("a") as f:
                f.writelines(json.dumps(p) + "\n" for p in points)

    def checkpoint(self, step: int) -> None:
        """A complete checkpoint of `step` is on disk: send every point up to it. A tracking server that
        does not answer now never stops training: the points wait for the next checkpoint."""
        try:
            self._send(step)
        except Exception as exc:  # noqa: BLE001 - any MLflow or network error
            print(
                f"MLflow did not take the metrics up to step {step} ({exc}); trying again later",
                file=sys.stderr,
            )

    def resumed(self, step: int) -> None:
        """Training goes on from a checkpoint of `step` (0: from the start): send what an earlier process
        left waiting up to it, drop the rest (those steps are done again)."""
        if self.pending_file is not None and self.pending_file.exists():
            for line in self.pending_file.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a line cut short by the kill
                    point = json.loads(line)
                    if isinstance(point, dict) and int(point.get("step", step + 1)) <= step:
                        self.pending.append(point)
        # A later line for the same key and step replaced the earlier one.
        self.pending = list({(p["key"], p["step"]): p for p in self.pending}.values())
        self._send(step)
        self.pending = []
        self._rewrite()

    def _send(self, up_to: int | None) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        ready = [p for p in self.pending if up_to is None or p["step"] <= up_to]
        if not ready:
            return
        client = MlflowClient(self.tracking_uri)
        metrics = [Metric(p["key"], float(p["value"]), int(p["timestamp"]), int(p["step"])) for p in ready]
        for start_at in range(0, len(metrics), BATCH):
            client.log_batch(self.run_id, metrics=metrics[start_at : start_at + BATCH], synchronous=True)
        for point in ready:
            self.sent[point["key"]] = max(self.sent.get(point["key"], -1), int(point["step"]))
        self.pending = [p for p in self.pending if up_to is not None and p["step"] > up_to]
        self._rewrite()

    def _rewrite(self) -> None:
        if self.pending_file is None:
            return
        temporary = self.pending_file.with_suffix(".tmp")
        temporary.write_text("".join(json.dumps(p) + "\n" for p in self.pending))
        temporary.replace(self.pending_file)  # never a half-written list

    def finish(
        self, *, artifact: Path, kind: str, register_as: str | None, metrics: dict[str, Any]
    ) -> dict[str, Any]:
        import mlflow
        from mlflow import MlflowClient

        # The closing numbers (train_loss again among them) replace any pending ones of that step.
        self.log_step(metrics, step=int(metrics.get("global_step", 0)))
        self._send(None)  # the run is complete: nothing left to redo
        mlflow.flush_async_logging()
        client = MlflowClient(self.tracking_uri)
        client.log_artifacts(self.run_id, str(artifact), artifact_path=kind)
        info: dict[str, Any] = {"run_id": self.run_id}
        if register_as:
            from mlflow.exceptions import MlflowException

            try:
                client.create_registered_model(register_as)
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                    raise
            source = f"{client.get_run(self.run_id).info.artifact_uri}/{kind}"
            version = client.create_model_version(register_as, source, run_id=self.run_id)
            info |= {"registered_model": register_as, "version": int(version.version)}
        mlflow.end_run("FINISHED")
        return info

    def fail(self) -> None:
        import mlflow

        with contextlib.suppress(Exception):  # the points before a divergence explain it; best effort
            self._send(None)
        mlflow.flush_async_logging()
        mlflow.end_run("FAILED")


def start(
    *, tracking_uri: str | None, experiment: str, run_name: str | None, output: Path, params: dict[str, Any]
) -> tuple[Tracker | None, str | None]:
    """(tracker, None), or (None, the reason there is none) when the server cannot be reached."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"file://{output / 'mlruns'}"
    problem = _reachable(uri)
    if problem:
        return None, f"MLflow at {uri} cannot be reached ({problem}): training goes on without tracking."
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "true")  # sync over HTTP made GRPO 2.1x slower
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "5")
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    id_file = JobFolder(output).run_id
    previous = id_file.read_text().strip() if id_file.exists() else None
    run = None
    if previous:
        from mlflow.exceptions import MlflowException

        try:
            run = mlflow.start_run(run_id=previous, log_system_metrics=True)
        except MlflowException:
            previous = None  # that run is gone (another tracking store): start a new one
    if run is None:
        run = mlflow.start_run(run_name=run_name, log_system_metrics=True)
    id_file.write_text(run.info.run_id)
    if not previous:
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        items = list(flat.items())
        for start_at in range(0, len(items), 100):  # MLflow takes at most 100 params a call
            mlflow.log_params(dict(items[start_at : start_at + 100]))
    return Tracker(run.info.run_id, uri, output), None


def log_evaluation(
    *, tracking_uri: str | None, run_id: str, metrics: dict[str, float], files: list[Path]
) -> str | None:
    """An evaluation's numbers and files on a (usually finished) training run; the reason when it could
    not be done, else None. The per-sample file also goes in as an MLflow table for its evaluation view."""
    import json

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return "No MLflow tracking server is configured."
    problem = _reachable(uri)
    if problem:
        return f"MLflow at {uri} cannot be reached ({problem})."
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        return f"MLflow has no run {run_id}."
    stamp = int(__import__("time").time() * 1000)
    items = [Metric(key, float(value), stamp, 0) for key, value in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])
    for path in files:
        if path.exists():
            client.log_artifact(run_id, str(path), artifact_path="evaluation")
    samples = next((p for p in files if p.name.endswith(".jsonl") and p.exists()), None)
    if samples is not None:
        rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
        table: dict[str, list[Any]] = {
            "prompt": [r["prompt"] for r in rows],
            "reference": [r.get("reference") for r in rows],
        }
        for label in rows[0]["outputs"] if rows else []:
            table[f"output: {label}"] = [r["outputs"][label]["text"] for r in rows]
        mlflow.set_tracking_uri(uri)
        mlflow.log_table(data=table, artifact_file="evaluation/samples_table.json", run_id=run_id)
    return None
