"""The proof benchmarks run and write what BENCHMARKS.md quotes (tiny sizes: figures are
not checked here, only that the scripts work and their JSON holds the promised fields)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import bench_inference, bench_redis_memory


def test_inference_bench_writes_rows_per_batch_and_step_vs_recompute(tmp_path: Path) -> None:
    out = tmp_path / "inf.json"
    bench_inference.main(
        [
            "--sizes",
            "1",
            "64",
            "--days",
            "10",
            "--inc-batch",
            "8",
            "--hidden",
            "8",
            "--min-s",
            "0.01",
            "--device",
            "cuda",
            "--out",
            str(out),
        ]
    )
    doc = json.loads(out.read_text())
    res = doc["results"]
    assert [r["batch"] for r in res["batches"]][:2] == [1, 64]
    assert all(r["rows_per_s"] > 0 for r in res["batches"])
    # cuda asked for: runs on the GPU when present, else falls back to the CPU alone
    assert {r["device"] for r in res["batches"]} <= {"cpu", "cuda"}
    assert res["incremental"][0]["days"] == 10 and res["incremental"][0]["speedup"] > 0
    assert doc["machine"]["cpus"] and doc["date"]


def test_redis_memory_bench_measures_bytes_per_enrolment(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    out = tmp_path / "mem.json"
    bench_redis_memory.main(["--n", "300", "--days", "5", "40", "--out", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert [r["course_day"] for r in rows] == [5, 40]
    # a longer history (trajectory) costs more, and a state is at least its h and c
    assert rows[1]["bytes_per_enrolment"] > rows[0]["bytes_per_enrolment"] > 2 * 128 * 4


def test_cuda_inference_equals_cpu_on_the_same_batch() -> None:
    """The GPU path (issue 7): same batch, same model, risk within 1e-4 of the CPU's."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    model, n_day, n_static, _ = bench_inference.load_model(None, hidden=128, seed=0)
    diff = bench_inference.cuda_matches_cpu(model, (n_day, n_static, 128), b=2048)
    assert diff["step_max_abs_diff"] <= 1e-4 and diff["forward100_max_abs_diff"] <= 1e-4
