# expect: ptrace: Operation not permitted
# Attach to the harness (the sandbox's trusted process) or any other process there, or open its memory.
import ctypes
import os

PTRACE_ATTACH = 16


def grade(completion, **row):
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in (os.getppid(), 1):
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            return 1.0
    error = ctypes.get_errno()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/mem", "r+b"):
                    return 1.0
            except OSError:
                pass
    ctypes.set_errno(error)
    raise PermissionError(ctypes.get_errno(), f"ptrace: {os.strerror(ctypes.get_errno())}")
