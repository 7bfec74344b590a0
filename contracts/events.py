"""What a student did in the LMS, as one typed event, and the shared activity taxonomy."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from contracts._base import UtcDatetime, WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion


class ActivityType(StrEnum):
    """Canonical activity types shared by Moodle's components and OULAD's activity types."""

    CONTENT = "content"
    RESOURCE = "resource"
    FORUM = "forum"
    QUIZ = "quiz"
    ASSIGNMENT = "assignment"
    URL = "url"
    WIKI = "wiki"
    GLOSSARY = "glossary"
    COLLABORATE = "collaborate"
    COURSE_VIEW = "course_view"
    OTHER = "other"


ACTIVITY_TYPES: tuple[ActivityType, ...] = tuple(ActivityType)

_COMPONENT_ACTIVITY: dict[str, ActivityType] = {
    "mod_page": ActivityType.CONTENT,
    "mod_book": ActivityType.CONTENT,
    "mod_lesson": ActivityType.CONTENT,
    "mod_h5pactivity": ActivityType.CONTENT,
    "mod_scorm": ActivityType.CONTENT,
    "mod_imscp": ActivityType.CONTENT,
    "mod_label": ActivityType.CONTENT,
    "mod_resource": ActivityType.RESOURCE,
    "mod_folder": ActivityType.RESOURCE,
    "mod_forum": ActivityType.FORUM,
    "mod_quiz": ActivityType.QUIZ,
    "mod_assign": ActivityType.ASSIGNMENT,
    "mod_workshop": ActivityType.ASSIGNMENT,
    "mod_url": ActivityType.URL,
    "mod_wiki": ActivityType.WIKI,
    "mod_glossary": ActivityType.GLOSSARY,
    "mod_bigbluebuttonbn": ActivityType.COLLABORATE,
    "mod_chat": ActivityType.COLLABORATE,
    "mod_data": ActivityType.CONTENT,
}


def activity_from_component(component: str, target: str = "", action: str = "") -> ActivityType:
    """Map a Moodle log row's component (and target) to the canonical taxonomy."""
    if component in _COMPONENT_ACTIVITY:
        return _COMPONENT_ACTIVITY[component]
    if component == "core" and target == "course" and action == "viewed":
        return ActivityType.COURSE_VIEW
    return ActivityType.OTHER


class LmsEvent(WireModel):
    """One thing one student did in one course, as published on the events topic.

    ``event_id`` is the site's log id: unique and increasing per site, so consumers can
    drop anything at or below the last id they applied for a student.
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    site: str = Field(min_length=1, max_length=200, description="Site identifier, e.g. its host")
    event_id: int = Field(ge=0, description="Moodle log id; unique and increasing per site")
    user_id: int = Field(ge=0)
    course_id: int = Field(ge=0)
    time: UtcDatetime = Field(description="When it happened (timezone-aware, stored as UTC)")
    eventname: str = Field(
        min_length=1, max_length=255, description="e.g. \\mod_quiz\\event\\attempt_submitted"
    )
    component: str = Field(min_length=1, max_length=100)
    action: str = Field(min_length=1, max_length=100)
    target: str = Field(default="", max_length=100)
    crud: Literal["c", "r", "u", "d"] = "r"
    edulevel: Literal[0, 1, 2] = 2
    cmid: int | None = Field(default=None, ge=0, description="Course-module id, if any")
    activity: ActivityType = ActivityType.OTHER
    count: int = Field(default=1, ge=1, le=100_000, description="Clicks folded into this event")
    attempt_id: int | None = Field(default=None, ge=0)
    grade: float | None = Field(default=None, ge=0)
    max_grade: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _derive_activity(cls, data: object) -> object:
        """Producers may leave ``activity`` out: it follows from the component."""
        if isinstance(data, dict) and data.get("activity") is None and "component" in data:
            data = dict(data)
            data["activity"] = activity_from_component(
                str(data["component"]), str(data.get("target", "")), str(data.get("action", ""))
            )
        return data

    @model_validator(mode="after")
    def _grade_within_max(self) -> "LmsEvent":
        if self.grade is not None:
            if self.max_grade is None:
                raise ValueError("grade needs max_grade")
            if self.grade > self.max_grade * (1 + 1e-9):
                raise ValueError(f"grade {self.grade} is above max_grade {self.max_grade}")
        return self

    @property
    def key(self) -> bytes:
        """Kafka key: by student, so one student's events stay in order on one partition."""
        return f"{self.site}:{self.user_id}".encode()


#: Moodle's own log names for an enrolment starting and ending. The connector (from the
#: roster) and the replayer (from OULAD's studentRegistration) publish them on the events
#: topic like any event: an enrolment creates the student's state, so a student who never
#: clicks is still scored and swept day by day; an unenrolment ends scoring (withdrawn).
#: Neither counts as activity.
ENROLMENT_EVENTNAME = "\\core\\event\\user_enrolment_created"
UNENROLMENT_EVENTNAME = "\\core\\event\\user_enrolment_deleted"


def is_enrolment(event: LmsEvent) -> bool:
    """True for an enrolment or unenrolment record (roster facts, not student activity)."""
    return event.eventname in (ENROLMENT_EVENTNAME, UNENROLMENT_EVENTNAME)


def enrolment_event(
    site: str,
    course_id: int,
    user_id: int,
    time: datetime,
    event_id: int = 0,
    ended: bool = False,
) -> LmsEvent:
    """An enrolment (or, with ``ended``, unenrolment) record for one student in one course.

    ``event_id`` 0 is for enrolments synthesised from a roster: 0 is at or below any id
    the worker has applied, so it only ever creates a state that does not exist yet.
    """
    return LmsEvent(
        site=site,
        event_id=event_id,
        user_id=user_id,
        course_id=course_id,
        time=time,
        eventname=UNENROLMENT_EVENTNAME if ended else ENROLMENT_EVENTNAME,
        component="core",
        action="deleted" if ended else "created",
        target="user_enrolment",
        crud="d" if ended else "c",
        edulevel=0,
        activity=ActivityType.OTHER,
    )
