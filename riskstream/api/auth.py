"""Bearer API keys, kept as sha256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re

from starlette.types import ASGIApp, Receive, Scope, Send

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The digest to put in ``RISKSTREAM_API_KEY_HASHES`` for a key handed to a client."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key_hashes(raw: str) -> tuple[str, ...]:
    """Split the setting; reject anything that is not a sha256 digest (a key pasted in clear).

    Each entry is ``DIGEST`` (the key works for every site) or ``SITE=DIGEST`` (only for the
    API serving that site)."""
    out = []
    for part in raw.replace("\n", ",").split(","):
        entry = part.strip()
        if not entry:
            continue
        site, _, h = entry.rpartition("=")
        h = h.strip().lower()
        if not _HEX64.match(h) or (entry.count("=") and not site.strip()):
            raise ValueError(
                "RISKSTREAM_API_KEY_HASHES must hold sha256 hex digests (optionally SITE=digest), "
                "not keys; make one with: riskstream api hash-key [--site SITE]"
            )
        out.append(f"{site.strip()}={h}" if site.strip() else h)
    return tuple(out)


def key_scope(entry: str) -> tuple[str | None, str]:
    """``SITE=DIGEST`` -> (site, digest); ``DIGEST`` -> (None, digest): every site."""
    site, _, digest = entry.rpartition("=")
    return (site or None), digest


class KeyChecker:
    """Accepts a bearer token when its digest equals one of the configured digests whose
    scope is every site or ``site``, the site this API serves."""

    def __init__(self, digests: tuple[str, ...], site: str | None = None) -> None:
        scoped = [key_scope(d) for d in digests]
        self._digests = tuple(
            bytes.fromhex(d) for s, d in scoped if s is None or site is None or s == site
        )

    def __bool__(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> bool:
        if not authorization or not self._digests:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        got = hashlib.sha256(token.strip().encode("utf-8")).digest()
        ok = False
        for d in self._digests:  # no early exit: time does not depend on which key matched
            ok |= hmac.compare_digest(got, d)
        return ok


UNAUTHORISED = b'{"detail":"a valid API key is required: send \'Authorization: Bearer <key>\'"}'


class BearerGuard:
    """Plain ASGI guard in front of every ``/v1/`` path: 401 unless the key is valid.

    A middleware rather than a FastAPI dependency: it costs a few microseconds, where a
    dependency costs tens on every request of the hot risk endpoint.
    """

    def __init__(self, app: ASGIApp, checker: KeyChecker, prefix: str = "/v1/") -> None:
        self.app = app
        self.checker = checker
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not self.checker.check(auth.decode("latin-1") if auth is not None else None):
                scope["route_label"] = "unauthorised"
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(UNAUTHORISED)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": UNAUTHORISED})
                return
        await self.app(scope, receive, send)
