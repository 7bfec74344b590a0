"""Async REST client for Moodle web services, with retries and typed errors.

Why its own client: Moodle wants form-encoded ``name[0][key]=value`` arrays, answers errors
with HTTP 200 bodies, and answers 403 with an empty body when web services are off. The
``transport`` argument is the seam tests use (a real loopback server is preferred).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog

from moodle_connector.errors import (
    WS_ADMIN_HINT,
    FunctionMissing,
    MoodleError,
    MoodleUnavailable,
    RecordMissing,
    WebServicesDisabled,
    error_from_body,
)

log = structlog.get_logger("moodle_connector.client")

REST_PATH = "/webservice/rest/server.php"
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode()


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten nested lists/dicts the way Moodle's REST server expects (``a[0][b]=v``)."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}[{k}]", v)
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, bool):
            out.append((prefix, "1" if value else "0"))
        else:
            out.append((prefix, str(value)))

    for key, value in params.items():
        walk(key, value)
    return out


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts."""

    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): jittered so clients spread out."""
        cap = min(self.max_s, self.base_s * (2 ** (attempt - 1)))
        return random.uniform(cap / 2, cap)


class _Token:
    """Holds the token so no repr, f-string or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'**********'"

    __str__ = __repr__


_WSTOKEN_VALUE = re.compile(r"(wstoken[=:\"' ]+)[^&\s\"']+", re.I)


def redact(text: str, token: str) -> str:
    """Blank ``token`` wherever it appears in ``text``, and any ``wstoken=`` value."""
    if token:
        text = text.replace(token, "**********")
    return _WSTOKEN_VALUE.sub(r"\1**********", text)


class MoodleClient:
    """One site's REST endpoint. Use ``async with`` or call ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not base_url:
            raise ValueError(
                "Moodle URL is empty: set RISKSTREAM_MOODLE_URL (e.g. https://lms.example.edu)"
            )
        if not token:
            raise ValueError("Moodle token is empty: set RISKSTREAM_MOODLE_TOKEN")
        self.base_url = base_url.rstrip("/")
        self._token = _Token(token)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self.known_functions: set[str] | None = None
        self.function_versions: dict[str, str] = {}
        self.user_id: int | None = None  # the token's user, from site info
        self.calls = 0
        self.retries = 0

    def __repr__(self) -> str:
        return f"MoodleClient({self.base_url!r})"

    async def __aenter__(self) -> MoodleClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, function: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call one wsfunction; retries transient failures; raises a ``MoodleError``."""
        data = [
            ("wstoken", self._token.reveal()),
            ("wsfunction", function),
            ("moodlewsrestformat", "json"),
            *encode_params(params or {}),
        ]
        last = ""
        for attempt in range(1, self.retry.attempts + 1):
            self.calls += 1
            try:
                resp = await self._http.post(REST_PATH, content=_form(data), headers=_FORM)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if resp.status_code == 403 and not resp.content.strip():
                    raise WebServicesDisabled(
                        f"{self.base_url} answered HTTP 403 with an empty body to {function}: "
                        "web services or the REST protocol are disabled on the site: "
                        f"{WS_ADMIN_HINT}.",
                        function=function,
                    )
                if resp.status_code >= 500 or resp.status_code == 429:
                    last = f"HTTP {resp.status_code}"
                elif resp.status_code != 200:
                    raise MoodleError(
                        f"{function}: unexpected HTTP {resp.status_code} from {self.base_url}; "
                        "check RISKSTREAM_MOODLE_URL points at the Moodle root",
                        function=function,
                    )
                else:
                    return self._parse(function, resp)
            if attempt < self.retry.attempts:
                self.retries += 1
                delay = self.retry.delay(attempt)
                log.warning(
                    "moodle call failed, retrying",
                    function=function,
                    error=last,
                    attempt=attempt,
                    delay_s=round(delay, 2),
                )
                await self._sleep(delay)
        raise MoodleUnavailable(
            f"Moodle at {self.base_url} did not answer {function} after "
            f"{self.retry.attempts} attempts (last error: {last}); check the site is up "
            "and reachable from this host",
            function=function,
        )

    def _redact(self, text: str) -> str:
        """``text`` from upstream with the token (and any ``wstoken=`` value) blanked."""
        return redact(text, self._token.reveal())

    def _parse(self, function: str, resp: httpx.Response) -> Any:
        try:
            body = resp.json()
        except ValueError:
            snippet = self._redact(resp.text[:200].replace("\n", " "))
            raise MoodleError(
                f"{function}: Moodle answered something that is not JSON ({snippet!r}); "
                "is RISKSTREAM_MOODLE_URL the Moodle root?",
                function=function,
            ) from None
        if isinstance(body, dict) and "exception" in body and "errorcode" in body:
            # upstream text can echo the request (``Invalid token wstoken=...``): redacted
            # before it reaches any message, log line or console
            body = {k: self._redact(v) if isinstance(v, str) else v for k, v in body.items()}
            err = error_from_body(function, body)
            if (
                isinstance(err, RecordMissing)
                and self.known_functions is not None
                and function not in self.known_functions
            ):
                err = FunctionMissing(
                    f"{function} is not available on this site: install or upgrade the "
                    "local_riskstream plugin, or the function was removed in this release.",
                    function=function,
                    errorcode=err.errorcode,
                    exception=err.exception,
                )
            raise err
        return body

    async def site_info(self) -> dict[str, Any]:
        """``core_webservice_get_site_info``; remembers which functions the token may call."""
        info = await self.call("core_webservice_get_site_info")
        if not isinstance(info, dict):
            raise MoodleError("core_webservice_get_site_info returned no object")
        self.known_functions = {str(f.get("name")) for f in info.get("functions", [])}
        self.function_versions = {
            str(f.get("name")): str(f.get("version", "")) for f in info.get("functions", [])
        }
        uid = info.get("userid")
        self.user_id = int(uid) if isinstance(uid, int | str) and str(uid).isdigit() else None
        return info
