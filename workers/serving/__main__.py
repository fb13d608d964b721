"""python -m workers.serving engine ...   the built-in inference engine (see engine.py)
python -m workers.serving supervise     the engine supervisor: Endpoint rows into engine processes
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("engine", "supervise"):
        sys.exit(__doc__)
    if argv[0] == "engine":
        from workers.serving.engine import main as engine_main

        engine_main(argv[1:])
    else:
        from workers.serving.supervisor import main as supervise

        supervise(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
