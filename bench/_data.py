"""Where the benchmarks find OULAD: $RISKSTREAM_DATA_DIR, else shared/ beside any parent folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def oulad_dir() -> Path:
    if os.environ.get("RISKSTREAM_DATA_DIR"):
        return Path(os.environ["RISKSTREAM_DATA_DIR"])
    for p in REPO.parents:
        if (p / "shared" / "datasets" / "oulad").is_dir():
            return p / "shared" / "datasets" / "oulad"
    return REPO.parent / "shared" / "datasets" / "oulad"
