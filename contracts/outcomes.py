"""What happened to a student in a course: the ground truth live calibration compares with.

A ``CourseOutcome`` is known either during the term (a withdrawal: the worker records one
for each unenrolment record on the events topic) or when a presentation ends (the final
result: pass, distinction, fail or withdrawn, e.g. from Moodle's course completion or
gradebook, or the replayer's OULAD final results). Label 1 = Fail or Withdrawn, as in the
model's training task. Stored as JSON in ``rs:outcome:{site}:{course}`` (field = user id).
"""

from typing import Literal

from pydantic import Field

from contracts._base import WireModel
from contracts.version import SCHEMA_VERSION, SchemaVersion

OutcomeResult = Literal["pass", "distinction", "fail", "withdrawn"]
NEGATIVE_RESULTS: frozenset[str] = frozenset({"pass", "distinction"})


class CourseOutcome(WireModel):
    """One student's outcome in one course; ``day`` = course day it became known (the
    withdrawal day for ``withdrawn``), ``final`` = the presentation's final result."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    site: str = Field(min_length=1)
    course_id: int = Field(ge=0)
    user_id: int = Field(ge=0)
    result: OutcomeResult
    day: int | None = Field(default=None, ge=0, le=3650)
    final: bool = False
    final_score: float | None = Field(default=None, ge=0.0, le=1.0)
    source: str = Field(default="", max_length=64)

    @property
    def label(self) -> int:
        """1 = Fail or Withdrawn (the model's positive class)."""
        return 0 if self.result in NEGATIVE_RESULTS else 1
