"""Shared output for the proof benchmarks: a rich table on stdout and a JSON file.

Every JSON carries the machine and the date, so a figure in BENCHMARKS.md can be traced
to the run that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, torch and (when present) the CUDA device."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gb": _mem_gb(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # the connector-side benches do not need torch
        info["torch"] = None
    info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def default_out(name: str) -> Path:
    return Path("var/bench") / f"{name}.json"


def write(name: str, out: Path | None, params: dict[str, Any], results: Any) -> Path:
    """Write ``{bench, date, machine, command, params, results}`` as JSON; returns the path."""
    path = out or default_out(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "params": params,
        "results": results,
    }
    path.write_text(json.dumps(doc, indent=2, default=str))
    console.print(f"[dim]wrote {path}[/]")
    return path


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(*columns, title=title)
    for row in rows:
        t.add_row(*(_fmt(v) for v in row))
    console.print(t)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


class Timer:
    """Repeat ``fn`` until ``min_s`` elapsed (at least ``min_reps`` times); seconds per call."""

    def __init__(self, min_s: float = 0.3, min_reps: int = 3, warmup: int = 1) -> None:
        self.min_s, self.min_reps, self.warmup = min_s, min_reps, warmup

    def per_call(self, fn: Any) -> float:
        for _ in range(self.warmup):
            fn()
        reps = 0
        t0 = time.perf_counter()
        while True:
            fn()
            reps += 1
            elapsed = time.perf_counter() - t0
            if reps >= self.min_reps and elapsed >= self.min_s:
                return elapsed / reps
