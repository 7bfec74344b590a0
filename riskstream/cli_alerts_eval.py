"""``riskstream evaluate-alerts``: what teachers would have received, replayed and scored."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

console = Console()


def evaluate_alerts_command(
    presentation: str = typer.Option(
        "2014B", "--presentation", help="What to replay: 2014B, GGG/2014B, GGG, or all"
    ),
    data: Path = typer.Option(
        None, "--data", help="OULAD-shaped Parquet folder (default RISKSTREAM_DATA_DIR)"
    ),
    version: str = typer.Option("current", "--version", help="Registry version or 'current'"),
    out: Path = typer.Option(Path("reports/alerts"), "--out", help="Folder for the report"),
    max_students: int = typer.Option(
        0, min=0, help="Keep the first N students of each course (0 = all)"
    ),
    batch: int = typer.Option(1000, min=1, help="Records per processor batch"),
    feedback: Path = typer.Option(
        None, "--feedback", help="Teachers' feedback as TeacherFeedback JSONL: share useful"
    ),
) -> None:
    """Replay a presentation through the worker's processor and alert policy; score the alerts.

    Share alerted, precision, recall and lead per cut-off day, per course, weekly volume,
    waves and groups; JSON, Markdown and a plot in --out.
    """
    from riskstream.cli import _fail, _settings

    s = _settings()
    from models.registry import RegistryError
    from riskstream.alert_eval import evaluate_alerts, write_report
    from riskstream.replay import OuladSourceError

    failure: str | None = None
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("replaying", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            res = evaluate_alerts(
                data or s.data_dir,
                presentation,
                s.model_registry,
                None if version == "current" else version,
                max_students=max_students,
                batch=batch,
                progress=progress,
                say=console.log,
                feedback=feedback,
            )
        except (RegistryError, OuladSourceError, KeyError, RuntimeError) as exc:
            failure = str(exc)  # said once the progress bar is gone: one line, no blank one
    if failure is not None:
        raise _fail(failure)
    title = f"Alert policy replay: {presentation} (model {res.report['run']['model_version']})"
    paths = write_report(res, out, title)
    d56 = res.report["per_cutoff"]["56"]
    v = res.report["volume"]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    console.print(
        f"{res.events:,} records in {res.wall_s:.0f} s; by day 56: {pct(d56['share_alerted'])} "
        f"alerted, precision {pct(d56['precision'])}, recall {pct(d56['recall'])}, median lead "
        f"{d56['median_lead_days']} days; biggest wave {pct(v['worst_day_share'])} of a course "
        f"in a day, {pct(v['worst_week_share'])} in a week"
    )
    console.print(f"report: {paths[1]}")
