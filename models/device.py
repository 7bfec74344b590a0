"""Device choice: ``auto`` takes CUDA when present; ``cuda`` without a GPU falls back to CPU."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def resolve_device(preference: str = "auto") -> torch.device:
    """Map a setting ('auto', 'cpu', 'cuda', 'cuda:1') to a usable torch.device."""
    pref = (preference or "auto").strip().lower()
    if pref not in {"auto", "cpu"} and not pref.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    if pref == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda" if pref == "auto" else pref)
    if pref.startswith("cuda"):
        log.warning("CUDA was asked for but is not available; using the CPU")
    return torch.device("cpu")
