"""Serving customized models: the built-in inference engine (engine.py), the vLLM command line (vllm.py)
and the OpenAI wire format both speak (protocol.py). Never imports Django, so that an engine can run on a
GPU host beside vLLM; the engine supervisor that turns Endpoint rows into engine processes is the
Django side's (workers/engines.py)."""
