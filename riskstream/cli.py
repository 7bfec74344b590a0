"""The ``riskstream`` command: wires the parts together; nothing imports it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskstream import (
    cli_alerts_eval,
    cli_api,
    cli_backfill,
    cli_connector,
    cli_evaluate,
    cli_model,
    cli_monitor,
    cli_ops,
    cli_replay,
    cli_stream,
    cli_train,
    demo,
)
from riskstream.logs import configure_logging
from riskstream.reachable import GuardedGroup, fail, require
from riskstream.settings import Settings, load_settings
from riskstream.stack import Stack, StackError

app = typer.Typer(
    cls=GuardedGroup,  # a connection error escaping any command: one line, exit 1
    help="riskstream: Moodle activity in, early risk alerts out.",
    no_args_is_help=True,
    add_completion=False,
)
stack_app = typer.Typer(help="The embedded broker + Redis on loopback.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
console = Console()


def _settings() -> Settings:
    s = load_settings()
    configure_logging(s.log_level, s.log_json)
    return s


def stack_from(s: Settings) -> Stack:
    return Stack(
        state_dir=s.state_dir,
        kafka_port=s.kafka_port,
        redis_port=s.redis_port,
        broker_storage=s.broker_storage,
        redis_appendonly=s.redis_appendonly,
        durable=s.broker_durable,
        s3_port=s.s3_port,
        s3_gate_port=s.s3_gate_port,
        s3rver_bin=s.s3rver_bin,
    )


def _fail(msg: str, code: int = 1) -> typer.Exit:
    """One line on stderr, whatever the width (see riskstream.reachable.fail)."""
    return fail(msg, code)


def _print_status(st_dict: dict[str, object]) -> None:
    table = Table("service", "port", "pid", "running", "answering", "log")
    for name in ("broker", "redis", "s3", "s3gate"):
        svc = st_dict.get(name)
        if svc is None:  # s3 only in durable mode
            continue
        assert isinstance(svc, dict)
        table.add_row(
            name,
            str(svc["port"]),
            str(svc["pid"] or "-"),
            "yes" if svc["running"] else "no",
            "yes" if svc["answering"] else "no",
            str(svc["log"]),
        )
    console.print(table)


@stack_app.command("up")
def stack_up(
    topics: bool = typer.Option(True, help="Create the riskstream topics"),
    partitions: int = typer.Option(4, min=1, help="Partitions per topic"),
) -> None:
    """Start broker and Redis on loopback and wait until both answer."""
    s = _settings()
    st = stack_from(s)
    try:
        status = st.up()
    except StackError as exc:
        raise _fail(str(exc)) from None
    if topics:
        from contracts import TOPICS
        from riskstream.kafka_admin import ensure_topics

        asyncio.run(ensure_topics(st.bootstrap, TOPICS.all(), partitions))
    _print_status(status.as_dict())
    console.print(f"kafka: [bold]{st.bootstrap}[/]  redis: [bold]{st.redis_url}[/]")


@stack_app.command("down")
def stack_down() -> None:
    """Stop broker and Redis (SIGTERM, then SIGKILL after 10 s)."""
    s = _settings()
    stack_from(s).down()
    console.print("stack stopped")


@stack_app.command("status")
def stack_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Show whether broker and Redis run and answer; exit 1 if either does not."""
    s = _settings()
    status = stack_from(s).status()
    if as_json:
        typer.echo(json.dumps(status.as_dict()))
    else:
        _print_status(status.as_dict())
    if not status.healthy:
        raise typer.Exit(1)


@app.command()
def schema(
    out: Path = typer.Option(Path("schemas"), help="Folder for the JSON Schema files"),
) -> None:
    """Write the published JSON Schemas (events, alerts, risk scores, dead letters)."""
    from contracts.schema import write_schemas

    for path in write_schemas(out):
        console.print(f"wrote {path}")


@app.command()
def smoke(n: int = typer.Option(6, min=1, help="Events to send")) -> None:
    """Round trip through the running stack: publish sample events and read them back."""
    s = _settings()
    from aiokafka.errors import KafkaError

    from riskstream.smoke import round_trip

    require(kafka=s.kafka_bootstrap)
    try:
        got = asyncio.run(round_trip(s.kafka_bootstrap, n=n))
    except (KafkaError, OSError) as exc:
        raise _fail(
            f"round trip through Kafka at {s.kafka_bootstrap} failed ({type(exc).__name__}: "
            f"{exc}); is the stack up (riskstream stack up)?"
        ) from None
    table = Table("partition", "event id", "user", "course", "activity", "time")
    for part, ev in got:
        table.add_row(
            str(part),
            str(ev.event_id),
            str(ev.user_id),
            str(ev.course_id),
            ev.activity.value,
            ev.time.isoformat(),
        )
    console.print(table)
    if len(got) != n:
        raise _fail(f"sent {n} events but read back {len(got)}")
    console.print(f"[green]round trip ok[/]: {n} events through {s.kafka_bootstrap}")


# Each part's commands live in their own module; this is the one place they are registered.
app.add_typer(cli_connector.connector_app, name="connector")
app.add_typer(cli_api.api_app, name="api")
app.add_typer(cli_model.model_app, name="model")
app.command("train")(cli_train.train)
app.command("calibrate")(cli_train.calibrate)
app.add_typer(cli_monitor.monitor_app, name="monitor")
app.command("retrain")(cli_monitor.retrain)
app.command("evaluate")(cli_evaluate.evaluate)
app.command("evaluate-alerts")(cli_alerts_eval.evaluate_alerts_command)
app.command("replay")(cli_replay.replay_command)
app.command("demo")(demo.demo_command)
app.command("topics")(cli_ops.topics_command)
app.command("ping")(cli_ops.ping_command)
cli_stream.register(app)  # worker, alerts tail
cli_backfill.register(app)  # backfill


def main() -> None:
    app()


if __name__ == "__main__":
    main()
