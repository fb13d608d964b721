"""Events: JSON lines that a training process writes to stdout and to a file, one object a line.

    {"event": "started", "time": ..., ...}
    {"event": "step", "step": 10, "max_steps": 100, "metrics": {...}, "eta_seconds": 12.3}
    {"event": "checkpoint", "step": 50, "path": "..."}
    {"event": "warning", "message": "..."}
    {"event": "finished", "artifacts": {...}, "metrics": {...}}
    {"event": "failed", "message": "a sentence a person understands"}

The worker tails these into the job row; the file survives the process for a later look.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import IO, Any


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null, and numbers from numpy or torch as floats."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class EventWriter:
    def __init__(self, path: Path | None, stream: IO[str] | None = None, to_stdout: bool = True) -> None:
        self.path = path
        # sys.stdout as it is now, not as it was at import (tests and redirections replace it).
        self.stream = stream if stream is not None else (sys.stdout if to_stdout else None)
        self._file = path.open("a") if path else None

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = _clean({"event": event, "time": round(time.time(), 3), **fields})
        line = json.dumps(record, sort_keys=True)
        for out in (self._file, self.stream):
            if out is not None:
                out.write(line + "\n")
                out.flush()
        return record

    def warning(self, message: str, **fields: Any) -> None:
        self.emit("warning", message=message, **fields)

    def close(self) -> None:
        if self._file:
            self._file.close()


def read_new_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The whole lines written after `offset` (a writer may be in the middle of the last one), as events,
    and the offset to read from next time."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
