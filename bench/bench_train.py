"""Trainer wall time on the shared OULAD: data preparation, seconds per epoch, total.

Runs ``models.train.train`` (what ``riskstream train`` runs) into a temporary registry with
a cold feature cache, timing each phase from the trainer's own progress callbacks. CPU here;
CUDA when present (``--device auto`` picks it; ``--device cpu`` forces the CPU).

    python3 -m bench.bench_train                         # 2 epochs, hidden 128, all students
    python3 -m bench.bench_train --epochs 5 --max-students 4000 --device cpu
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench._data import oulad_dir
from bench._report import console, table, write


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--model", choices=["lstm", "cnn_lstm"], default="lstm")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-students", type=int, default=0, help="per split; 0 = all")
    p.add_argument("--data", type=Path, default=None, help="OULAD folder (default: shared)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    from models.device import resolve_device
    from models.train import TrainConfig, train

    device = resolve_device(a.device)
    marks: dict[str, float] = {}
    epochs: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def progress(kind: str, info: dict[str, Any]) -> None:
        now = time.perf_counter() - t0
        if kind == "epoch_start":
            marks.setdefault("first_epoch", now)
            epochs.append({"epoch": info["epoch"], "start_s": now, "batches": info["batches"]})
        elif kind == "epoch_end" and epochs:
            epochs[-1]["seconds"] = now - epochs[-1]["start_s"]
            epochs[-1]["holdout_mean_auc"] = info.get("holdout_mean_auc")
        elif kind == "message":
            console.log(info["text"])

    with tempfile.TemporaryDirectory(prefix="rs-bench-train-") as tmpd:
        tmp = Path(tmpd)
        cfg = TrainConfig(
            model=a.model,
            hidden=a.hidden,
            epochs=a.epochs,
            batch_size=a.batch_size,
            max_students=a.max_students or None,
            device=str(device),
            cache_dir=tmp / "cache",  # cold: the table featurization is part of the figure
            patience=a.epochs + 1,
            time_budget_s=None,
        )
        result = train(a.data or oulad_dir(), tmp / "registry", cfg, progress)
    total = time.perf_counter() - t0
    prep = marks.get("first_epoch", total)
    per_epoch = [e["seconds"] for e in epochs if "seconds" in e]
    mean_epoch = sum(per_epoch) / len(per_epoch) if per_epoch else None
    rows = {
        "device": device.type,
        "cuda_name": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "model": a.model,
        "hidden": a.hidden,
        "epochs": len(per_epoch),
        "batches_per_epoch": epochs[0]["batches"] if epochs else None,
        "data_prep_s": prep,
        "mean_epoch_s": mean_epoch,
        "total_s": total,
        "trainer_wall_s": result.wall_s,
        "per_epoch": epochs,
        "validation_auc": {
            d: r.get("roc_auc")
            for d, r in result.metrics.get("validation", {}).get("per_cutoff", {}).items()
        },
    }
    table(
        f"Trainer wall time on OULAD ({a.model}, hidden {a.hidden}, batch {a.batch_size}, "
        f"{'all' if not a.max_students else a.max_students} students per split)",
        ["device", "data prep s", "epochs", "batches/epoch", "s per epoch", "total s"],
        [
            [
                device.type,
                prep,
                len(per_epoch),
                rows["batches_per_epoch"] or "-",
                mean_epoch if mean_epoch is not None else "-",
                total,
            ]
        ],
    )
    console.print(
        "[dim]a full `riskstream train` is data prep + epochs x s/epoch "
        "(40 epochs max, early stopping, 780 s budget by default)[/]"
    )
    write("bench_train", a.out, {k: str(v) for k, v in vars(a).items()}, rows)
    return rows


if __name__ == "__main__":
    main()
