"""What the system says about a student: alerts, and the latest risk score."""

import hashlib
from enum import StrEnum

from pydantic import Field

from contracts._base import UtcDatetime, WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion


class RiskLevel(StrEnum):
    """Ordered levels; alerts are raised at MEDIUM and above."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2}


class Contribution(WireModel):
    """One feature group's share in a prediction, said in words a teacher understands."""

    feature: str = Field(min_length=1, description="Feature group, e.g. 'quiz'")
    weight: float = Field(description="Signed contribution to the risk (positive raises it)")
    text: str = Field(min_length=1, description="e.g. 'no quiz activity for 14 days'")


def alert_id(
    site: str, course_id: int, user_id: int, model_version: str, trigger_event_id: int, level: str
) -> str:
    """Deterministic id: a replay of the same events yields the same alert, not a second one."""
    raw = f"{site}|{course_id}|{user_id}|{model_version}|{trigger_event_id}|{level}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class RiskAlert(WireModel):
    """A student crossed the alert threshold in a course (published on the alerts topic)."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    alert_id: str = Field(min_length=8, max_length=64)
    site: str = Field(min_length=1)
    user_id: int = Field(ge=0)
    course_id: int = Field(ge=0)
    risk: float = Field(ge=0.0, le=1.0, description="P(Fail or Withdrawn)")
    level: RiskLevel
    threshold: float = Field(ge=0.0, le=1.0, description="Threshold that was crossed")
    model_version: str = Field(min_length=1)
    contributions: list[Contribution] = Field(default_factory=list, max_length=10)
    explanation: str = Field(default="", description="The contributions as one sentence")
    day: int = Field(description="Course day the alert refers to (0 = course start)")
    trigger_event_id: int = Field(ge=0)
    event_time: UtcDatetime = Field(description="Time of the triggering event")
    created_at: UtcDatetime = Field(description="When the worker raised it")


class RiskScore(WireModel):
    """Latest risk of one student in one course (topic risk.latest, keyed by student-course)."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    site: str = Field(min_length=1)
    user_id: int = Field(ge=0)
    course_id: int = Field(ge=0)
    risk: float = Field(ge=0.0, le=1.0)
    level: RiskLevel
    day: int
    model_version: str = Field(min_length=1)
    last_event_id: int = Field(ge=0)
    updated_at: UtcDatetime
