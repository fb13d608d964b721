"""Where a model may come from, for every field that chooses one (the wizard, Deploy, data generation's
teachers): the built-in tiny model by name, a Hugging Face Hub id, a folder inside the directories an
administrator offers (`ATELIER_MODEL_DIRS`), or an earlier job of the user's project, chosen by job.

Typed text never reaches the data folder: jobs' outputs and datasets belong to their projects, and a
path pasted from another project (or a guess at one) must not become a working model. So a folder is
accepted only after symlinks and `..` are resolved and the real path lies inside an offered directory
and outside the data folder, and every folder that fails that gets one message whether or not it
exists, so the field does not tell which server paths exist. Only what these functions return is
written into specs and endpoint rows."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

# org/name as the hub spells it: letters, digits, "-", "_", "." (not first, no ".."), at most 96 each.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
HUB_ID_EXAMPLE = "Qwen/Qwen2.5-0.5B-Instruct"
BUILTIN = "atelier-tiny"  # the built-in models' name: `atelier-tiny/base`, `atelier-tiny/partial`, ...
# The built-in family: base and partial are offered to customize (apps.jobs.wizard.TINY); judge and teacher
# are helpers (apps.jobs.wizard.HELPERS), deployed to score answers and to write data, and they resolve
# as models wherever the others do (a teacher or weak model typed as `atelier-tiny/teacher`).
VARIANTS = ("base", "partial", "judge", "teacher")


def model_dirs() -> list[Path]:
    """The offered directories, real paths, in the administrator's order."""
    return [Path(os.path.realpath(Path(d).expanduser())) for d in settings.MODEL_DIRS]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _not_offered(text: str) -> ValidationError:
    dirs = model_dirs()
    where = (
        "Model folders come from " + ", ".join(str(d) for d in dirs) + "."
        if dirs
        else "This server offers no model folders (an administrator lists them in ATELIER_MODEL_DIRS)."
    )
    return ValidationError(f"No model folder at {text} among the folders this server offers. {where}")


def is_path(text: str) -> bool:
    """Whether the text is meant as a folder on the server rather than a hub id."""
    return text.startswith(("/", ".", "~", "\\"))


def local_folder(text: str) -> str:
    """The real path of a model or adapter folder inside ATELIER_MODEL_DIRS (and outside the data
    folder); ValidationError otherwise, the same one for a missing and a refused folder."""
    text = text.strip()
    if not text or "\x00" in text:
        raise ValidationError("Type the folder that holds the model.")
    path = Path(os.path.realpath(Path(text).expanduser()))  # symlinks and ".." resolved first
    data = Path(os.path.realpath(settings.DATA_DIR))
    offered = any(_inside(path, d) for d in model_dirs())
    if not offered or _inside(path, data) or not path.is_dir():
        raise _not_offered(text)
    # Past this point the folder is one the administrator offers: saying what is wrong with it is fine.
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        try:
            base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        except (OSError, ValueError, AttributeError):
            base = None
        if not isinstance(base, str) or not base:
            raise ValidationError(f"The adapter at {text} does not say which base model it belongs to.")
        try:
            _adapter_base(base)
        except ValidationError as exc:
            raise ValidationError(
                f"The adapter at {text} is for a base model this server does not offer: {' '.join(exc.messages)}"
            ) from exc
    elif not (path / "config.json").is_file():
        raise ValidationError(f"The folder {text} holds no model (no config.json or adapter_config.json).")
    return str(path)


def _adapter_base(base: str) -> None:
    """An adapter's base is loaded by the workers as written, so it is vetted like typed text; the
    built-in tiny model counts, since adapters trained on it name its folder."""
    if is_path(base):
        real = Path(os.path.realpath(base))
        tiny = Path(os.path.realpath(Path(settings.DATA_DIR) / "models" / BUILTIN))
        if real.parent == tiny and (real / "config.json").is_file():
            return
        local_folder(base)
        return
    hub_id(base)


def hub_id(text: str) -> str:
    """A Hugging Face Hub id (org/name), or the same id given as an http(s) address on the configured
    hub; every other scheme (file://, s3://, ...) is refused."""
    text = text.strip()
    if SCHEME.match(text):
        text = _hub_url(text)
    if not HUB_ID.match(text) or ".." in text or text.endswith("."):
        raise ValidationError(f"“{text}” is not a Hugging Face model id (like {HUB_ID_EXAMPLE}).")
    # transformers takes a name that is also a folder relative to the working directory as that folder;
    # an id must never be a way into the server's files.
    if Path(text).exists():
        raise ValidationError(f"“{text}” is not a Hugging Face model id (like {HUB_ID_EXAMPLE}).")
    return text


def _hub_url(text: str) -> str:
    hub = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    url = urlsplit(text)
    if url.scheme.lower() not in ("http", "https"):
        raise ValidationError(
            f"A model is a Hugging Face id (like {HUB_ID_EXAMPLE}) or a folder this server offers; "
            f"“{url.scheme}:” addresses are not models."
        )
    if url.hostname != hub.hostname or url.port != hub.port or url.query or url.fragment or url.username:
        raise ValidationError(
            f"Only models on the Hugging Face Hub ({hub.scheme}://{hub.netloc}) can be given by address; "
            f"type its id instead (like {HUB_ID_EXAMPLE})."
        )
    parts = [p for p in url.path.split("/") if p]
    if len(parts) != 2:
        raise ValidationError(
            f"“{text}” is not the address of a model on the hub (like {hub.scheme}://{hub.netloc}/{HUB_ID_EXAMPLE})."
        )
    return "/".join(parts)


def builtin(text: str) -> str | None:
    """The folder of a built-in tiny model when the text names it (`atelier-tiny/partial`), else None."""
    name, _, variant = text.strip().partition("/")
    if name != BUILTIN or variant not in VARIANTS:
        return None
    path = Path(settings.DATA_DIR) / "models" / BUILTIN / variant
    if not (path / "config.json").exists():
        raise ValidationError(
            "The built-in model is not built yet: run `make run` (or `python -m workers.training build-tiny`)."
        )
    return str(path)


def typed_model(text: str) -> str:
    """A model typed into a free-text field: the built-in tiny model by name, a folder (vetted) or a hub
    id (vetted, not looked up)."""
    text = text.strip()
    if not text:
        raise ValidationError("Type a Hugging Face model id or a model folder.")
    if (path := builtin(text)) is not None:
        return path
    return local_folder(text) if is_path(text) else hub_id(text)
