"""A message that could not be used, kept with its reason so nothing is silently lost."""

import base64
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contracts._base import UtcDatetime, WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion


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
    failed_at: UtcDatetime

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
