from __future__ import annotations

from typing import Any

import pytest

from apps.endpoints.services import endpoint_deploy_builtin
from tests.endpoints.conftest import wait_ready


@pytest.fixture
def built_in_teacher(
    client, alice, alice_project, tiny_model, settings, asgi_server, engine_supervisor
) -> Any:
    """The built-in teacher deployed in alice's project and answering (the built-in engine, reached
    through the gateway), alice logged in: the endpoint."""
    settings.DATA_DIR = tiny_model.parent.parent
    teacher = endpoint_deploy_builtin(project=alice_project, user=alice, variant="teacher")
    wait_ready(teacher.pk)
    client.force_login(alice)
    return teacher


def documents_kept(project: Any) -> set[str]:
    """The files under the project's documents folder (a folder an earlier test's project of the same id
    may have left: compare before and after, never with nothing)."""
    from pathlib import Path

    from django.conf import settings

    folder = Path(settings.DATA_DIR) / "projects" / str(project.pk) / "documents"
    return {str(p) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()
