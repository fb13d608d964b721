"""Near-duplicate removal: MinHash signatures of word 3-grams and locality-sensitive hashing (datasketch),
so two examples that say almost the same thing keep only the first."""

from __future__ import annotations

import re
from typing import Any


def _shingles(text: str, n: int = 3) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else {""}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class NearDuplicates:
    """Remembers what it has seen; `seen_before(text)` is True for a text within `threshold` Jaccard
    similarity (estimated) of an earlier one."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 64) -> None:
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        self.num_perm = num_perm
        self.index = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.count = 0

    def signature(self, text: str) -> Any:
        signature = self._minhash(num_perm=self.num_perm, seed=1)
        for shingle in _shingles(text):
            signature.update(shingle.encode())
        return signature

    def seen_before(self, text: str) -> bool:
        signature = self.signature(text)
        if self.index.query(signature):
            return True
        self.index.insert(str(self.count), signature)
        self.count += 1
        return False
