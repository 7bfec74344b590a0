"""Batched LSTM inference: throughput against batch size, and incremental step vs recompute.

What the worker does per micro-batch: take every student's state (h, c, static) and open-day
vector as host arrays (as read from Redis), move them to the device, run one ``step``, bring
risk and the new h, c back. Timings include both transfers; on CUDA the compute-only time
(tensors already on the device) is reported beside it, so the transfer share is visible.

The incremental-vs-full comparison answers "why keep LSTM state in Redis at all": a
stateless worker would rerun the whole history (30, 100, 200 days) for every student in a
batch. Both are timed in the same run, on the same model and batch.

    python3 -m bench.bench_inference                      # CPU, and CUDA when present
    python3 -m bench.bench_inference --registry var/registry --out var/bench/x.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench._report import Timer, console, table, write

SIZES = [1, 4, 16, 64, 256, 1024, 4096, 16384]
DAYS = [30, 100, 200]


def load_model(
    registry: Path | None, hidden: int, seed: int
) -> tuple[torch.nn.Module, int, int, str]:
    """The registry's current model, or a fresh LstmRisk of the production size."""
    if registry is not None:
        from models.registry import Registry

        loaded = Registry(registry).load(device="cpu")
        spec = loaded.spec
        return loaded.model.eval(), spec.n_day, spec.n_static, f"registry {loaded.version}"
    from models.features import DEFAULT_SPEC
    from models.lstm import LstmRisk

    torch.manual_seed(seed)
    model = LstmRisk(DEFAULT_SPEC.n_day, DEFAULT_SPEC.n_static, hidden=hidden).eval()
    return (
        model,
        DEFAULT_SPEC.n_day,
        DEFAULT_SPEC.n_static,
        f"LstmRisk(hidden={hidden}) random init",
    )


def devices(wanted: str) -> list[torch.device]:
    """``auto``: CPU, plus CUDA when present (CUDA asked for but absent falls back, noted)."""
    out = [torch.device("cpu")]
    if wanted in ("auto", "cuda"):
        if torch.cuda.is_available():
            out.append(torch.device("cuda"))
        elif wanted == "cuda":
            console.print("[yellow]CUDA asked for but not available: CPU only[/]")
    return out


