# expect: PermissionError: [Errno 1] Operation not permitted
# Processes without end: os.fork, then subprocess (vfork/clone) and multiprocessing as fallbacks.
import os


def grade(completion, **row):
    while True:
        os.fork()
