"""The teacher that writes examples: any OpenAI-compatible chat endpoint (a provider, a vLLM server, this
project's own Atelier endpoints) or a local Hugging Face model loaded here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.training.chat import ChatFailed, chat
from workers.training.keys import key_from_env


class TeacherError(ValueError):
    """The teacher cannot be used at all (unreachable, refused, not loadable), said plainly."""


@dataclass
class Teacher:
    base_url: str = ""
    model: str = ""
    api_key: str | None = None
    local: str = ""  # a model folder or hub id, generated with here instead of over HTTP
    timeout: float = 120.0
    label: str = ""
    _loaded: Any = field(default=None, repr=False)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Teacher:
        if spec.get("local"):
            return cls(local=str(spec["local"]), label=f"local model {spec['local']}")
        if not spec.get("base_url") or not spec.get("model"):
            raise TeacherError(
                "Choose a teacher: an OpenAI-compatible URL and a model name, or a local model."
            )
        # Only from the variable the runner fills (workers.training.keys): never a key in the spec.
        key = key_from_env(spec.get("api_key_env"))
        return cls(
            base_url=str(spec["base_url"]).rstrip("/"), model=str(spec["model"]), api_key=key,
            timeout=float(spec.get("timeout", 120)), label=f"{spec['model']} at {spec['base_url']}",
        )  # fmt: skip

    def ask(self, messages: list[dict[str, str]], temperature: float = 0.8, max_tokens: int = 512) -> str:
        """The teacher's reply; TeacherError when it cannot be had at all."""
        if self.local:
            return self._generate(messages, temperature, max_tokens)
        try:
            return chat(self.base_url, self.model, messages, api_key=self.api_key, timeout=self.timeout,
                        temperature=temperature, max_tokens=max_tokens)  # fmt: skip
        except ChatFailed as exc:
            if exc.kind == "http":
                raise TeacherError(
                    f"The teacher ({self.label}) refused the request ({exc.status}): {exc.detail}"
                ) from exc
            if exc.kind == "timeout":
                raise TeacherError(
                    f"The teacher ({self.label}) did not answer within {self.timeout:g} s."
                ) from exc
            if exc.kind == "refused":
                raise TeacherError(f"The teacher's URL cannot be requested: {exc.detail}") from exc
            if exc.kind == "unreachable":
                raise TeacherError(
                    f"The teacher at {self.base_url} cannot be reached: {exc.detail}."
                ) from exc
            raise TeacherError(
                f"The teacher at {self.base_url} did not answer in the OpenAI format."
            ) from exc

    def _generate(self, messages: list[dict[str, str]], temperature: float, max_tokens: int) -> str:
        import torch

        from workers.training.models import ModelError, load_model, load_tokenizer
        from workers.training.spec import ModelRef

        if self._loaded is None:
            try:
                ref = ModelRef(self.local)
                self._loaded = (load_model(ref).eval(), load_tokenizer(ref))
            except ModelError as exc:
                raise TeacherError(f"The local teacher could not be loaded: {exc}") from exc
        model, tokenizer = self._loaded
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
        ids = {
            k: v[:, -max(1, limit - max_tokens) :] for k, v in ids.items()
        }  # keep the end of a long prompt
        with torch.no_grad():
            out = model.generate(
                **ids, max_new_tokens=min(max_tokens, max(1, limit - ids["input_ids"].shape[1])),
                do_sample=temperature > 0, temperature=temperature or None, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        return str(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
