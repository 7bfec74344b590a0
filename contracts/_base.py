"""Shared pydantic configuration for every wire model."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def _aware_utc(value: datetime) -> datetime:
    """Times on the wire are absolute: naive datetimes are refused, not guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp needs a timezone, e.g. 2024-03-01T10:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: found by tests/fuzz
        raise ValueError("timestamp is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]


class WireModel(BaseModel):
    """Frozen, strict about unknown fields, so a typo on the wire is an error, not silence.

    Non-finite floats (NaN, +-Infinity) are refused in every float field: JSON cannot carry
    them, and one of them turns a student's model state into NaN (issue 15).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, allow_inf_nan=False
    )
