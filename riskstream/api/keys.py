"""Redis key names the stream worker writes and the API reads (pinned in ARCHITECTURE.md)."""

ALERTS_STREAM = "rs:alerts"


def state_key(site: str, course: int, user: int) -> str:
    return f"rs:st:{site}:{course}:{user}"


def rank_key(site: str, course: int) -> str:
    return f"rs:rank:{site}:{course}"


def courses_key(site: str) -> str:
    return f"rs:courses:{site}"


def calendar_key(site: str, course: int) -> str:
    return f"rs:cal:{site}:{course}"


def drift_key(site: str, course: int, version: str) -> str:
    """Hash of drift counts (``{week}:n``, ``{week}:{feature}:{bin}``) per model version."""
    return f"rs:drift:{site}:{course}:{version}"


def outcome_key(site: str, course: int) -> str:
    """Hash user id -> CourseOutcome JSON (withdrawals from the worker, final results)."""
    return f"rs:outcome:{site}:{course}"
