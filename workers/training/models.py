"""Loading base models for the real world: a Hugging Face id (cached in HF_HOME, token from HF_TOKEN),
a local folder, or an earlier job's output (a merged model, or a PEFT adapter on top of its base), so
that SFT → DPO → RLVR chains work. Remote code is never trusted.

Chains: a job that starts from an earlier job's adapter trains from that adapter merged into its base,
saved once as a full model in the parent job's `merged/` folder (`training_base`). The child's adapter
then names that folder as its base, so everything that reads the adapter (the evaluation, the built-in
engine, vLLM, export, plain transformers + PEFT) loads it on the weights it was trained on. Before this,
PEFT wrote the grand-parent (the model under the parent's adapter) into the child's adapter_config.json,
and every tool loaded the child onto the wrong base. `resolve` is the one place that reads a reference.

This module loads with torch and transformers, for the processes that train and generate; the web
process reads a model's config, tokenizer and chat template through workers.training.model_files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workers.training.spec import ModelRef


class ModelError(ValueError):
    """A model that cannot be loaded, with a message that names it."""


def resolve(ref: ModelRef) -> dict[str, Any]:
    """Where the weights are: {"base": id or folder, "adapter": folder or None, "local": bool}."""
    name = ref.name_or_path
    path = Path(name).expanduser()
    if path.exists():
        if (path / "adapter_config.json").exists():
            base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if not base:
                raise ModelError(f"The adapter at {path} does not say which base model it belongs to.")
            inner = resolve(ModelRef(base, ref.revision))
            return {**inner, "adapter": str(path)}
        if not (path / "config.json").exists():
            raise ModelError(f"The folder {path} holds no model (no config.json or adapter_config.json).")
        return {"base": str(path), "adapter": None, "local": True}
    if name.startswith(("/", "./", "../", "~")):
        raise ModelError(f"No model folder at {name}.")
    return {"base": name, "adapter": None, "local": False}


def is_adapter(name_or_path: str | Path) -> bool:
    return Path(name_or_path).expanduser().joinpath("adapter_config.json").is_file()


def merged_folder(adapter: str | Path) -> Path | None:
    """Where an earlier job's adapter is kept merged into its base: the job's own `merged/` folder,
    beside `adapter/` (the folder Export's merge writes too, so a merge is done once for both). None for
    an adapter that is not a job's output (a folder an administrator offers is no place to write in)."""
    path = Path(adapter).expanduser().absolute()
    return path.parent / "merged" if path.name == "adapter" else None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock beside `folder`: two children of one parent starting at once merge it once."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(f"{folder.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def merge_adapter(adapter: str | Path, out: str | Path) -> Path:
    """The adapter merged into its base, saved (safetensors, with the tokenizer) to `out` unless a merge is
    already there. Written to `out.partial` and renamed, under a lock, so a folder named `out` is always
    complete and written once; later callers reuse it as it is."""
    out = Path(out).expanduser().absolute()
    with _locked(out):
        if (out / "config.json").is_file():
            return out
        ref = ModelRef(str(adapter))
        model = load_model(ref, method="full")  # the adapter is merged into its base as it loads
        tokenizer = load_tokenizer(ref)
        partial = out.with_name(f"{out.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)  # a merge killed half way
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(out, ignore_errors=True)  # an empty or half-copied folder, never a complete one
        partial.rename(out)
    return out


def training_base(ref: ModelRef, *, scratch: Path) -> ModelRef:
    """The model a job trains from. An adapter is merged into its base first, into its job's `merged/`
    folder (or, for an adapter that is not a job's, `scratch`, a folder of the new job's own), and the
    job trains from that full model: what it saves then names a base any tool can load. Anything else is
    trained from as it is."""
    if not is_adapter(ref.name_or_path):
        return ref
    folder = merged_folder(ref.name_or_path)
    if folder is None or not os.access(folder.parent, os.W_OK):
        folder = scratch
    return ModelRef(str(merge_adapter(ref.name_or_path, folder)))


def trained_from(name_or_path: str) -> str:
    """What a job whose spec names this model started from, as the evaluation should load it: an earlier
    job's merged folder when there is one, else the reference itself (an adapter still loads merged)."""
    if is_adapter(name_or_path):
        folder = merged_folder(name_or_path)
        if folder is not None and (folder / "config.json").is_file():
            return str(folder)
    return name_or_path


def load_tokenizer(ref: ModelRef) -> Any:
    """The transformers tokenizer, for a process that trains or generates. The web process never calls
    this: model_files.ChatTokenizer reads the same files without transformers."""
    from transformers import AutoTokenizer

    where = resolve(ref)
    source = (
        where["adapter"]
        if where["adapter"] and Path(where["adapter"], "tokenizer_config.json").exists()
        else where["base"]
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source,
            revision=ref.revision if not where["local"] else None,
            trust_remote_code=False,
            token=os.environ.get("HF_TOKEN"),
        )
    except OSError as exc:
        raise ModelError(hub_message(ref.name_or_path, exc)) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    ref: ModelRef, *, method: str = "full", dtype: Any = None, trainable_adapter: bool = True
) -> Any:
    """The model to train. An earlier job's adapter is merged into its base first (merge_and_unload), so
    the new job starts from the customized weights whatever method it uses, and a full fine-tuning job
    trains and saves a plain transformers model."""
    import torch
    from transformers import AutoModelForCausalLM

    where = resolve(ref)
    kwargs: dict[str, Any] = {"trust_remote_code": False, "token": os.environ.get("HF_TOKEN")}
    if not where["local"] and ref.revision:
        kwargs["revision"] = ref.revision
    if method == "qlora":
        if not torch.cuda.is_available():
            raise ModelError(
                "QLoRA needs an NVIDIA GPU (4-bit weights through bitsandbytes); this machine has none. Choose LoRA or full fine-tuning."
            )
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(where["base"], **kwargs)
    except OSError as exc:
        raise ModelError(hub_message(ref.name_or_path, exc)) from exc
    except ValueError as exc:
        raise ModelError(f"{ref.name_or_path} cannot be loaded as a text-generation model: {exc}") from exc
    if where["adapter"]:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, where["adapter"]).merge_and_unload()
        # PEFT froze every base weight when it wrapped them, and merging keeps them frozen: full
        # fine-tuning from an adapter then had nothing to train ("element 0 of tensors does not
        # require grad"). A LoRA or QLoRA job freezes the base again when it wraps the merged model.
        if method == "full":
            model.requires_grad_(True)
    return model


def hub_message(name: str, exc: Exception) -> str:
    """Why a Hugging Face model could not be had, in words that name it (also model_files.hub_folder)."""
    text = str(exc)
    if (
        "offline" in text.lower()
        or "connect" in text.lower()
        or "resolve" in text.lower()
        or "couldn't" in text.lower()
    ):
        return (
            f"The model “{name}” is not on this machine and the Hugging Face Hub cannot be reached. "
            "Download it on a machine with internet access into HF_HOME, or give a local folder."
        )
    if "not a valid model identifier" in text or "404" in text or "Repository Not Found" in text:
        return f"There is no model “{name}” on the Hugging Face Hub (or it is private: set HF_TOKEN)."
    return f"The model “{name}” could not be loaded: {text.splitlines()[0] if text else type(exc).__name__}"
