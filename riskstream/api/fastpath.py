"""The risk endpoint's hot path as plain ASGI, in front of FastAPI's routing.

Campus systems poll this one route; FastAPI's routing, dependency solving and parameter
validation cost about as much CPU as the Redis read itself. The FastAPI route stays the
reference (and the OpenAPI document): only a well-formed request for an existing student is
answered here, with the very same body (``Api.risk_out``); anything else (bad parameters,
404s) falls through to FastAPI, so errors keep one implementation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from riskstream.api.app import Api

RISK_ROUTE = "/v1/courses/{course}/students/{user}/risk"
_RISK_PATH = re.compile(r"^/v1/courses/(\d{1,16})/students/(\d{1,18}|p[0-9a-f]{20})/risk$")
_HEADERS = [(b"content-type", b"application/json")]


class RiskFastPath:
    def __init__(self, app: ASGIApp, api: Api) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            m = _RISK_PATH.match(scope["path"])
            if m is not None and int(m[1]) <= 2**53:
                body = await self._body(int(m[1]), m[2])
                if body is not None:
                    scope["route_label"] = RISK_ROUTE
                    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _body(self, course: int, user: str) -> bytes | None:
        api = self.api
        if user.isdigit():
            uid: int | None = int(user)
        elif api.pseudo.enabled:
            uid = api.pseudo.resolve(user, await api.reader.course_members(course))
        else:
            uid = None
        if uid is None:
            return None
        _known, st = await api.reader.student(course, uid)
        if st is None:
            return None
        return orjson.dumps(api.risk_out(st))
