from __future__ import annotations

import pytest
import torch

from models.device import resolve_device


def test_device_choice() -> None:
    assert resolve_device("cpu").type == "cpu"
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device("cuda").type == want  # falls back to the CPU without a GPU
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("tpu")
