"""``riskstream connector check|run``: thin wrappers over ``moodle_connector.run``."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from riskstream.logs import configure_logging
from riskstream.reachable import fail, require
from riskstream.settings import Settings, load_settings

connector_app = typer.Typer(
    help="Moodle connector: log events in, alerts out.", no_args_is_help=True
)
console = Console()


def _settings() -> Settings:
    s = load_settings()
    configure_logging(s.log_level, s.log_json)
    if not s.moodle_url or not s.moodle_token.get_secret_value():
        raise fail(
            "set RISKSTREAM_MOODLE_URL and RISKSTREAM_MOODLE_TOKEN "
            "(a token of the plugin's 'local_riskstream' service)",
            2,
        )
    return s


@connector_app.command("check")
def check(
    course: int = typer.Option(
        0,
        "--course",
        help="Course to call every function on (default RISKSTREAM_CONNECTOR_COURSE_ID, else "
        "the first course)",
    ),
) -> None:
    """Site, release, needed functions, missing capabilities; every function called on a course."""
    from moodle_connector.client import MoodleClient, RetryPolicy
    from moodle_connector.errors import MoodleError
    from moodle_connector.run import check_site

    s = _settings()

    async def go() -> object:
        async with MoodleClient(
            s.moodle_url,
            s.moodle_token.get_secret_value(),
            timeout_s=s.connector_timeout_s,
            retry=RetryPolicy(attempts=min(3, s.connector_retries)),
        ) as client:
            return await check_site(client, course_id=course or s.connector_course_id)

    try:
        report = asyncio.run(go())
    except MoodleError as exc:
        raise fail(str(exc)) from None
    from moodle_connector.run import CheckReport

    assert isinstance(report, CheckReport)
    console.print(f"site: [bold]{report.sitename}[/]  ({s.moodle_url}, site id {s.site_id})")
    console.print(f"Moodle release: {report.release} (version {report.version})")
    console.print(f"token user: {report.username}")
    table = Table("needed for", "function", "state")
    for purpose, fn, state, required in report.rows:
        color = "green" if state == "available" else ("red" if required else "yellow")
        table.add_row(purpose + ("" if required else " (optional)"), fn, f"[{color}]{state}[/]")
    console.print(table)
    if report.course_id:
        calls = Table(f"called on course {report.course_id}", "outcome", "detail")
        for fn, outcome, detail in report.calls:
            color = {"ok": "green", "skipped": "yellow"}.get(outcome, "red")
            calls.add_row(fn, f"[{color}]{outcome}[/]", detail)
        console.print(calls)
    else:
        console.print("[yellow]no course to call the functions on[/] (give --course ID)")
    problems = False
    if report.missing_required:
        problems = True
        console.print(
            "[bold red]missing:[/] "
            + ", ".join(report.missing_required)
            + ". Install the local_riskstream plugin and use a token of its predefined service "
            "(Site administration > Server > Web services > Manage tokens)."
        )
    if report.missing_capabilities:
        problems = True
        console.print("[bold red]missing capabilities[/] of the token's user:")
        for cap, why in report.missing_capabilities:
            console.print(f"  {cap}  ({why})")
        console.print(
            "Run `php local/riskstream/cli/setup.php` on the Moodle server, or grant them to "
            "the service user's role."
        )
    failed = [(fn, o) for fn, o, _ in report.calls if o not in ("ok", "skipped")]
    if failed:
        problems = True
        console.print(
            "[bold red]failed on the course:[/] " + ", ".join(f"{fn} ({o})" for fn, o in failed)
        )
    if problems or not report.ok:
        raise typer.Exit(1)
    console.print("[green]ready[/]")


@connector_app.command("run")
def run(
    poll: bool = typer.Option(True, help="Poll the event log into the events topic"),
    sink: bool = typer.Option(True, help="Push alerts from the alerts topic into Moodle"),
) -> None:
    """Run the poller and the alert sink until SIGTERM/Ctrl-C."""
    from moodle_connector.errors import MoodleError
    from moodle_connector.run import ConnectorConfig, run_connector

    s = _settings()
    cfg = ConnectorConfig(
        moodle_url=s.moodle_url,
        moodle_token=s.moodle_token.get_secret_value(),
        site=s.site_id,
        kafka_bootstrap=s.kafka_bootstrap,
        redis_url=s.redis_url,
        page_size=s.connector_page_size,
        course_id=s.connector_course_id,
        idle_s=s.connector_idle_s,
        timeout_s=s.connector_timeout_s,
        retries=s.connector_retries,
        course_refresh_s=s.connector_course_refresh_s,
        sink=sink,
        poll=poll,
        sink_group=s.connector_sink_group,
        sink_max_attempts=s.connector_sink_max_attempts,
        wait_s=s.connector_wait_s,
        feedback_every_s=s.connector_feedback_every_s,
        enrolments=s.connector_enrolments,
    )
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError

    from riskstream.reachable import kafka_down, redis_down

    # Kafka and Redis first: a Moodle down at start is waited for (an outage like any
    # other), the stack is not, so a missing stack is said at once, not after Moodle answers.
    require(kafka=s.kafka_bootstrap, redis_url=s.redis_url)
    try:
        stats = asyncio.run(run_connector(cfg))
    except MoodleError as exc:
        raise fail(str(exc)) from None
    except KafkaError as exc:
        raise fail(f"{kafka_down(s.kafka_bootstrap)} ({type(exc).__name__})") from None
    except (RedisError, OSError) as exc:
        raise fail(f"{redis_down(s.redis_url)} ({type(exc).__name__})") from None
    console.print(f"connector stopped: {stats}")
