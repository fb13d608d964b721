# expect: PermissionError: [Errno 1] Operation not permitted
# Become root: setuid(0), then run a setuid-root program in place of the grader.
import os


def grade(completion, **row):
    try:
        os.setuid(0)
        return 1.0
    except OSError:  # EINVAL: uid 0 is not even mapped in the sandbox's user namespace
        pass
    for program in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount", "/usr/bin/newgrp"):
        if os.path.exists(program):
            os.execv(program, [program])
    raise RuntimeError("no setuid program to try")
