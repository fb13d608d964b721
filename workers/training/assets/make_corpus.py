"""Regenerate corpus.txt, the general text the built-in tiny model is pre-trained on: docstrings of
Python's standard library (PSF licence), one paragraph a line. Run once by a developer; the build reads
the committed file, so it does not depend on the Python version at hand."""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

MODULES = [
    "string",
    "textwrap",
    "collections",
    "itertools",
    "functools",
    "pathlib",
    "json",
    "csv",
    "datetime",
    "calendar",
    "random",
    "statistics",
    "fractions",
    "decimal",
    "heapq",
    "bisect",
    "array",
    "queue",
    "threading",
    "subprocess",
    "socket",
    "logging",
    "argparse",
    "unittest",
    "shutil",
    "tempfile",
    "glob",
    "fnmatch",
    "zipfile",
    "tarfile",
    "gzip",
    "hashlib",
    "base64",
    "struct",
    "codecs",
    "os",
    "io",
    "time",
    "sqlite3",
    "difflib",
    "pprint",
    "enum",
    "abc",
    "contextlib",
    "dataclasses",
    "inspect",
    "ast",
    "traceback",
    "warnings",
    "weakref",
    "copy",
    "pickle",
    "configparser",
    "math",
    "operator",
    "numbers",
    "asyncio",
    "signal",
    "uuid",
    "ipaddress",
    "sched",
    "zlib",
    "platform",
    "importlib",
    "tokenize",
    "graphlib",
    "optparse",
    "getopt",
    "shlex",
    "cmd",
    "zoneinfo",
    "mimetypes",
    "smtplib",
    "socketserver",
]
LIMIT = 200_000


def main() -> None:
    warnings.simplefilter("ignore")
    paragraphs: list[str] = []
    size = 0
    for name in MODULES:
        module = importlib.import_module(name)
        docs = [module.__doc__ or ""]
        for attr in sorted(dir(module)):
            obj = getattr(module, attr, None)
            if not attr.startswith("_") and getattr(obj, "__module__", "") == name:
                docs.append(getattr(obj, "__doc__", None) or "")
        for doc in docs:
            text = re.sub(r"\s+", " ", doc).strip()
            if len(text) > 40 and text.isascii() and text not in paragraphs:
                paragraphs.append(text)
                size += len(text) + 1
        if size > LIMIT:
            break
    Path(__file__).with_name("corpus.txt").write_text("\n".join(paragraphs) + "\n")


if __name__ == "__main__":
    main()
