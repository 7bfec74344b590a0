"""``riskstream train``: fit the risk model on OULAD and publish it into the registry."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def train(
    model: str = typer.Option("lstm", "--model", help="lstm or cnn_lstm"),
    epochs: int = typer.Option(60, min=1, help="Maximum epochs (early stopping, patience 10)"),
    hidden: int = typer.Option(
        64, min=2, help="LSTM cells (64 fits more epochs in 15 CPU minutes)"
    ),
    batch_size: int = typer.Option(32, min=1, help="Enrolments per batch"),
    max_students: int = typer.Option(0, min=0, help="Sample this many enrolments (0 = all)"),
    folds: int = typer.Option(0, min=0, help="k-fold by student over the training data (0 = off)"),
    finetune_from: str = typer.Option(
        "", "--finetune-from", help="Continue this registry version with a decayed learning rate"
    ),
    train_presentations: str = typer.Option("2013B,2013J", help="Training presentations"),
    valid_presentations: str = typer.Option("2014B", help="Temporal validation presentations"),
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
    if model not in ("lstm", "cnn_lstm"):
        raise _fail(f"--model must be lstm or cnn_lstm, not {model!r}")
    from models.features import DEFAULT_SPEC
    from models.registry import RegistryError
    from models.train import TrainConfig, quick_config
    from models.train import train as run_train

    def _pres(text: str) -> tuple[str, ...]:
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
                bar.console.log(
                    f"{who}epoch {info['epoch']}: loss {info['loss']:.4f}, holdout mean AUC "
                    f"{info['holdout_mean_auc']:.4f} (best {info['best']:.4f} @ "
                    f"{info['best_epoch']}), lr {info['lr']:.2e}"
                )

        try:
            result = run_train(s.data_dir, s.model_registry, cfg, progress)
        except (RegistryError, FileNotFoundError, KeyError, ValueError) as exc:
            raise _fail(str(exc)) from None
    table = Table("cut-off day D", "enrolments", "ROC-AUC (validation)")
    for d, row in result.metrics["validation"]["per_cutoff"].items():
        table.add_row(d, str(row["n"]), f"{row['roc_auc']:.4f}")
    console.print(table)
    th = result.thresholds
    console.print(
        f"[green]published {result.version}[/] to {s.model_registry} in {result.wall_s:.0f} s; "
        f"thresholds medium {th.medium:.3f} high {th.high:.3f} rearm {th.rearm:.3f}"
    )
