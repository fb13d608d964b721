# expect: OSError: [Errno 30] Read-only file system
# Write next to the Python installation and in the root folder: only /tmp is writable.
def grade(completion, **row):
    for path in ("/usr/lib/python3/escaped.py", "/escaped.txt"):
        try:
            with open(path, "w") as out:
                out.write("out")
        except PermissionError:
            continue
    with open("/usr/escaped.txt", "w") as out:
        out.write("out")
    return 1.0
