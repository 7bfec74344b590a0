"""``riskstream train``: fit the risk model on OULAD and publish it into the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def train(
    model: str = typer.Option(
        "lstm", "--model", help="lstm, cnn_lstm or cnn (the CNN alone, for the ablation)"
    ),
    epochs: int = typer.Option(
        20,
        min=1,
        help="Epochs; with --holdout > 0 the maximum (early stopping, patience 10). 20 is "
        "where the temporal splits stopped (README, Training)",
    ),
    holdout: float = typer.Option(
        0.0,
        min=0.0,
        max=0.5,
        help="Share of training students held out for early stopping and thresholds (0 = "
        "none: train --epochs on everything; calibrate with `riskstream calibrate`)",
    ),
    hidden: int = typer.Option(
        64, min=2, help="LSTM cells (64 fits more epochs in 15 CPU minutes)"
    ),
    batch_size: int = typer.Option(32, min=1, help="Enrolments per batch"),
    max_students: int = typer.Option(0, min=0, help="Sample this many enrolments (0 = all)"),
    folds: int = typer.Option(0, min=0, help="k-fold by student over the training data (0 = off)"),
    finetune_from: str = typer.Option(
        "", "--finetune-from", help="Continue this registry version with a decayed learning rate"
    ),
    train_presentations: str = typer.Option(
        "all", help="Training presentations, comma separated, or 'all' in the data folder"
    ),
    valid_presentations: str = typer.Option(
        "", help="Temporal validation presentations (none by default: the shipped model is "
        "fitted on everything; the splits are validated with e.g. --train-presentations 2013B "
        "--valid-presentations 2013J --holdout 0.1 --epochs 60)"
    ),
    module: str = typer.Option("", help="Only this OULAD module (e.g. AAA)"),
    protected: bool = typer.Option(
        False, help="Let the model see protected attributes (for the fairness comparison only)"
    ),
    time_budget: float = typer.Option(
        780.0, min=0, help="Stop training after this many seconds, keeping the best epoch"
    ),
    seed: int = typer.Option(0, help="Random seed"),
    members: int = typer.Option(
        1, min=1, help="Train this many seeds and publish their average (an ensemble)"
    ),
    threads: int = typer.Option(
        0, min=0, help="CPU threads for torch (0 = auto: 1 on a busy machine, else all cores)"
    ),
    quick: bool = typer.Option(False, help="Small fast model for the demo (well under a minute)"),
    make_current: bool = typer.Option(True, help="Point `current` at the new version"),
) -> None:
    """Train on OULAD (temporal split), evaluate per cut-off day, publish to the registry."""
    from riskstream.cli import _fail, _settings

    s = _settings()
    if model not in ("lstm", "cnn_lstm", "cnn"):
        raise _fail(f"--model must be lstm, cnn_lstm or cnn, not {model!r}")
    from models.features import DEFAULT_SPEC
    from models.registry import RegistryError
    from models.train import TrainConfig, quick_config
    from models.train import train as run_train

    def _pres(text: str) -> tuple[str, ...]:
        if text.strip().lower() == "all":
            from models.oulad import Oulad

            try:
                return tuple(sorted({c.presentation for c in Oulad(s.data_dir).courses}))
            except FileNotFoundError as exc:
                raise _fail(str(exc)) from None
        return tuple(p.strip() for p in text.split(",") if p.strip())

    common: dict[str, Any] = {
        "model": model,
        "seed": seed,
        "device": s.device,
        "cache_dir": s.cache_dir,
        "make_current": make_current,
        "threads": threads or None,
        "train_presentations": _pres(train_presentations),
        "valid_presentations": _pres(valid_presentations),
        "module": module or None,
        "finetune_from": finetune_from or None,
        "spec": DEFAULT_SPEC.with_protected() if protected else DEFAULT_SPEC,
    }
    if quick:
        cfg = quick_config(**common)
    else:
        cfg = TrainConfig(
            epochs=epochs,
            hidden=hidden,
            batch_size=batch_size,
            max_students=max_students or None,
            folds=folds,
            time_budget_s=time_budget or None,
            members=members,
            holdout=holdout,
            **common,
        )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("preparing", total=None, info="")

        def progress(kind: str, info: dict[str, Any]) -> None:
            if kind == "message":
                bar.console.log(info["text"])
            elif kind == "epoch_start":
                bar.reset(task, total=info["batches"], description=f"epoch {info['epoch']}")
            elif kind == "batch":
                bar.update(task, completed=info["batch"], info=f"loss {info['loss']:.3f}")
            elif kind == "epoch_end":
                who = f"member {info['member'] + 1} " if "member" in info else ""
                if cfg.holdout <= 0:
                    bar.console.log(f"{who}epoch {info['epoch']}: loss {info['loss']:.4f}")
                    return
                bar.console.log(
                    f"{who}epoch {info['epoch']}: loss {info['loss']:.4f}, holdout mean AUC "
                    f"{info['holdout_mean_auc']:.4f} (best {info['best']:.4f} @ "
                    f"{info['best_epoch']}), lr {info['lr']:.2e}"
                )

        try:
            result = run_train(s.data_dir, s.model_registry, cfg, progress)
        except (RegistryError, FileNotFoundError, KeyError, ValueError) as exc:
            raise _fail(str(exc)) from None
    if cfg.valid_presentations:
        table = Table("cut-off day D", "enrolments", "ROC-AUC (validation)")
        for d, row in result.metrics["validation"]["per_cutoff"].items():
            table.add_row(d, str(row["n"]), f"{row['roc_auc']:.4f}")
        console.print(table)
    th = result.thresholds
    console.print(
        f"[green]published {result.version}[/] to {s.model_registry} in {result.wall_s:.0f} s; "
        f"thresholds medium {th.medium:.3f} high {th.high:.3f} rearm {th.rearm:.3f}"
    )


def calibrate(
    version: str = typer.Option("current", "--version", help="Registry version to calibrate"),
    oot: list[str] = typer.Option(
        [],
        "--oot",
        help="Out-of-time predictions to fit on, REGISTRY:VERSION:PRESENTATION (a model "
        "scoring a presentation it was not trained on); repeat for several",
    ),
    target_precision: float = typer.Option(
        0.8, min=0.5, max=0.99, help="Precision of act-on alerts by day 56 to aim for"
    ),
    make_current: bool = typer.Option(True, help="Point `current` at the calibrated version"),
    cohort_weight: float = typer.Option(
        0.5,
        min=0.0,
        max=1.0,
        help="Act on risk relative to the course cohort: share of a course's distance from "
        "the reference level taken off (0 = off, 1 = fully centred; models/cohort.py)",
    ),
) -> None:
    """Fit risk calibration and the alert thresholds on out-of-time predictions; publish."""
    from riskstream.cli import _fail, _settings

    s = _settings()
    if not oot:
        raise _fail(
            "give at least one --oot REGISTRY:VERSION:PRESENTATION, e.g. "
            "--oot var/splits/A:v0001:2013J (a model fitted on 2013B scoring 2013J)"
        )
    from models.policy_fit import calibrate_version, day_risks
    from models.registry import RegistryError

    sets = []
    try:
        for spec in oot:
            parts = spec.rsplit(":", 2)
            if len(parts) != 3:
                raise _fail(f"--oot must be REGISTRY:VERSION:PRESENTATION, got {spec!r}")
            root, ver, pres = parts
            console.log(f"day risks of {root} {ver} on {pres}")
            sets.append(day_risks(Path(root), None if ver == "current" else ver, s.data_dir,
                                  pres, s.cache_dir))
        new, info = calibrate_version(
            s.model_registry,
            None if version == "current" else version,
            sets,
            target_precision,
            make_current,
            cohort_weight,
        )
    except (RegistryError, FileNotFoundError, KeyError) as exc:
        raise _fail(str(exc)) from None
    th = info["thresholds"]
    console.print(
        f"[green]published {new}[/] (weights of {version}) with calibration and thresholds: "
        f"act on {th['high']:.2f}, watch {th['medium']:.2f}, from day {th['min_days']}, "
        f"{th['persist_days']} days held, caps {th['day_cap']:.0%}/day {th['week_cap']:.0%}/week"
    )
