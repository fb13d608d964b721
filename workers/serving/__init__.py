"""Serving customized models: the built-in inference engine (engine.py, no Django), the vLLM command
line (vllm.py), the OpenAI wire format both speak (protocol.py) and the engine supervisor
(supervisor.py), which turns Endpoint rows into engine processes."""
