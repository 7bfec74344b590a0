"""Dead letters: a message the worker cannot use is kept with its reason, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import TOPICS, DeadLetter, encode
from stream_app.records import InRecord, OutRecord


def dead_letter(rec: InRecord, stage: str, exc: BaseException | str) -> OutRecord:
    """A DeadLetter for ``rec`` on the dead-letter topic, keyed like the original; an
    oversized payload keeps its first bytes, size and sha256 (``DeadLetter.keep``)."""
    reason = str(exc) if isinstance(exc, BaseException) else exc
    kept = DeadLetter.keep(rec.value)
    key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
    dl = DeadLetter(
        reason=DeadLetter.short_reason(reason or "unusable message"),
        error_type=type(exc).__name__ if isinstance(exc, BaseException) else "",
        stage=stage,
        source_topic=rec.topic,
        source_partition=rec.partition,
        source_offset=rec.offset,
        key=key if key is None or len(key) <= 1000 else key[:1000] + "...",
        payload=kept.text,
        payload_encoding=kept.encoding,
        payload_truncated=kept.truncated,
        payload_bytes=kept.size,
        payload_sha256=kept.sha256,
        failed_at=datetime.now(UTC),
    )
    out_key = rec.key if rec.key is None or len(rec.key) <= 1000 else rec.key[:1000]
    return OutRecord(TOPICS.dead_letter, out_key, encode(dl))
