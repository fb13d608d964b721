from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The built-in tiny model, built once and kept in the test data folder between runs (a build of
    another version is rebuilt)."""
    from workers.training import tiny

    out = Path(settings.DATA_DIR) / "models" / "atelier-tiny"
    tiny.build(out)
    return out
