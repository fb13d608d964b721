"""Keys for rendered fragments kept in the cache (Django's `{% cache %}` tag): a key is made of everything
its fragment shows, read by the request as it would have been to render it, so a fragment whose data
changed gets another key. Nothing is invalidated and nothing shown is stale; what is saved is the
rendering (the jobs list's rows, the header's menus: most of a page's time, bench/web.py). Templates
keep a fragment 600 s after it was rendered; settings.CACHES bounds how many are kept."""

from __future__ import annotations

import hashlib
from typing import Any


def key(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
