import json
from pathlib import Path

import jsonschema
import pytest

from contracts import LmsEvent, encode
from contracts.schema import SCHEMAS, write_schemas


def test_written_schemas_validate_real_payloads(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path)
    assert {p.name for p in paths} == {f"{n}.schema.json" for n in SCHEMAS}
    schema = json.loads((tmp_path / "lms_event.schema.json").read_text())
    assert schema["x-kafka-topic"] == "riskstream.events"
    ev = LmsEvent(
        site="s",
        event_id=1,
        user_id=1,
        course_id=1,
        time="2024-01-01T00:00:00Z",
        eventname="x",
        component="mod_page",
        action="viewed",
    )
    jsonschema.validate(json.loads(encode(ev)), schema)
    bad = json.loads(encode(ev)) | {"crud": "z"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
