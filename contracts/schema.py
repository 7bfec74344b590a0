"""JSON Schema export: the published contract other campus systems build against."""

import json
from pathlib import Path

from pydantic import BaseModel

from contracts.alerts import RiskAlert, RiskScore
from contracts.calendar import CourseCalendar, StudentProfile
from contracts.deadletter import DeadLetter
from contracts.events import LmsEvent
from contracts.feedback import TeacherFeedback
from contracts.outcomes import CourseOutcome
from contracts.topics import TOPICS
from contracts.version import SCHEMA_VERSION

#: file name -> (model, topic it travels on, if any)
SCHEMAS: dict[str, tuple[type[BaseModel], str | None]] = {
    "lms_event": (LmsEvent, TOPICS.events),
    "risk_alert": (RiskAlert, TOPICS.alerts),
    "risk_score": (RiskScore, TOPICS.risk_latest),
    "dead_letter": (DeadLetter, TOPICS.dead_letter),
    "teacher_feedback": (TeacherFeedback, TOPICS.feedback),
    "course_calendar": (CourseCalendar, None),
    "student_profile": (StudentProfile, None),
    "course_outcome": (CourseOutcome, None),
}


def json_schemas() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, (model, topic) in SCHEMAS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://riskstream.dev/schemas/v{SCHEMA_VERSION}/{name}.json"
        if topic:
            schema["x-kafka-topic"] = topic
        out[name] = schema
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
