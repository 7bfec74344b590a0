"""Course facts the featurizer needs beside events: when it starts, its deadlines, a profile."""

from typing import Literal

from pydantic import Field

from contracts._base import UtcDatetime, WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion


class Deadline(WireModel):
    """An assessed activity's due time (Moodle quiz/assign close date, OULAD assessment)."""

    due: UtcDatetime
    kind: Literal["quiz", "assignment", "exam", "other"] = "other"
    weight: float = Field(default=0.0, ge=0.0, le=100.0)
    cmid: int | None = None


class CourseCalendar(WireModel):
    """Day 0 of a course and its deadlines: the featurizer counts days from ``start``."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    site: str = Field(min_length=1)
    course_id: int = Field(ge=0)
    start: UtcDatetime
    length_days: int = Field(default=270, ge=1, le=3650)
    deadlines: list[Deadline] = Field(default_factory=list)
    name: str = ""


class StudentProfile(WireModel):
    """Static facts about one enrolment; every field is optional (Moodle rarely knows them).

    Protected attributes are carried so fairness can be reported; the model only sees
    those its feature spec names.
    """

    schema_version: SchemaVersion = SCHEMA_VERSION
    site: str = Field(min_length=1)
    user_id: int = Field(ge=0)
    course_id: int = Field(ge=0)
    num_prev_attempts: int | None = Field(default=None, ge=0)
    studied_credits: int | None = Field(default=None, ge=0)
    highest_education: str | None = None
    registration_day: int | None = None
    gender: str | None = None
    age_band: str | None = None
    disability: bool | None = None
    imd_band: str | None = None
    region: str | None = None
