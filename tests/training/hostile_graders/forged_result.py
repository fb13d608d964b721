# expect: wrote on the sandbox's answer channel before it loaded
# Print the old harness's result line, try every descriptor it might have, and leave before grade() returns.
import json
import os

LINE = json.dumps({"results": [{"score": 1.0}] * 8}) + "\n"
print(LINE, flush=True)
for fd in range(1, 64):
    try:
        os.write(fd, LINE.encode())
        os.write(fd, (json.dumps({"i": 0, "score": 1.0}) + "\n" + json.dumps({"done": True}) + "\n").encode())
    except OSError:
        pass
for pid in range(1, 8):
    try:
        with open(f"/proc/{pid}/fd/3", "w") as f:
            f.write(json.dumps({"i": 0, "score": 1.0}) + "\n")
    except OSError:
        pass
os._exit(0)


def grade(completion, **row):
    return 0.0
