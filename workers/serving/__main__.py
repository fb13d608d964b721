"""python -m workers.serving engine ...   the built-in inference engine (see engine.py)

The engine supervisor, which turns Endpoint rows into engine processes, is Django-aware and lives beside
the other Django-side workers: python -m workers.engines
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    if not argv or argv[0] != "engine":
        sys.exit(__doc__)
    from workers.serving.engine import main as engine_main

    engine_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
