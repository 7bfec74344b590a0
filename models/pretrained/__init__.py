"""A model the project trained on OULAD and ships, so the demo needs no training run.

Trained with ``python3 -m riskstream train`` (LSTM, hidden 64, running-aggregate inputs) on
OULAD 2013B + 2013J, validated on 2014B; see ``lstm_oulad/metrics.json`` and the README.
"""

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "lstm_oulad"
