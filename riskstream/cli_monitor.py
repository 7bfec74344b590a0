"""``riskstream monitor ...`` and ``riskstream retrain``: production monitoring commands."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
monitor_app = typer.Typer(
    help="Drift, live calibration and retraining signals of the model in service.",
    no_args_is_help=True,
)


@monitor_app.command("reference")
def reference(
    version: str = typer.Option("current", "--version", help="Registry version or 'current'"),
    max_students: int = typer.Option(0, min=0, help="Sample this many enrolments (0 = all)"),
) -> None:
    """Compute drift_reference.json and segments.json for a version published without them."""
    from riskstream.cli import _fail, _settings

    s = _settings()
    from models.reference import backfill
    from models.registry import Registry, RegistryError

    reg = Registry(s.model_registry)
    v = reg.current_version() if version == "current" else version
    if v is None:
        raise _fail(f"no current model in {s.model_registry}; pass --version")
    try:
        names = backfill(s.model_registry, v, s.data_dir, max_students or None, s.cache_dir)
    except (RegistryError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"[green]{v}[/]: wrote {', '.join(names)}")


@monitor_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the JSON document")) -> None:
    """Per course: drift (PSI), live calibration, and whether a retrain is due."""
    from riskstream.cli import _settings
    from riskstream.reachable import require

    s = _settings()
    require(redis_url=s.redis_url)
    from models.registry import Registry
    from riskstream.api.monitoring import MonitorConfig, Monitoring
    from stream_app.state import connect

    async def go() -> dict[str, Any]:
        r = connect(s.redis_url)
        try:
            cfg = MonitorConfig(s.monitor_psi_alarm, s.monitor_ece_alarm, s.monitor_min_outcomes)
            return await Monitoring(r, s.site_id, Registry(s.model_registry), cfg).overview(True)
        finally:
            await r.aclose()

    doc = asyncio.run(go())
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    table = Table(
        "course", "week", "max PSI", "worst feature", "drift", "outcomes", "max ECE", "calibration"
    )
    for row in doc["courses"]:
        table.add_row(
            str(row["course"]),
            str(row["drift_week"] if row["drift_week"] is not None else "-"),
            "-" if row["drift_max_psi"] is None else f"{row['drift_max_psi']:.3f}",
            str(row["drift_worst_feature"] or "-"),
            "ALARM" if row["drift_alarm"] else "ok",
            str(row["outcomes_known"]),
            "-" if row["max_ece"] is None else f"{row['max_ece']:.3f}",
            "ALARM" if row["calibration_alarm"] else "ok",
        )
    console.print(table)
    rt = doc["retrain"]
    why = f" ({'; '.join(rt['reasons'])})" if rt["due"] else ""
    console.print(f"retrain due: {rt['due']}{why}")


def retrain(
    check: bool = typer.Option(False, "--check", help="Only say whether a retrain is due"),
    force: bool = typer.Option(False, help="Retrain even when no trigger fired"),
    quick: bool = typer.Option(False, help="The trainer's quick config (tests, demos)"),
    max_students: int = typer.Option(0, min=0, help="Sample this many enrolments (0 = all)"),
    tolerance: float = typer.Option(
        0.0, min=0.0, help="Promote when the new mean ROC-AUC >= current's minus this"
    ),
    live: bool = typer.Option(True, help="Read drift/calibration signals from Redis"),
) -> None:
    """Check the retraining rule; when due: train, evaluate on the newest presentation,
    promote to current only if at least as good (evidence kept in the registry)."""
    from riskstream.cli import _fail, _settings

    s = _settings()
    from riskstream.reachable import redis_down, redis_up
    from riskstream.retrain import (
        RetrainSignals,
        decide,
        live_signals,
        new_presentations,
        run_retrain,
    )

    if live and not redis_up(s.redis_url):
        raise _fail(
            f"{redis_down(s.redis_url)}; or give --no-live to decide without the live signals"
        )
    try:
        signals = RetrainSignals()
        if live:
            signals = asyncio.run(live_signals(s.redis_url, s.site_id, s.model_registry))
        signals.new_presentations = new_presentations(s.data_dir, s.model_registry)
    except FileNotFoundError as exc:
        raise _fail(f"cannot gather the retraining signals: {exc}") from None
    from models.registry import RegistryError
    from models.train import TrainConfig, quick_config

    decision = decide(signals)
    console.print(
        f"retrain due: {decision.due}"
        + (f" ({'; '.join(decision.reasons)})" if decision.reasons else " (no trigger)")
    )
    if check:
        raise typer.Exit(0 if not decision.due else 3)
    common = {"device": s.device, "cache_dir": s.cache_dir}
    cfg = (
        quick_config(**common, **({"max_students": max_students} if max_students else {}))
        if quick
        else TrainConfig(max_students=max_students or None, **common)  # type: ignore[arg-type]
    )
    try:
        out = run_retrain(
            s.data_dir,
            s.model_registry,
            cfg,
            signals,
            force=force,
            tolerance=tolerance,
            progress=console.log,
        )
    except (RegistryError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if out["trained"]:
        console.print(
            f"{out['candidate']}: {'promoted to current' if out['promoted'] else 'not promoted'}"
            f" (evidence: {s.model_registry / out['candidate'] / 'promotion.json'})"
        )
