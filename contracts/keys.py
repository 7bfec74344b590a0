"""Redis key names: written by the stream worker, the connector and the replayer, read by
the API (the layout is documented in ARCHITECTURE.md, "Redis keys").

Every key of one course carries the hash tag ``{site:course}``, so on a Redis Cluster a
course's keys share one slot and the worker's atomic write per course (one Lua call) stays in
one slot. On a single Redis the braces are just characters of the name.
"""

from __future__ import annotations

ALERTS_STREAM = "rs:alerts"  # stream of RiskAlert JSON (field "alert"); one slot of its own
ALERT_IDS = "{rs:alerts}:ids"  # cluster mode: alert ids already on the stream (same slot)


def course_tag(site: str, course: int) -> str:
    """The hash tag of one course: ``{site:course}``."""
    return f"{{{site}:{course}}}"


def state_key(site: str, course: int, user: int) -> str:
    """Hash: one student's state in one course (fields in stream_app/state.py)."""
    return f"rs:st:{course_tag(site, course)}:{user}"


def profile_key(site: str, course: int, user: int) -> str:
    """StudentProfile JSON."""
    return f"rs:prof:{course_tag(site, course)}:{user}"


def rank_key(site: str, course: int) -> str:
    """Sorted set user -> latest risk."""
    return f"rs:rank:{course_tag(site, course)}"


def calendar_key(site: str, course: int) -> str:
    """CourseCalendar JSON."""
    return f"rs:cal:{course_tag(site, course)}"


def caps_key(site: str, course: int, partition: int) -> str:
    """Hash: the alert policy's book per course and partition (stream_app/state.py)."""
    return f"rs:cap:{course_tag(site, course)}:{partition}"


def candidates_key(site: str, course: int, partition: int, day: int) -> str:
    """Sorted set ``user:trigger`` -> held risk: one day's alert candidates until released."""
    return f"rs:cand:{course_tag(site, course)}:{partition}:{day}"


def feedback_key(site: str, course: int, user: int) -> str:
    """Hash alert id -> the latest TeacherFeedback answer about that alert (JSON; the higher
    feedback id wins): what the worker's alert admission consults (stream_app/feedback.py)."""
    return f"rs:fb:{course_tag(site, course)}:{user}"


def drift_key(site: str, course: int, version: str) -> str:
    """Hash of drift counts (``{week}:n``, ``{week}:{feature}:{bin}``) per model version."""
    return f"rs:drift:{course_tag(site, course)}:{version}"


def outcome_key(site: str, course: int) -> str:
    """Hash user id -> CourseOutcome JSON (withdrawals from the worker, final results)."""
    return f"rs:outcome:{course_tag(site, course)}"


def roster_key(site: str, course: int) -> str:
    """Roster JSON (the connector)."""
    return f"rs:roster:{course_tag(site, course)}"


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes for ``key``: the text inside its first ``{...}`` when that
    is not empty, else the whole key."""
    i = key.find("{")
    j = key.find("}", i + 1) if i >= 0 else -1
    return key[i + 1 : j] if j > i + 1 else key


def courses_key(site: str) -> str:
    """Set of the site's course ids."""
    return f"rs:courses:{site}"


def _glob(site: str) -> str:
    """A site id (or a prefix ending in ``*``) for SCAN MATCH, glob characters escaped."""
    esc = "".join("\\" + c if c in "*?[]\\" else c for c in site.rstrip("*"))
    return esc + ("*" if site.endswith("*") else "")


def site_pattern(site: str) -> str:
    """SCAN MATCH pattern for every per-course key of ``site`` (``site`` may end in ``*``)."""
    return f"rs:*:{{{_glob(site)}:*"


def state_pattern(site: str) -> str:
    """SCAN MATCH pattern for every student state of ``site``."""
    return f"rs:st:{{{_glob(site)}:*"
