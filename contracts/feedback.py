"""What a teacher said about an alert: acknowledged, contacted the student, or not useful."""

from enum import StrEnum

from pydantic import Field

from contracts._base import UtcDatetime, WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion


class FeedbackAction(StrEnum):
    """The answers the Moodle plugin offers on the course page and in the notification."""

    ACKNOWLEDGED = "acknowledged"
    CONTACTED = "contacted"
    NOT_USEFUL = "notuseful"


class TeacherFeedback(WireModel):
    """One teacher's answer about one alert, as published on the feedback topic.

    ``feedback_id`` is the plugin's row id: unique and increasing per site, so consumers keep
    the latest answer per student and drop replays (id at or below the one they hold).
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    site: str = Field(min_length=1, max_length=200)
    feedback_id: int = Field(ge=1, description="Plugin row id; increasing per site")
    alert_id: str = Field(min_length=1, max_length=64, description="RiskAlert.alert_id")
    course_id: int = Field(ge=0)
    user_id: int = Field(ge=0, description="The student the alert is about")
    teacher_id: int = Field(ge=0, description="Who answered")
    action: FeedbackAction
    time: UtcDatetime = Field(description="When the teacher answered")

    @property
    def key(self) -> bytes:
        """Kafka key: by student, like the events and alerts of that student."""
        return f"{self.site}:{self.user_id}".encode()
