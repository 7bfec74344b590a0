"""A fake Moodle: a real HTTP server on loopback serving the recorded Moodle 5.0.2 shapes.

Responses are the recorded bodies (``shared/moodle-recorded``) byte for byte where one
exists; the event log is ``local_riskstream_get_events`` with the recorded row shape, fed
from the recorded log and/or synthetic rows. Faults can be injected: HTTP 5xx, timeouts,
connection resets, invalid token, functions missing from the service, web services off (403).

Run alone for benchmarks: ``python3 -m tests.moodle_connector.fake_moodle --rate 5000``.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

RECORDED = next(
    (
        p / "shared" / "moodle-recorded"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "moodle-recorded").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "moodle-recorded",
)
EVENTS = "local_riskstream_get_events"
PUSH = "local_riskstream_push_alerts"
WS_CALLED = "\\core\\event\\webservice_function_called"
PLUGIN_FUNCTIONS = (EVENTS, PUSH)
# functions that exist on a stock 5.0 site but are not in the recorded token's service
OTHER_EXISTING = ("core_user_create_users", "mod_assign_get_assignments")


def decode_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``a[0][b]=v`` -> ``{"a": [{"b": "v"}]}`` (what Moodle's REST server does)."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        parts = re.findall(r"[^\[\]]+", name)
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})

    def listify(v: Any) -> Any:
        if isinstance(v, dict):
            v = {k: listify(x) for k, x in v.items()}
            if v and all(k.isdigit() for k in v):
                return [v[k] for k in sorted(v, key=int)]
        return v

    return listify(out)  # type: ignore[no-any-return]


def load(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def recorded_log() -> list[dict[str, Any]]:
    """The lab site's whole log (1705 rows) as recorded."""
    rows: list[dict[str, Any]] = []
    for f in (
        "local_labevents_get_events_full_page1.json",
        "local_labevents_get_events_full_page2.json",
    ):
        rows.extend(json.loads(load(f))["events"])
    return rows


def _error(name: str) -> bytes:
    return load(name)


