"""``riskstream connector check|run``: the site check, and poller + sink with clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts import TOPICS
from moodle_connector.client import MoodleClient, RetryPolicy
from moodle_connector.courses import CourseSync
from moodle_connector.enrich import Enricher
from moodle_connector.errors import SETUP_HINT, AccessDenied, MoodleError, MoodleUnavailable
from moodle_connector.poller import Poller
from moodle_connector.sink import AlertSink

log = structlog.get_logger("moodle_connector.run")

#: (purpose, alternatives: any one of them is enough)
NEEDED: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("site info", ("core_webservice_get_site_info",), True),
    ("event log (plugin)", ("local_riskstream_get_events",), True),
    ("course start dates", ("core_course_get_courses_by_field",), True),
    ("rosters (teachers for alerts)", ("core_enrol_get_enrolled_users",), True),
    ("quiz deadlines", ("mod_quiz_get_quizzes_by_courses",), True),
    ("quiz grades", ("mod_quiz_get_user_quiz_attempts", "mod_quiz_get_user_attempts"), True),
    (
        "alerts into Moodle",
        ("local_riskstream_push_alerts", "core_message_send_instant_messages"),
        True,
    ),
    ("gradebook grades", ("gradereport_user_get_grade_items",), False),
    ("assignment deadlines", ("mod_assign_get_assignments",), False),
)


ACCESS_FUNCTION = "local_riskstream_check_access"
FEEDBACK_FUNCTION = "local_riskstream_get_feedback"
#: first version of the plugin's get_events with ``waitseconds`` (long poll)
LONG_POLL_SINCE = "2026120200"


@dataclass
class CheckReport:
    sitename: str
    release: str
    version: str
    username: str
    rows: list[tuple[str, str, str, bool]] = field(default_factory=list)  # purpose, fn, state, req
    course_id: int = 0  # the course every function was called on (0: none)
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # function, outcome, detail
    missing_capabilities: list[tuple[str, str]] = field(default_factory=list)  # cap, purpose

    @property
    def ok(self) -> bool:
        functions = all(state != "missing" or not req for _, _, state, req in self.rows)
        calls = all(outcome in ("ok", "skipped") for _, outcome, _ in self.calls)
        return functions and calls and not self.missing_capabilities

    @property
    def missing_required(self) -> list[str]:
        return [fn for _, fn, state, req in self.rows if state == "missing" and req]


async def missing_capabilities(client: MoodleClient, course_id: int = 0) -> list[tuple[str, str]]:
    """The connector's capabilities the token's user lacks (system level, and in the course),
    from the plugin's own list; empty when the plugin is too old to tell."""
    if client.known_functions is not None and ACCESS_FUNCTION not in client.known_functions:
        return []
    body = await client.call(ACCESS_FUNCTION, {"courseid": course_id})
    return [
        (str(c["capability"]), str(c.get("purpose", "")))
        for c in body.get("capabilities", [])
        if not c.get("system") or not c.get("course")
    ]


async def _pick_course(client: MoodleClient) -> int:
    """A real course to try every function on: the first course that is not the front page."""
    body = await client.call("core_course_get_courses_by_field", {})
    ids = sorted(int(c["id"]) for c in body.get("courses", []) if int(c.get("id", 0)) > 1)
    return ids[0] if ids else 0


