"""The layout tells the architecture: the web app starts without the training stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.conf import settings

HEAVY = ["torch", "transformers", "trl", "peft", "datasets", "mlflow", "accelerate"]


def test_the_web_app_and_the_celery_app_import_nothing_heavy_at_module_level():
    base = Path(settings.BASE_DIR)
    modules = sorted(
        ".".join(path.relative_to(base).with_suffix("").parts)
        for folder in ("apps", "workers")
        for path in (base / folder).rglob("*.py")
        if "training" not in path.parts and path.name != "__main__.py"
    )
    assert "apps.settings" in modules and "workers.tasks" in modules
    code = (
        "import django, importlib, sys; django.setup()\n"
        f"for name in {modules!r}: importlib.import_module(name.removesuffix('.__init__'))\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=base,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_inference_engine_never_imports_django():
    """The engine runs on GPU hosts beside vLLM; only the supervisor (which writes rows) is Django-aware."""
    code = (
        "import sys, workers.serving.engine, workers.serving.protocol, workers.serving.vllm\n"
        "print([m for m in sys.modules if m == 'django' or m.startswith(('django.', 'apps'))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
