"""Dead letters from the connector: the raw thing, the reason, the stage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from contracts import DeadLetter


def dead_letter(
    payload: Any,
    reason: str,
    stage: str,
    error: BaseException | None = None,
    key: str | None = None,
) -> DeadLetter:
    """Keep the raw payload byte-exact where it was bytes, else as JSON text."""
    if isinstance(payload, bytes | str):
        text, enc = DeadLetter.text_of(payload)
    else:
        text, enc = json.dumps(payload, default=str, sort_keys=True), "utf-8"
    return DeadLetter(
        reason=reason,
        error_type=type(error).__name__ if error else "",
        stage=stage,
        key=key,
        payload=text,
        payload_encoding=enc,
        failed_at=datetime.now(UTC),
    )