class Batch:
    """Host arrays of one micro-batch, as the worker holds them after the Redis read."""

    def __init__(self, b: int, n_day: int, n_static: int, hidden: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.h = rng.standard_normal((b, hidden), dtype=np.float32) * 0.1
        self.c = rng.standard_normal((b, hidden), dtype=np.float32) * 0.1
        self.static = rng.random((b, n_static), dtype=np.float32)
        self.x = rng.random((b, n_day), dtype=np.float32)

    def window(self, days: int, seed: int = 1) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.random((self.x.shape[0], days, self.x.shape[1]), dtype=np.float32)


def _to(arr: np.ndarray, dev: torch.device) -> torch.Tensor:
    t = torch.from_numpy(arr)
    return t.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else t


def step_host(model: Any, batch: Batch, dev: torch.device) -> tuple[np.ndarray, ...]:
    """One incremental step, host arrays in and out (both transfers counted)."""
    with torch.inference_mode():
        state = {"h": _to(batch.h, dev), "c": _to(batch.c, dev), "static": _to(batch.static, dev)}
        new, out = model.step(state, _to(batch.x, dev))
        return out.risk.cpu().numpy(), new["h"].cpu().numpy(), new["c"].cpu().numpy()


def full_host(model: Any, batch: Batch, win: np.ndarray, dev: torch.device) -> np.ndarray:
    """Stateless alternative: rerun the whole history, keep the last day's risk."""
    with torch.inference_mode():
        out = model(_to(win, dev), _to(batch.static, dev))
        return out.risk[:, -1].cpu().numpy()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench_batches(
    model: Any, dims: tuple[int, int, int], devs: list[torch.device], sizes: list[int], timer: Timer
) -> list[dict[str, Any]]:
    n_day, n_static, hidden = dims
    rows = []
    for dev in devs:
        m = model.to(dev)
        for b in sizes:
            batch = Batch(b, n_day, n_static, hidden)
            t = timer.per_call(lambda m=m, batch=batch, dev=dev: step_host(m, batch, dev))
            row: dict[str, Any] = {
                "device": dev.type,
                "batch": b,
                "ms_per_batch": t * 1e3,
                "rows_per_s": b / t,
                "compute_ms": None,
                "transfer_share": None,
            }
            if dev.type == "cuda":
                with torch.inference_mode():
                    st = {k: _to(getattr(batch, k), dev) for k in ("h", "c", "static")}
                    xd = _to(batch.x, dev)

                    def compute(m: Any = m, st: Any = st, xd: Any = xd, dev: Any = dev) -> None:
                        m.step(st, xd)
                        sync(dev)

                    tc = timer.per_call(compute)
                row["compute_ms"] = tc * 1e3
                row["transfer_share"] = max(0.0, 1 - tc / t)
            rows.append(row)
    model.to("cpu")
    return rows


def bench_incremental(
    model: Any,
    dims: tuple[int, int, int],
    devs: list[torch.device],
    days: list[int],
    batch_size: int,
    timer: Timer,
) -> list[dict[str, Any]]:
    n_day, n_static, hidden = dims
    rows = []
    batch = Batch(batch_size, n_day, n_static, hidden)
    for dev in devs:
        m = model.to(dev)
        t_inc = timer.per_call(lambda m=m, dev=dev: step_host(m, batch, dev))
        for d in days:
            win = batch.window(d)
            t_full = timer.per_call(lambda m=m, win=win, dev=dev: full_host(m, batch, win, dev))
            rows.append(
                {
                    "device": dev.type,
                    "days": d,
                    "batch": batch_size,
                    "incremental_ms": t_inc * 1e3,
                    "full_ms": t_full * 1e3,
                    "speedup": t_full / t_inc,
                }
            )
    model.to("cpu")
    return rows


def cuda_matches_cpu(model: Any, dims: tuple[int, int, int], b: int = 1024) -> dict[str, float]:
    """Max |CPU - CUDA| of the risk on the same batch, step and 100-day forward (need <= 1e-4)."""
    n_day, n_static, hidden = dims
    batch = Batch(b, n_day, n_static, hidden)
    win = batch.window(100)
    cpu_step = step_host(model.to("cpu"), batch, torch.device("cpu"))[0]
    cpu_full = full_host(model, batch, win, torch.device("cpu"))
    gpu = torch.device("cuda")
    gpu_step = step_host(model.to(gpu), batch, gpu)[0]
    gpu_full = full_host(model, batch, win, gpu)
    model.to("cpu")
    return {
        "step_max_abs_diff": float(np.abs(cpu_step - gpu_step).max()),
        "forward100_max_abs_diff": float(np.abs(cpu_full - gpu_full).max()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--registry", type=Path, default=None, help="use this registry's current model")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    p.add_argument("--days", type=int, nargs="+", default=DAYS)
    p.add_argument("--inc-batch", type=int, default=256, help="batch for step vs recompute")
    p.add_argument("--min-s", type=float, default=0.5, help="minimum timing per point")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads on CPU; 1 is what the worker should use beside the broker "
        "and Redis on 2 cores (2 threads spin against them: 0.28 ms -> 15 ms per step measured)",
    )
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    model, n_day, n_static, desc = load_model(a.registry, a.hidden, seed=0)
    hidden = int(getattr(model, "hidden", a.hidden))
    dims = (n_day, n_static, hidden)
    devs = devices(a.device)
    timer = Timer(min_s=a.min_s)
    console.print(
        f"model: {desc}; n_day={n_day} n_static={n_static} hidden={hidden}; "
        f"devices: {', '.join(d.type for d in devs)}; torch threads {torch.get_num_threads()}"
    )
    batches = bench_batches(model, dims, devs, a.sizes, timer)
    table(
        "Batched step (host arrays in and out, transfers counted)",
        ["device", "batch", "ms/batch", "rows/s", "compute ms", "transfer share"],
        [
            [
                r["device"],
                r["batch"],
                r["ms_per_batch"],
                r["rows_per_s"],
                r["compute_ms"] if r["compute_ms"] is not None else "-",
                f"{r['transfer_share']:.0%}" if r["transfer_share"] is not None else "-",
            ]
            for r in batches
        ],
    )
    inc = bench_incremental(model, dims, devs, a.days, a.inc_batch, timer)
    table(
        f"Incremental step vs full recompute (batch {a.inc_batch}, same run)",
        ["device", "days of history", "step ms", "recompute ms", "step is x faster"],
        [[r["device"], r["days"], r["incremental_ms"], r["full_ms"], r["speedup"]] for r in inc],
    )
    results: dict[str, Any] = {"model": desc, "batches": batches, "incremental": inc}
    if any(d.type == "cuda" for d in devs):
        results["cuda_vs_cpu"] = cuda_matches_cpu(model, dims)
        console.print(f"CUDA vs CPU on the same batch: {results['cuda_vs_cpu']} (need <= 1e-4)")
    else:
        results["cuda_vs_cpu"] = None
        console.print("[dim]no CUDA device here: GPU rows not measured[/]")
    write("bench_inference", a.out, vars(a) | {"registry": str(a.registry)}, results)
    return results


if __name__ == "__main__":
    main()
