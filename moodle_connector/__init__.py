"""Moodle both ways: log rows in as ``LmsEvent``s, risk alerts back out.

Imports only ``contracts`` of ours (never torch or ``models``), so it runs on a small box
next to Moodle.
"""

from moodle_connector.client import MoodleClient, RetryPolicy, encode_params
from moodle_connector.errors import (
    AccessDenied,
    FunctionNotInService,
    InvalidToken,
    MoodleError,
    MoodleFatalError,
    MoodleUnavailable,
    WebServicesDisabled,
)

__all__ = [
    "AccessDenied",
    "FunctionNotInService",
    "InvalidToken",
    "MoodleClient",
    "MoodleError",
    "MoodleFatalError",
    "MoodleUnavailable",
    "RetryPolicy",
    "WebServicesDisabled",
    "encode_params",
]
