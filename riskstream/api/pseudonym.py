"""Keyed pseudonyms for user ids, for campus systems that must not see Moodle ids.

HMAC-SHA256 with a secret key: stable (the same student keeps one pseudonym, so systems
can join over time) but not reversible without the key, and not guessable by hashing ids.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "p"
_PSEUDO = re.compile(r"^p[0-9a-f]{20}$")


class Pseudonymiser:
    def __init__(self, key: bytes | None) -> None:
        self._key = key or None
        self._cache: dict[int, str] = {}

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def out(self, user: int) -> str:
        """How a user id leaves the API."""
        if self._key is None:
            return str(user)
        p = self._cache.get(user)
        if p is None:
            digest = hmac.new(self._key, str(user).encode(), hashlib.sha256).hexdigest()
            p = PREFIX + digest[:20]
            if len(self._cache) < 1_000_000:
                self._cache[user] = p
        return p

    def opaque(self, value: str) -> str:
        """Other ids derived from user ids (alert ids hash site|course|user|...) get keyed too."""
        if self._key is None:
            return value
        return hmac.new(self._key, b"id|" + value.encode(), hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def looks_like(value: str) -> bool:
        return bool(_PSEUDO.match(value))

    def resolve(self, pseudonym: str, candidates: list[int]) -> int | None:
        """The user among ``candidates`` (a course's students) with this pseudonym."""
        for u in candidates:
            if hmac.compare_digest(self.out(u), pseudonym):
                return u
        return None
