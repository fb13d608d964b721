"""The built-in inference engine: one process serving one base model and any number of LoRA adapters
(chosen per request by the `model` field) through an OpenAI-compatible API on a private port.

Concurrent requests are batched: a scheduler thread takes every waiting request (up to --max-batch),
left-pads them into one batch and runs one `generate` for all of them, with each row's own adapter
(PEFT's mixed-adapter batches), temperature, top-p, seed, stop strings and token limit. Tokens go back to
each request as they are produced, so streaming and batching work together. The base model answers to
--name (default "base"); adapters are loaded and unloaded at run time with the same requests vLLM takes
(POST /v1/load_lora_adapter, /v1/unload_lora_adapter), so the engine supervisor drives both engines alike.

    python -m workers.serving engine --model FOLDER_OR_HUB_ID --port 8100 [--adapter NAME=FOLDER ...]

Never imports Django; torch and transformers only inside the functions that run the model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from workers.processes import exit_with_parent
from workers.serving import protocol
from workers.serving.protocol import ApiError, Sampling

log = logging.getLogger("atelier.engine")
BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
GATHER_SECONDS = 0.003  # how long the scheduler waits for more requests to join a batch


@dataclass
class Sequence:
    """One choice of one request as it moves through the engine."""

    index: int
    input_ids: list[int]
    adapter: str | None
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[tuple[int, str, str]]
    tokens: list[int] = field(default_factory=list)
    stream: bool = True  # send each piece of text as it comes (else only the end)
    text: str = ""  # what has been sent
    decoded: str = ""  # the text of `tokens` so far, decoded a few tokens at a time
    prefix_offset: int = 0
    read_offset: int = 0
    finish: str | None = None
    cancelled: bool = False
    generator: Any = None

    def send(self, kind: str, value: str) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, (self.index, kind, value))


class Engine:
    """The model, its adapters and the batching scheduler."""

    def __init__(self, model: str, *, max_batch: int = 32, device: str | None = None) -> None:
        self.model_name = model
        self.max_batch = max_batch
        self.device = device
        self.adapters: dict[str, str] = {}
        self.pending: queue.Queue[Sequence] = queue.Queue()
        self.lock = threading.Lock()  # generate and adapter changes never overlap
        self.in_flight = 0
        self.served = 0
        self.last_request_at = 0.0
        self.loaded_at = 0.0

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cuda = torch.cuda.is_available()
        self.device = self.device or ("cuda" if cuda else "cpu")
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
        token = os.environ.get("HF_TOKEN")
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name, trust_remote_code=False, token=token)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        kwargs: dict[str, Any] = {"trust_remote_code": False, "token": token}
        if dtype is not None:
            kwargs["dtype"] = dtype
        model: Any = AutoModelForCausalLM.from_pretrained(self.model_name, **kwargs)
        self.model = model.to(self.device).eval()
        config = self.model.config
        self.context = int(getattr(config, "max_position_embeddings", 0) or 4096)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos = {int(e) for e in [*eos, self.tokenizer.eos_token_id] if e is not None}
        self.loaded_at = time.time()
        threading.Thread(target=self._schedule, name="scheduler", daemon=True).start()

    # Adapters ---------------------------------------------------------------------------------------------

    def load_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        if name in self.adapters:
            if self.adapters[name] == path:
                return
            raise ApiError(400, f"An adapter named {name} is already loaded from {self.adapters[name]}.")
        with self.lock:
            try:
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(path, adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise ApiError(
                    400, f"The adapter at {path} cannot be loaded on {self.model_name}: {exc}"
                ) from exc
            self.model.eval()
            self.adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        if name not in self.adapters:
            raise ApiError(404, f"No adapter named {name} is loaded.", code="model_not_found")
        with self.lock:
            if len(self.adapters) == 1:
                self.model = self.model.unload()  # back to the plain base model, the adapter's layers removed
            else:
                self.model.delete_adapter(name)
            del self.adapters[name]

    # Requests ---------------------------------------------------------------------------------------------

    def submit(
        self,
        input_ids: list[int],
        adapter: str | None,
        sampling: Sampling,
        index: int,
        out: asyncio.Queue,
        stream: bool = True,
    ) -> Sequence:
        import torch

        if len(input_ids) >= self.context:
            raise ApiError(
                400,
                f"The prompt is {len(input_ids)} tokens; this model reads at most {self.context} tokens.",
                code="context_length_exceeded",
                param="messages",
            )
        limit = min(sampling.max_tokens, self.context - len(input_ids))
        seq = Sequence(
            index, input_ids, adapter, dataclasses.replace(sampling, max_tokens=limit),
            asyncio.get_running_loop(), out, stream=stream,
        )  # fmt: skip
        if sampling.seed is not None and sampling.temperature > 0:
            seq.generator = torch.Generator(device=self.device).manual_seed((sampling.seed + index) % 2**63)
        self.in_flight += 1
        self.last_request_at = time.time()
        self.pending.put(seq)
        return seq

    def done(self, seq: Sequence) -> None:
        seq.cancelled = True  # a request that ended early (client gone) stops being generated
        self.in_flight -= 1
        self.served += 1
        self.last_request_at = time.time()

    def _schedule(self) -> None:
        while True:
            batch = [self.pending.get()]
            time.sleep(GATHER_SECONDS)
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            batch = [s for s in batch if not s.cancelled]
            if not batch:
                continue
            try:
                with self.lock:
                    self._generate(batch)
            except Exception as exc:
                log.exception("generation failed")
                for seq in batch:
                    if seq.finish is None:
                        seq.finish = "error"
                        seq.send("error", f"Generation failed: {exc}")

    def _generate(self, batch: list[Sequence]) -> None:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        engine = self

        class Sample(LogitsProcessor):
            """Each row's own temperature, top-p and seed: the chosen token keeps its score, every other
            token gets -inf, and generate's greedy pick then takes it."""

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                chosen = scores.argmax(dim=-1)
                for i, seq in enumerate(batch):
                    if seq.sampling.temperature > 0 and seq.finish is None:
                        probs = torch.softmax(scores[i].float() / seq.sampling.temperature, dim=-1)
                        if seq.sampling.top_p < 1.0:
                            ordered, order = probs.sort(descending=True)
                            outside = ordered.cumsum(-1) - ordered > seq.sampling.top_p
                            probs[order[outside]] = 0.0
                        chosen[i] = torch.multinomial(probs, 1, generator=seq.generator)[0]
                picked = torch.full_like(scores, float("-inf"))
                picked[torch.arange(len(batch)), chosen] = 0.0
                return picked

        class Stream:
            """Hands each new token to its sequence as soon as it is chosen (generate's streamer hook)."""

            first = True

            def put(self, value: Any) -> None:
                if self.first:  # the prompt
                    self.first = False
                    return
                for seq, token in zip(batch, value.tolist(), strict=True):
                    if seq.finish is None:
                        engine._advance(seq, int(token))

            def end(self) -> None:
                for seq in batch:
                    if seq.finish is None:
                        engine._finish(seq, "length")

        class AllDone(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.tensor(
                    [s.finish is not None or s.cancelled for s in batch], device=input_ids.device
                )

        width = max(len(s.input_ids) for s in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s.input_ids)) + s.input_ids for s in batch])
        mask = torch.tensor([[0] * (width - len(s.input_ids)) + [1] * len(s.input_ids) for s in batch])
        kwargs: dict[str, Any] = {}
        if self.adapters:
            kwargs["adapter_names"] = [s.adapter or BASE_ADAPTER for s in batch]
        with torch.no_grad():
            self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max(s.sampling.max_tokens for s in batch),
                do_sample=False,
                logits_processor=LogitsProcessorList([Sample()]),
                stopping_criteria=StoppingCriteriaList([AllDone()]),
                streamer=Stream(),
                pad_token_id=pad,
                # No end-of-sequence rule in generate itself: each row's end is decided in _advance (some
                # rows ignore it) and AllDone then stops that row.
                eos_token_id=None,
                **kwargs,
            )

    def _advance(self, seq: Sequence, token: int) -> None:
        if token in self.eos and not seq.sampling.ignore_eos:
            self._finish(seq, "stop")
            return
        seq.tokens.append(token)
        if not seq.stream and not seq.sampling.stop:  # nobody reads the text before the end: decode it then
            if len(seq.tokens) >= seq.sampling.max_tokens:
                self._finish(seq, "length")
            return
        text = self._decode(seq)
        cut = min(
            (i for i in (text.find(s, max(0, len(seq.text) - len(s))) for s in seq.sampling.stop) if i >= 0),
            default=-1,
        )
        if cut >= 0:
            self._send(seq, text[:cut])
            self._finish(seq, "stop")
            return
        # Hold back what may be the start of a stop string, or half of a multi-byte character.
        hold = max(
            (k for s in seq.sampling.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0
        )
        if len(seq.tokens) >= seq.sampling.max_tokens:
            self._send(seq, text)
            self._finish(seq, "length")
            return
        self._send(seq, text[: len(text) - hold])

    def _decode(self, seq: Sequence) -> str:
        """The whole text so far, decoding only the newest tokens (as TGI and vLLM do): decoding all of
        them again at every step costs more than generating at this size. A token's text can depend on
        the ones before it (spaces, characters split over tokens), hence the overlap; a piece that ends in
        half a character waits for the next token."""
        decode = self.tokenizer.decode
        before = str(decode(seq.tokens[seq.prefix_offset : seq.read_offset], skip_special_tokens=True))
        now = str(decode(seq.tokens[seq.prefix_offset :], skip_special_tokens=True))
        if len(now) > len(before) and not now.endswith("\ufffd"):
            seq.decoded += now[len(before) :]
            seq.prefix_offset, seq.read_offset = seq.read_offset, len(seq.tokens)
        return seq.decoded

    def _send(self, seq: Sequence, text: str) -> None:
        if len(text) > len(seq.text) and text.startswith(seq.text):
            delta, seq.text = text[len(seq.text) :], text
            if seq.stream:
                seq.send("delta", delta)

    def _finish(self, seq: Sequence, reason: str) -> None:
        if not seq.stream and not seq.sampling.stop:
            seq.text = str(self.tokenizer.decode(seq.tokens, skip_special_tokens=True)).removesuffix("\ufffd")
        seq.finish = reason
        seq.send("finish", reason)


# HTTP -----------------------------------------------------------------------------------------------------


def app(engine: Engine, name: str) -> Any:
    """The engine's OpenAI-compatible API (a Starlette app)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def error(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    def adapter_for(model: str) -> str | None:
        if model == name:
            return None
        if model in engine.adapters:
            return model
        raise protocol.model_not_found(model)

    async def health(request: Request) -> Response:
        return JSONResponse({
            "status": "ok", "model": engine.model_name, "name": name, "adapters": engine.adapters,
            "in_flight": engine.in_flight, "served": engine.served, "last_request_at": engine.last_request_at,
            "loaded_at": engine.loaded_at, "pid": os.getpid(), "memory_bytes": _memory(),
        })  # fmt: skip

    async def models(request: Request) -> Response:
        created = int(engine.loaded_at)
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "atelier",
                "root": engine.model_name,
            }
        ]
        data += [
            {
                "id": a,
                "object": "model",
                "created": created,
                "owned_by": "atelier",
                "root": path,
                "parent": name,
            }
            for a, path in engine.adapters.items()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def load_adapter(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not body.get("lora_name") or not body.get("lora_path"):
                raise ApiError(400, "Give lora_name and lora_path.")
            await asyncio.to_thread(engine.load_adapter, str(body["lora_name"]), str(body["lora_path"]))
        except ApiError as exc:
            return error(exc)
        return Response(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    async def unload_adapter(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            await asyncio.to_thread(engine.unload_adapter, str(body.get("lora_name")))
        except ApiError as exc:
            return error(exc)
        return Response(f"Success: LoRA adapter '{body['lora_name']}' removed successfully.")

    async def run(request: Request, chat: bool) -> Response:
        try:
            body = protocol.json_body(await request.body())
            adapter = adapter_for(body["model"])
            sampling = protocol.sampling(body)
            if chat:
                messages = protocol.chat_messages(body)
                try:
                    text = engine.tokenizer.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=True
                    )
                except Exception as exc:
                    raise ApiError(
                        400, f"The model's chat template rejected these messages: {exc}", param="messages"
                    ) from exc
                prompts = [engine.tokenizer(text, add_special_tokens=False)["input_ids"]]
            else:
                prompts = [engine.tokenizer(p)["input_ids"] for p in protocol.completion_prompts(body)]
            out: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
            stream = bool(body.get("stream"))
            seqs: list[Sequence] = []
            try:
                for ids in prompts:
                    for _ in range(sampling.n):
                        seqs.append(engine.submit(ids, adapter, sampling, len(seqs), out, stream))
            except ApiError:
                for seq in seqs:
                    engine.done(seq)
                raise
        except ApiError as exc:
            return error(exc)
        prompt_tokens = sum(len(ids) for ids in prompts)
        rid = protocol.new_id("chatcmpl" if chat else "cmpl")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _stream(engine, seqs, out, rid, body["model"], chat, prompt_tokens, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            failed = await _collect(seqs, out)
        finally:
            for seq in seqs:
                engine.done(seq)
        if failed:
            return error(ApiError(500, failed, type="server_error"))
        choices = [(s.text, s.finish or "stop") for s in seqs]
        completion_tokens = sum(len(s.tokens) for s in seqs)
        shape = protocol.chat_completion if chat else protocol.text_completion
        return JSONResponse(shape(rid, body["model"], choices, prompt_tokens, completion_tokens))

    async def chat_completions(request: Request) -> Response:
        return await run(request, chat=True)

    async def completions(request: Request) -> Response:
        return await run(request, chat=False)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/load_lora_adapter", load_adapter, methods=["POST"]),
            Route("/v1/unload_lora_adapter", unload_adapter, methods=["POST"]),
        ]
    )


async def _collect(seqs: list[Sequence], out: asyncio.Queue[tuple[int, str, str]]) -> str | None:
    """Wait until every sequence finished; an error message if generation failed."""
    open_ = len(seqs)
    while open_:
        _index, kind, value = await out.get()
        if kind == "error":
            return value
        if kind == "finish":
            open_ -= 1
    return None


async def _stream(
    engine: Engine,
    seqs: list[Sequence],
    out: asyncio.Queue[tuple[int, str, str]],
    rid: str,
    model: str,
    chat: bool,
    prompt_tokens: int,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    created = int(time.time())
    extra: dict[str, Any] = {"usage_": None} if include_usage else {}

    def chunk(index: int | None, text: str = "", finish: str | None = None, **more: Any) -> bytes:
        if chat:
            delta = {"content": text} if text or more.pop("first", False) else {}
            if more.pop("role", False):
                delta = {"role": "assistant", "content": ""}
            return protocol.sse(
                protocol.chat_chunk(rid, model, created, index, delta, finish, **{**extra, **more})
            )
        more.pop("first", None)
        more.pop("role", None)
        return protocol.sse(
            protocol.text_chunk(rid, model, created, index, text, finish, **{**extra, **more})
        )

    try:
        if chat:
            for seq in seqs:
                yield chunk(seq.index, role=True)
        open_ = len(seqs)
        while open_:
            index, kind, value = await out.get()
            if kind == "delta":
                yield chunk(index, value)
            elif kind == "finish":
                open_ -= 1
                yield chunk(index, finish=value)
            else:  # a failed generation: say so in the stream, OpenAI-style, and end it
                yield protocol.sse(ApiError(500, value, type="server_error").body())
                break
        if include_usage:
            completion_tokens = sum(len(s.tokens) for s in seqs)
            yield chunk(None, usage_=protocol.usage(prompt_tokens, completion_tokens))
        yield protocol.sse("[DONE]")
    finally:
        for seq in seqs:
            engine.done(seq)


def _memory() -> int | None:
    """What the engine holds now: resident memory, plus GPU memory where there is a GPU."""
    import torch

    rss = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")  # noqa: SIM115
    if torch.cuda.is_available():
        return (rss or 0) + int(torch.cuda.memory_allocated())
    return rss


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m workers.serving engine", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", required=True, help="a local folder or a Hugging Face id")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="base", help="the name the base model answers to")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=FOLDER")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    if args.parent:  # stop when the supervisor that started this engine is gone: no engine outlives it
        exit_with_parent(args.parent)
    import uvicorn

    engine = Engine(args.model, max_batch=args.max_batch)
    began = time.perf_counter()
    try:
        engine.load()
        for item in args.adapter:
            adapter_name, _, path = item.partition("=")
            engine.load_adapter(adapter_name, path)
    except Exception as exc:  # noqa: BLE001 - whatever stops the model loading, say it in one line
        # The line the supervisor shows on the endpoint's page.
        reason = " ".join(str(getattr(exc, "message", None) or exc).split())[:400] or type(exc).__name__
        print(f"ENGINE FAILED: {args.model} could not be loaded: {reason}", file=sys.stderr, flush=True)
        sys.exit(3)
    log.info("loaded %s in %.1f s on %s; listening on %s:%s", args.model, time.perf_counter() - began,
             engine.device, args.host, args.port)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            app(engine, args.name), host=args.host, port=args.port, log_level="warning", lifespan="off"
        )
