# expect: ptrace: Operation not permitted
# Attach to the harness (the sandbox's trusted process) and read its memory.
import ctypes
import os

PTRACE_ATTACH = 16


def grade(completion, **row):
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in (os.getppid(), 1):
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            return 1.0
    raise PermissionError(ctypes.get_errno(), f"ptrace: {os.strerror(ctypes.get_errno())}")
