"""``riskstream evaluate``: the registry model against the baselines, as a written report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def evaluate(
    version: str = typer.Option("current", "--version", help="Registry version or 'current'"),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for report.json/.md/PNGs"),
    target_precision: float = typer.Option(
        0.8, min=0.05, max=0.99, help="Alert precision the recommended thresholds reach"
    ),
    cutoffs: str = typer.Option(
        "14,28,56,84,112,140,168,196", help="Cut-off days D, comma separated"
    ),
    max_students: int = typer.Option(0, min=0, help="Sample this many enrolments (0 = all)"),
    compare: list[str] = typer.Option([], "--compare", help="More registry versions to add"),
    protected_version: str = typer.Option(
        "", help="Registry version trained WITH protected attributes (fairness comparison)"
    ),
    examples: int = typer.Option(5, min=0, help="Explained example predictions in the report"),
    analysis: bool = typer.Option(
        True, help="Importance, partial dependence, segments and drift sections"
    ),
    data: Path = typer.Option(
        None, "--data", help="OULAD-shaped Parquet folder (default RISKSTREAM_DATA_DIR)"
    ),
    presentation: str = typer.Option(
        "2014B", "--presentation", help="The presentation to score (the temporal hold-out)"
    ),
    train_presentations: str = typer.Option(
        "older",
        "--train-presentations",
        help="What the baselines are fitted on: comma separated, 'older' (every presentation "
        "before --presentation in the folder), 'others' (every other one), or 'none'",
    ),
) -> None:
    """Evaluate a model on a presentation it never saw vs LR and LightGBM fitted on older ones."""
    from riskstream.cli import _fail, _settings

    s = _settings()
    try:
        days = tuple(sorted({int(d) for d in cutoffs.split(",") if d.strip()}))
    except ValueError:
        raise _fail(f"--cutoffs must be comma-separated day numbers, got {cutoffs!r}") from None
    if not days or days[0] < 0:
        raise _fail("--cutoffs needs at least one day >= 0")
    from models.eval_pipeline import EvalConfig, run_evaluation
    from models.oulad import Oulad
    from models.registry import RegistryError

    data_dir = data or s.data_dir
    try:
        have = sorted({c.presentation for c in Oulad(data_dir).courses})
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    key = train_presentations.strip().lower()
    if key == "older":
        train = tuple(p for p in have if p < presentation)
    elif key == "others":
        train = tuple(p for p in have if p != presentation)
    elif key in ("none", ""):
        train = ()
    else:
        train = tuple(p.strip() for p in train_presentations.split(",") if p.strip())

    cfg = EvalConfig(
        cutoffs=days,
        target_precision=target_precision,
        max_students=max_students or None,
        device=s.device,
        compare_versions=tuple(compare),
        protected_version=protected_version or None,
        explain_examples=examples,
        analysis=analysis,
        cache_dir=s.cache_dir,
        validation=presentation,
        train_presentations=train,
    )
    try:
        report = run_evaluation(
            data_dir, s.model_registry, version, out, cfg, progress=console.log
        )
    except (RegistryError, FileNotFoundError, KeyError) as exc:
        raise _fail(str(exc)) from None
    from models.report import auc_table

    console.print("\n".join(auc_table(report)))
    th = report["recommended_thresholds"]
    console.print(
        f"recommended thresholds (high reaches precision {target_precision:.2f}): "
        f"medium {th['medium']:.3f}, high {th['high']:.3f}, rearm {th['rearm']:.3f} "
        f"-> {out / 'thresholds.json'}"
    )
    console.print(f"report: {out / 'report.md'}")
