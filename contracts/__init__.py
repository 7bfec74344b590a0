"""The wire contract every riskstream part speaks.

This package imports nothing else of ours, so producers and consumers on other campus
systems can vendor it alone. Bump ``SCHEMA_VERSION`` on any change that is not additive.
"""

from contracts.alerts import Contribution, RiskAlert, RiskLevel, RiskScore, alert_id
from contracts.calendar import CourseCalendar, Deadline, StudentProfile
from contracts.deadletter import DeadLetter
from contracts.events import (
    ACTIVITY_TYPES,
    ENROLMENT_EVENTNAME,
    UNENROLMENT_EVENTNAME,
    ActivityType,
    LmsEvent,
    activity_from_component,
    enrolment_event,
    is_enrolment,
)
from contracts.feedback import FeedbackAction, TeacherFeedback
from contracts.outcomes import CourseOutcome, OutcomeResult
from contracts.topics import TOPICS, Topics
from contracts.version import SCHEMA_VERSION
from contracts.wire import ContractError, decode, decode_event, encode

__all__ = [
    "ACTIVITY_TYPES",
    "ENROLMENT_EVENTNAME",
    "SCHEMA_VERSION",
    "TOPICS",
    "UNENROLMENT_EVENTNAME",
    "ActivityType",
    "ContractError",
    "Contribution",
    "CourseCalendar",
    "CourseOutcome",
    "DeadLetter",
    "Deadline",
    "FeedbackAction",
    "LmsEvent",
    "OutcomeResult",
    "RiskAlert",
    "RiskLevel",
    "RiskScore",
    "StudentProfile",
    "TeacherFeedback",
    "Topics",
    "activity_from_component",
    "alert_id",
    "decode",
    "decode_event",
    "encode",
    "enrolment_event",
    "is_enrolment",
]
