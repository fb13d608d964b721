"""Loading base models for the real world: a Hugging Face id (cached in HF_HOME, token from HF_TOKEN),
a local folder, or an earlier job's output (a merged model, or a PEFT adapter on top of its base), so
that SFT → DPO → RLVR chains work. Remote code is never trusted."""

from __future__ import annotations

import json
import os
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


def load_tokenizer(ref: ModelRef) -> Any:
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
        raise ModelError(_hub_message(ref.name_or_path, exc)) from exc
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
        raise ModelError(_hub_message(ref.name_or_path, exc)) from exc
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


def _hub_message(name: str, exc: Exception) -> str:
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
