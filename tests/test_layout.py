"""The layout tells the architecture: the web app starts without the training stack, the training and
serving layers know no Django, and no module reaches into another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

HEAVY = ["torch", "transformers", "trl", "peft", "datasets", "mlflow", "accelerate"]
BASE = Path(settings.BASE_DIR)
# The layers that never import Django, and what they may import of the rest of the project: each other,
# and the shared process helpers. The Django side of each is beside them (workers/runner.py,
# workers/replicas.py, workers/engines.py).
DJANGO_FREE = ("workers/training", "workers/serving", "workers/processes.py")
DJANGO_FREE_MODULES = ("workers.training", "workers.serving", "workers.processes")


def _python_files(*places: str) -> list[Path]:
    files = []
    for place in places:
        path = BASE / place
        files += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return files


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(BASE).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Every import in the file, at any depth (a function's own imports too): its line, the absolute
    module it imports from, and the names it takes from there (empty for a plain `import`)."""
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolved against the file's own package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            yield node.lineno, module, [alias.name for alias in node.names]


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


def test_the_training_and_serving_layers_import_nothing_from_django_or_the_web_app():
    """Read, not run: an import inside a function that no test calls counts too (the engine supervisor
    once sat in workers/serving/ and reached into apps/ through fourteen of them)."""
    found = []
    for path in _python_files(*DJANGO_FREE):
        for line, module, _names in _imports(path):
            top = module.partition(".")[0]
            outside = top == "workers" and not module.startswith(DJANGO_FREE_MODULES)
            if top in ("django", "apps", "celery") or outside:
                found.append(f"{path.relative_to(BASE)}:{line} imports {module}")
    assert found == []


def test_the_inference_engine_never_imports_django():
    """The engine runs on GPU hosts beside vLLM: importing every serving module (and the process helpers
    it shares with the Django side) loads no Django and nothing of the web app."""
    modules = [_module_of(p) for p in _python_files("workers/serving", "workers/processes.py")]
    assert {"workers.serving.engine", "workers.serving.vllm", "workers.processes"} <= set(modules)
    code = (
        f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
        "print([m for m in sys.modules if m == 'django' or m.startswith(('django.', 'apps', 'celery'))])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin"},  # no DJANGO_SETTINGS_MODULE: nothing may need one
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_module_imports_another_modules_private_names():
    """A helper two modules share is public where it lives, or moves to a small shared module
    (workers/processes.py); `from x import _helper` couples a module to another's insides."""
    found = []
    for path in _python_files("apps", "workers", "bench"):
        for line, module, names in _imports(path):
            private = [
                n for n in names if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
            ]
            if private:
                found.append(f"{path.relative_to(BASE)}:{line} from {module} import {', '.join(private)}")
    assert found == []