async def _exercise(client: MoodleClient, course_id: int) -> list[tuple[str, str, str]]:
    """Call every function the connector uses on one course, as it will: ok, denied or error.

    Also catches what Moodle does not report as an error: assignment warnings (not enrolled).
    """
    known = client.known_functions or set()
    out: list[tuple[str, str, str]] = []
    found: dict[str, Any] = {}

    async def attempt(function: str, params: dict[str, Any]) -> Any:
        if function not in known:
            out.append((function, "missing", "not in the token's service"))
            return None
        try:
            body = await client.call(function, params)
        except MoodleError as exc:
            if exc.fatal and not isinstance(exc, AccessDenied):
                raise
            out.append((function, "denied" if isinstance(exc, AccessDenied) else "error", str(exc)))
            return None
        warnings = body.get("warnings") if isinstance(body, dict) else None
        if warnings:
            text = "; ".join(str(w.get("message", w)) for w in warnings if isinstance(w, dict))
            out.append((function, "denied", f"Moodle warned: {text}"))
        else:
            out.append((function, "ok", ""))
        return body

    await attempt("local_riskstream_get_events", {"sinceid": 0, "limit": 1, "courseid": course_id})
    await attempt("core_course_get_courses_by_field", {"field": "id", "value": course_id})
    users = await attempt("core_enrol_get_enrolled_users", {"courseid": course_id})
    if "local_riskstream_get_enrolments" in known:
        await attempt("local_riskstream_get_enrolments", {"courseid": course_id})
    for u in users if isinstance(users, list) else []:
        if any(r.get("shortname") == "student" for r in u.get("roles", [])):
            found["student"] = int(u["id"])
            break
    quizzes = await attempt("mod_quiz_get_quizzes_by_courses", {"courseids": [course_id]})
    if isinstance(quizzes, dict) and quizzes.get("quizzes"):
        found["quiz"] = int(quizzes["quizzes"][0]["id"])
    fn = next(
        (
            f
            for f in ("mod_quiz_get_user_quiz_attempts", "mod_quiz_get_user_attempts")
            if f in known
        ),
        "mod_quiz_get_user_quiz_attempts",
    )
    if "quiz" in found and "student" in found:
        await attempt(
            fn,
            {
                "quizid": found["quiz"],
                "userid": found["student"],
                "status": "all",
                "includepreviews": 0,
            },
        )
    else:
        out.append((fn, "skipped", "no quiz with a student in this course to try it on"))
    await attempt(
        "mod_assign_get_assignments", {"courseids": [course_id], "includenotenrolledcourses": 1}
    )
    await attempt("gradereport_user_get_grade_items", {"courseid": course_id})
    if FEEDBACK_FUNCTION in known:
        await attempt(FEEDBACK_FUNCTION, {"sinceid": 0, "limit": 1})
    return out


async def check_site(
    client: MoodleClient, course_id: int = 0, exercise: bool = True
) -> CheckReport:
    """Site name, release, the needed functions the token's service offers, the capabilities
    its user lacks, and (``exercise``) every function called on a real course."""
    info = await client.site_info()
    available = client.known_functions or set()
    report = CheckReport(
        sitename=str(info.get("sitename", "")),
        release=str(info.get("release", "")),
        version=str(info.get("version", "")),
        username=str(info.get("username", "")),
    )
    for purpose, names, required in NEEDED:
        have = [n for n in names if n in available]
        report.rows.append(
            (
                purpose,
                have[0] if have else " or ".join(names),
                "available" if have else "missing",
                required,
            )
        )
    if not exercise:
        report.missing_capabilities = await missing_capabilities(client, 0)
        return report
    if not course_id and "core_course_get_courses_by_field" in available:
        try:
            course_id = await _pick_course(client)
        except AccessDenied as exc:
            report.calls.append(("core_course_get_courses_by_field", "denied", str(exc)))
    report.course_id = course_id
    report.missing_capabilities = await missing_capabilities(client, course_id)
    if course_id:
        report.calls.extend(await _exercise(client, course_id))
    return report


def capability_error(missing: list[tuple[str, str]], context: str = "") -> AccessDenied:
    """A fatal error that names every missing capability and what it is for."""
    names = ", ".join(f"{cap} ({why})" if why else cap for cap, why in missing)
    prefix = f"{context} " if context else ""
    err = AccessDenied(
        f"{prefix}The token's user lacks {names}: {SETUP_HINT}, or grant them to its role.",
        function=ACCESS_FUNCTION,
        errorcode="nopermissions",
    )
    err.capabilities = tuple(cap for cap, _ in missing)
    return err


@dataclass
class ConnectorConfig:
    """Plain values the CLI takes from Settings (library code never reads env)."""

    moodle_url: str
    moodle_token: str
    site: str
    kafka_bootstrap: str
    redis_url: str
    page_size: int = 1000
    course_id: int = 0
    idle_s: float = 2.0
    timeout_s: float = 30.0
    retries: int = 5
    course_refresh_s: float = 3600.0
    sink: bool = True
    poll: bool = True
    sink_group: str = "riskstream-sink"
    sink_max_attempts: int = 5
    enrich: bool = True
    shutdown_grace_s: float = 10.0
    startup_retry_max_s: float = 60.0
    wait_s: int = 20  # long poll when drained (one call, one log row, per wait)
    enrolments: bool = True  # an enrolment record per roster student (no-shows are scored)
    feedback_every_s: float = 300.0  # teachers' feedback poll (0 = off)

    def __repr__(self) -> str:
        return f"ConnectorConfig(moodle_url={self.moodle_url!r}, site={self.site!r}, token=***)"


async def _supervise(tasks: list[asyncio.Task[None]], stop: asyncio.Event, grace_s: float) -> None:
    """Wait for stop or a failure; give tasks ``grace_s`` to finish their page, then cancel.

    Cancelling mid-page is safe: the cursor only moves after the broker acknowledged.
    """
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        failed = next((t for t in done if t is not stopper and t.exception() is not None), None)
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for t in pending:
            log.warning("task did not stop in time, cancelling", task=t.get_name())
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if failed is None:
            failed = next((t for t in tasks if not t.cancelled() and t.exception()), None)
        if failed is not None:
            exc = failed.exception()
            assert exc is not None
            raise exc
    finally:
        stopper.cancel()


