"""Redis key names the stream worker writes and the API reads (contracts/keys.py)."""

from contracts.keys import (
    ALERTS_STREAM,
    calendar_key,
    courses_key,
    drift_key,
    outcome_key,
    rank_key,
    state_key,
)

__all__ = [
    "ALERTS_STREAM",
    "calendar_key",
    "courses_key",
    "drift_key",
    "outcome_key",
    "rank_key",
    "state_key",
]
