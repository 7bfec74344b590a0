"""The one schema version of the wire contract."""

from typing import Final, Literal

SchemaVersion = Literal[1]
SCHEMA_VERSION: Final = 1