def producer_for(bootstrap: str) -> AIOKafkaProducer:
    """acks=all; no idempotence (the embedded broker cannot); ids make replays harmless."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )


async def _check_until_reachable(
    client: MoodleClient, stop: asyncio.Event, max_delay_s: float
) -> CheckReport | None:
    """A site down at start-up is an outage like any other: wait with backoff, do not exit.

    Fatal answers (bad token, web services off) still raise at once: waiting cannot fix them.
    """
    delay = 1.0
    while True:
        try:
            return await check_site(client, exercise=False)
        except MoodleUnavailable as exc:
            wait = random.uniform(delay / 2, delay)
            log.warning("moodle unreachable at start; retrying", error=str(exc), retry_in_s=wait)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
                return None
            except TimeoutError:
                delay = min(delay * 2, max_delay_s)


async def run_connector(cfg: ConnectorConfig, stop: asyncio.Event | None = None) -> dict[str, Any]:
    """Run poller and sink until ``stop`` (or SIGTERM/SIGINT); fatal Moodle errors propagate."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    client = MoodleClient(
        cfg.moodle_url, cfg.moodle_token, timeout_s=cfg.timeout_s, retry=RetryPolicy(cfg.retries)
    )
    redis = Redis.from_url(cfg.redis_url)
    producer = producer_for(cfg.kafka_bootstrap)
    try:
        report = await _check_until_reachable(client, stop, cfg.startup_retry_max_s)
        if report is None:  # stopped while Moodle was still down
            return {}
        log.info("connected", site=cfg.site, sitename=report.sitename, release=report.release)
        if cfg.poll and "local_riskstream_get_events" in report.missing_required:
            from moodle_connector.errors import FunctionMissing

            raise FunctionMissing(
                "local_riskstream_get_events is not available to this token: install the "
                "local_riskstream plugin and use a token of its 'local_riskstream' service",
                function="local_riskstream_get_events",
            )
        if report.missing_capabilities:
            raise capability_error(report.missing_capabilities)
        wait_s = 0
        if client.function_versions.get("local_riskstream_get_events", "") >= LONG_POLL_SINCE:
            wait_s = max(0, min(cfg.wait_s, int(cfg.timeout_s) - 5))
        await producer.start()
        tasks: list[asyncio.Task[None]] = []
        poller: Poller | None = None
        sink: AlertSink | None = None
        if cfg.poll:
            poller = Poller(
                client,
                producer,
                redis,
                cfg.site,
                page_size=cfg.page_size,
                course_id=cfg.course_id,
                idle_s=cfg.idle_s,
                enricher=Enricher(client) if cfg.enrich else None,
                courses=CourseSync(client, redis, cfg.site, cfg.course_refresh_s),
                own_user_id=client.user_id,
                wait_s=wait_s,
                publish_enrolments=cfg.enrolments,
            )
            tasks.append(asyncio.create_task(poller.run(stop), name="poller"))
            if cfg.feedback_every_s > 0 and FEEDBACK_FUNCTION in (client.known_functions or ()):
                from moodle_connector.feedback import FeedbackPoller

                fb = FeedbackPoller(client, producer, redis, cfg.site, cfg.feedback_every_s)
                tasks.append(asyncio.create_task(fb.run(stop), name="feedback"))
        if cfg.sink:
            sink = AlertSink(client, redis, producer, cfg.site, max_attempts=cfg.sink_max_attempts)
            tasks.append(
                asyncio.create_task(
                    sink.run(cfg.kafka_bootstrap, stop, topic=TOPICS.alerts, group=cfg.sink_group),
                    name="sink",
                )
            )
        try:
            await _supervise(tasks, stop, cfg.shutdown_grace_s)
        except AccessDenied as exc:
            # Name the capability: ask the plugin which ones the token's user lacks.
            missing: list[tuple[str, str]] = []
            with contextlib.suppress(MoodleError):
                missing = await missing_capabilities(client, 0)
            if missing:
                raise capability_error(missing, str(exc)) from None
            raise
        stats: dict[str, Any] = {}
        if poller:
            stats["poller"] = vars(poller.stats)
        if sink:
            stats["sink"] = vars(sink.stats)
        log.info("connector stopped", **stats)
        return stats
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()
        await redis.aclose()
        await client.aclose()
        for sig in installed:
            loop.remove_signal_handler(sig)
