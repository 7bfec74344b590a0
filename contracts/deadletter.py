"""A message that could not be used, kept with its reason so nothing is silently lost."""

import base64
import hashlib
from typing import Annotated, Literal, NamedTuple

from pydantic import Field, StringConstraints

from contracts._base import UtcDatetime, WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion

#: Payloads up to this size are kept whole; larger ones keep their first bytes, their size and
#: their sha256, so the dead letter fits a broker's 1 MB message limit (Apache Kafka's default)
#: even when every kept byte needs a six-character JSON escape.
PAYLOAD_KEEP_BYTES = 128 * 1024
REASON_MAX_CHARS = 4000


class KeptPayload(NamedTuple):
    text: str
    encoding: Literal["utf-8", "base64"]
    truncated: bool
    size: int
    sha256: str


class DeadLetter(WireModel):
    """Raw payload + why it was refused + where it came from (dead-letter topic)."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    reason: str = Field(min_length=1, description="What was wrong and, where known, what to do")
    error_type: str = Field(default="", description="Exception class name")
    stage: str = Field(min_length=1, description="Which part refused it, e.g. 'stream.decode'")
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = None
    # Not stripped like other wire strings: the payload must stay byte-exact (tests/fuzz).
    payload: Annotated[str, StringConstraints(strip_whitespace=False)] = Field(
        description="Raw payload as UTF-8 text, or base64 (see payload_encoding)"
    )
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_truncated: bool = Field(
        default=False, description="True when payload holds only the first bytes of the original"
    )
    payload_bytes: int | None = Field(default=None, ge=0, description="Original payload size")
    payload_sha256: str | None = Field(default=None, description="sha256 hex of the original")
    failed_at: UtcDatetime

    @staticmethod
    def keep(raw: bytes | str | None, limit: int = PAYLOAD_KEEP_BYTES) -> KeptPayload:
        """The payload as it goes into a dead letter: whole (byte-exact) up to ``limit``
        bytes, else its first bytes (cut on a character boundary when it is text)."""
        data = b"" if raw is None else raw.encode("utf-8") if isinstance(raw, str) else raw
        digest = hashlib.sha256(data).hexdigest()
        if len(data) <= limit:
            text, enc = DeadLetter.text_of(raw)
            return KeptPayload(text, enc, False, len(data), digest)
        head = data[:limit]
        for cut in range(4):  # a UTF-8 character is at most 4 bytes
            try:
                return KeptPayload(
                    head[: len(head) - cut].decode("utf-8"), "utf-8", True, len(data), digest
                )
            except UnicodeDecodeError:
                continue
        return KeptPayload(
            base64.b64encode(head).decode("ascii"), "base64", True, len(data), digest
        )

    @staticmethod
    def short_reason(reason: str) -> str:
        """Reasons are for people: a reason longer than ``REASON_MAX_CHARS`` is cut."""
        if len(reason) <= REASON_MAX_CHARS:
            return reason
        return reason[:REASON_MAX_CHARS] + f"... ({len(reason)} characters)"

    @staticmethod
    def text_of(raw: bytes | str | None) -> tuple[str, Literal["utf-8", "base64"]]:
        """Keep the payload byte-exact: text when it is UTF-8, else base64."""
        if raw is None:
            return "", "utf-8"
        if isinstance(raw, str):
            return raw, "utf-8"
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"

    def raw_bytes(self) -> bytes:
        """The original payload bytes, for replaying a fixed message."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")
