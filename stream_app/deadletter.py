"""Dead letters: a message the worker cannot use is kept with its reason, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import TOPICS, DeadLetter, encode
from stream_app.records import InRecord, OutRecord


def dead_letter(rec: InRecord, stage: str, exc: BaseException | str) -> OutRecord:
    """A DeadLetter for ``rec`` on the dead-letter topic, keyed like the original."""
    reason = str(exc) if isinstance(exc, BaseException) else exc
    payload, encoding = DeadLetter.text_of(rec.value)
    dl = DeadLetter(
        reason=reason or "unusable message",
        error_type=type(exc).__name__ if isinstance(exc, BaseException) else "",
        stage=stage,
        source_topic=rec.topic,
        source_partition=rec.partition,
        source_offset=rec.offset,
        key=rec.key.decode("utf-8", "replace") if rec.key is not None else None,
        payload=payload,
        payload_encoding=encoding,
        failed_at=datetime.now(UTC),
    )
    return OutRecord(TOPICS.dead_letter, rec.key, encode(dl))
