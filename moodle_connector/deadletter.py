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
    raw = (
        payload
        if isinstance(payload, bytes | str)
        else json.dumps(payload, default=str, sort_keys=True)
    )
    kept = DeadLetter.keep(raw)  # oversized: first bytes + size + sha256 (1 MB broker limit)
    return DeadLetter(
        reason=DeadLetter.short_reason(reason),
        error_type=type(error).__name__ if error else "",
        stage=stage,
        key=key,
        payload=kept.text,
        payload_encoding=kept.encoding,
        payload_truncated=kept.truncated,
        payload_bytes=kept.size,
        payload_sha256=kept.sha256,
        failed_at=datetime.now(UTC),
    )