class FakeMoodle:
    """Start with ``with FakeMoodle() as m: m.url``; mutate attributes to inject faults."""

    def __init__(
        self, token: str = "fake-token-0123456789abcdef", *, log_ws_calls: bool = True
    ) -> None:
        self.token = token
        self.log_ws_calls = log_ws_calls
        info = json.loads(load("core_webservice_get_site_info.json"))
        self.site_info = info
        self.service: set[str] = {f["name"] for f in info["functions"]} | set(PLUGIN_FUNCTIONS)
        self.plugin_installed = True
        self.ws_enabled = True
        self.faults: deque[str] = deque()  # "500", "503", "timeout", "reset", "html"
        self.timeout_sleep_s = 3.0
        self.hang: set[str] = set()  # functions that always take timeout_sleep_s to answer
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.pushed: dict[str, dict[str, Any]] = {}
        self.push_calls = 0
        self.messages: list[dict[str, Any]] = []
        self.attempts: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for a in json.loads(load("mod_quiz_get_user_quiz_attempts.json"))["attempts"]:
            self.attempts.setdefault((a["quiz"], a["userid"]), []).append(a)
        self._ids: list[int] = []
        self._courses: list[int] = []
        self._json: list[str] = []
        self._lock = threading.Lock()
        self._templates = [
            r
            for r in recorded_log()
            if r["edulevel"] == 2
            and r["courseid"] == 2
            and r["eventname"].endswith("_viewed")
            and r["eventname"] != "\\mod_quiz\\event\\attempt_viewed"
        ]
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._feeder: threading.Thread | None = None
        self._stop_feed = threading.Event()

    # ---- the event log -------------------------------------------------------------------
    @property
    def last_id(self) -> int:
        return self._ids[-1] if self._ids else 0

    def add_rows(self, rows: Iterable[Any]) -> None:
        """Append rows (ids must grow); stored as JSON text. Malformed rows are allowed."""
        with self._lock:
            for r in rows:
                d = r if isinstance(r, dict) else {}
                rid = int(d["id"]) if isinstance(d.get("id"), int) else self.last_id + 1
                self._ids.append(rid)
                c = d.get("courseid")
                self._courses.append(c if isinstance(c, int) else -1)
                self._json.append(json.dumps(r, separators=(",", ":")))

    def load_recorded(self) -> list[dict[str, Any]]:
        rows = recorded_log()
        self.add_rows(rows)
        return rows

    def synthetic(
        self, n: int, users: Iterable[int] = range(4, 34), t: float | None = None
    ) -> list[dict[str, Any]]:
        """``n`` student activity rows in the recorded shape, ids after the current last."""
        us = list(users)
        start = self.last_id + 1
        now = int(t if t is not None else time.time())
        out = []
        for i in range(n):
            tpl = self._templates[(start + i) % len(self._templates)]
            r = dict(tpl)
            r["id"] = start + i
            r["userid"] = us[(start + i) % len(us)]
            if r.get("relateduserid") is not None:
                r["relateduserid"] = r["userid"]
            r["timecreated"] = now
            r["origin"] = "web"
            out.append(r)
        return out

    def add_synthetic(self, n: int, **kw: Any) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.synthetic(n, **kw)
        self.add_rows(rows)
        return rows

    def feed(self, rate: float, tick_s: float = 0.05) -> None:
        """A site producing ``rate`` rows per second (timecreated = now), in a thread."""

        def loop() -> None:
            due = 0.0
            nxt = time.monotonic()
            while not self._stop_feed.is_set():
                due += rate * tick_s
                n = int(due)
                due -= n
                if n:
                    self.add_synthetic(n)
                nxt += tick_s
                time.sleep(max(0.0, nxt - time.monotonic()))

        self._feeder = threading.Thread(target=loop, daemon=True)
        self._feeder.start()

    def _ws_row(self, function: str) -> None:
        tpl = {
            "eventname": WS_CALLED,
            "component": "core",
            "action": "called",
            "target": "webservice_function",
            "objecttable": None,
            "objectid": None,
            "crud": "r",
            "edulevel": 0,
            "contextid": 1,
            "contextlevel": 10,
            "contextinstanceid": 0,
            "userid": 2,
            "courseid": 0,
            "relateduserid": None,
            "anonymous": 0,
            "other": json.dumps({"function": function}),
            "timecreated": int(time.time()),
            "origin": "ws",
            "ip": "127.0.0.1",
            "realuserid": None,
        }
        with self._lock:
            tpl = {"id": self.last_id + 1, **tpl}
            self._ids.append(tpl["id"])
            self._courses.append(0)
            self._json.append(json.dumps(tpl, separators=(",", ":")))

    def _events(self, p: dict[str, Any]) -> bytes:
        try:
            since = int(p.get("sinceid", 0))
            limit = int(p.get("limit", 1000))
            course = int(p.get("courseid", 0))
        except ValueError:
            return _error("error_local_labevents_invalid_param.json")
        if not 1 <= limit <= 5000:
            return _error("error_local_labevents_invalid_param.json")
        with self._lock:
            start = bisect.bisect_right(self._ids, since)
            picked: list[str] = []
            last = since
            i = start
            while i < len(self._ids) and len(picked) < limit:
                if course == 0 or self._courses[i] == course:
                    picked.append(self._json[i])
                    last = self._ids[i]
                i += 1
            more = any(course == 0 or c == course for c in self._courses[i : i + 1]) or (
                course != 0 and course in self._courses[i:]
            )
        return (
            '{"events":['
            + ",".join(picked)
            + f'],"lastid":{last},"hasmore":'
            + ("true" if more else "false")
            + ',"warnings":[]}'
        ).encode()

    # ---- functions -------------------------------------------------------------------------
    def existing(self) -> set[str]:
        names = {
            f["name"] for f in json.loads(load("core_webservice_get_site_info.json"))["functions"]
        }
        names |= set(OTHER_EXISTING)
        if self.plugin_installed:
            names |= set(PLUGIN_FUNCTIONS)
        return names

    def answer(self, function: str, p: dict[str, Any]) -> bytes:
        if function == "":
            return _error("error_missing_wsfunction.json")
        if function not in self.existing():
            return _error("error_function_does_not_exist.json")
        if function not in self.service:
            return _error("error_function_not_in_service.json")
        if self.log_ws_calls:
            self._ws_row(function)
        if function == "core_webservice_get_site_info":
            info = copy.deepcopy(self.site_info)
            info["functions"] = [
                {"name": n, "version": "2025041402"} for n in sorted(self.service & self.existing())
            ]
            return json.dumps(info).encode()
        if function == EVENTS:
            return self._events(p)
        if function == PUSH:
            return self._push(p)
        if function == "core_message_send_instant_messages":
            out = []
            for m in p.get("messages", []):
                self.messages.append(m)
                out.append(
                    {
                        "msgid": len(self.messages),
                        "clientmsgid": m.get("clientmsgid", ""),
                        "text": f"<p>{m.get('text', '')}</p>",
                        "timecreated": int(time.time()),
                        "conversationid": 32,
                        "useridfrom": 2,
                        "candeletemessagesforallusers": True,
                    }
                )
            return json.dumps(out).encode()
        if function == "core_course_get_courses_by_field":
            if str(p.get("value")) == "2":
                return load("core_course_get_courses_by_field.json")
            return b'{"courses":[],"warnings":[]}'
        if function == "core_enrol_get_enrolled_users":
            if str(p.get("courseid")) == "2":
                return load("core_enrol_get_enrolled_users.json")
            return _error("error_course_not_found.json")
        if function == "mod_quiz_get_quizzes_by_courses":
            if p.get("courseids") == ["2"]:
                return load("mod_quiz_get_quizzes_by_courses.json")
            return b'{"quizzes":[],"warnings":[]}'
        if function in ("mod_quiz_get_user_quiz_attempts", "mod_quiz_get_user_attempts"):
            try:
                key = (int(p["quizid"]), int(p.get("userid", 0)))
            except (KeyError, ValueError):
                return _error("error_invalid_parameter.json")
            if key == (1, 7):
                return load(f"{function}.json")
            return json.dumps({"attempts": self.attempts.get(key, []), "warnings": []}).encode()
        if function == "gradereport_user_get_grade_items":
            if str(p.get("courseid")) != "2":
                return _error("error_course_not_found.json")
            if str(p.get("userid", "")) == "7":
                return load("gradereport_user_get_grade_items_single_user.json")
            return load("gradereport_user_get_grade_items.json")
        recorded = RECORDED / f"{function}.json"
        if recorded.is_file():
            return recorded.read_bytes()
        return b"[]"

    def _push(self, p: dict[str, Any]) -> bytes:
        self.push_calls += 1
        results = []
        for a in p.get("alerts", []):
            aid = a.get("alertid", "")
            dup = aid in self.pushed
            if not dup:
                self.pushed[aid] = a
            results.append(
                {
                    "alertid": aid,
                    "status": "duplicate" if dup else "stored",
                    "notified": 0 if dup else 1,
                }
            )
        return json.dumps({"results": results, "warnings": []}).encode()

    # ---- the server ------------------------------------------------------------------------
    def handle(self, handler: BaseHTTPRequestHandler, query: str) -> None:
        if handler.path == "/fake/stats":  # for benchmarks: how far the site's log has grown
            stats = {"last_id": self.last_id, "rows": len(self._ids), "time": time.time()}
            self._send(handler, 200, json.dumps(stats).encode(), "application/json")
            return
        if handler.path.split("?")[0] != "/webservice/rest/server.php":
            handler.send_error(404)
            return
        params = decode_params(parse_qsl(query, keep_blank_values=True))
        token = params.pop("wstoken", "")
        function = params.pop("wsfunction", "")
        params.pop("moodlewsrestformat", None)
        self.requests.append((function, params))
        fault = self.faults.popleft() if self.faults else None
        if fault == "reset":
            handler.close_connection = True
            handler.connection.close()
            return
        if fault == "timeout" or function in self.hang:
            time.sleep(self.timeout_sleep_s)
        if fault in ("500", "502", "503"):
            self._send(handler, int(fault), b"<html>Service unavailable</html>", "text/html")
            return
        if fault == "html":
            self._send(handler, 200, b"<html>maintenance mode</html>", "text/html")
            return
        if not self.ws_enabled:
            self._send(handler, 403, b"", "text/html")
            return
        if token != self.token:
            body = _error("error_missing_token.json" if not token else "error_invalidtoken.json")
        else:
            body = self.answer(function, params)
        self._send(handler, 200, body, "application/json")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def start(self, port: int = 0) -> FakeMoodle:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()  # headers and body are separate writes: no Nagle delay
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                fake.handle(self, self.rfile.read(n).decode())

            def do_GET(self) -> None:
                fake.handle(self, self.path.partition("?")[2])

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._stop_feed.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeMoodle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self, function: str) -> list[dict[str, Any]]:
        return [p for f, p in self.requests if f == function]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--token", default="fake-token-0123456789abcdef")
    ap.add_argument("--rate", type=float, default=0.0, help="synthetic rows per second")
    ap.add_argument("--preload", type=int, default=0, help="synthetic rows present at start")
    ap.add_argument("--no-ws-rows", action="store_true")
    a = ap.parse_args(argv)
    m = FakeMoodle(a.token, log_ws_calls=not a.no_ws_rows).start()
    if a.preload:
        m.add_synthetic(a.preload)
    if a.rate:
        m.feed(a.rate)
    print(m.url, flush=True)
    try:
        sys.stdin.read()  # runs until stdin closes
    finally:
        m.stop()


if __name__ == "__main__":
    main()
