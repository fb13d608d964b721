# expect: KeyError: 'ATELIER_HOSTILE_CANARY'
# Look for the worker's secrets in the grader's environment and in every process's /proc/PID/environ.
import os


def grade(completion, **row):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as environ:
                    if b"ATELIER_HOSTILE_CANARY" in environ.read():
                        return 1.0
            except OSError:
                pass
    return float(os.environ["ATELIER_HOSTILE_CANARY"] != "")
