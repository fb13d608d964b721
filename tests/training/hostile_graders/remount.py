# expect: PermissionError: [Errno 1] mount
# Remount the read-only /usr bind writable (what root in the old sandbox could do), then write into it.
import ctypes
import os

MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096


def grade(completion, **row):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"none", b"/usr", None, MS_REMOUNT | MS_BIND, None) != 0:
        raise PermissionError(ctypes.get_errno(), "mount", os.strerror(ctypes.get_errno()))
    with open("/usr/lib/escaped.txt", "w") as out:
        out.write("out")
    return 1.0
