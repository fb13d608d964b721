"""The only environment variables a training process reads API keys from. The worker's runner
(workers/runner.py) fills them from a project secret or an administrator's allow-listed variable, for
one run; a spec can name no other variable, so a job cannot send the worker's PATH (or anything else in
its environment) to a URL of its choosing."""

from __future__ import annotations

import os

JUDGE_KEY_ENV = "ATELIER_JUDGE_API_KEY"
TEACHER_KEY_ENV = "ATELIER_TEACHER_KEY"
KEY_ENVS = (JUDGE_KEY_ENV, TEACHER_KEY_ENV)


def key_from_env(name: str | None) -> str | None:
    """The key in `name`, when it is one of the variables above; None for any other name."""
    if name is None or name not in KEY_ENVS:
        return None
    return os.environ.get(name) or None
