"""Response bodies, published in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Level = Literal["low", "medium", "high"]


class ContributionOut(BaseModel):
    feature: str
    weight: float
    text: str


class AlertOut(BaseModel):
    """A RiskAlert as campus systems see it (``user`` may be a pseudonym)."""

    id: str = Field(description="Redis stream id; also the SSE event id")
    alert_id: str
    site: str
    course: int
    user: str = Field(description="Moodle user id, or a keyed pseudonym when enabled")
    risk: float
    level: Level
    threshold: float
    model_version: str
    explanation: str
    contributions: list[ContributionOut]
    day: int
    event_time: datetime | None
    created_at: datetime | None


class Trend(BaseModel):
    days: int = Field(description="Course days the change spans")
    change: float | None = Field(description="Risk now minus risk `days` ago")
    direction: Literal["rising", "falling", "steady", "unknown"]
    recent: list[float | None] = Field(description="Daily risk of the last days, oldest first")


class Explanation(BaseModel):
    text: str
    contributions: list[ContributionOut]
    alert_id: str | None = None
    level: str | None = None
    day: int | None = None
    created_at: datetime | None = None


class RiskOut(BaseModel):
    course: int
    user: str
    risk: float | None
    level: Level
    day: int | None
    model_version: str
    updated_at: datetime | None
    trend: Trend
    trajectory: list[float | None] = Field(
        description="End-of-day risk of consecutive course days (null: no score)"
    )
    trajectory_start_day: int = Field(description="Course day of trajectory[0]")
    explanation: Explanation | None


class RankedOut(BaseModel):
    user: str
    risk: float
    level: Level | None
    updated_at: datetime | None


class Page(BaseModel):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class AtRiskPage(Page):
    course: int
    min_level: Level
    min_risk: float
    items: list[RankedOut]


class AlertPage(Page):
    items: list[AlertOut]


class CourseOut(BaseModel):
    course: int
    students: int


class CoursesOut(BaseModel):
    site: str
    courses: list[CourseOut]


class DistributionOut(BaseModel):
    course: int
    edges: list[float]
    counts: list[int]
    thresholds: dict[str, float]


class ModelOut(BaseModel):
    version: str
    current: bool
    metrics: dict[str, Any]
    thresholds: dict[str, Any]
    details: dict[str, Any]


class ModelsOut(BaseModel):
    current: str | None
    versions: list[ModelOut]


class StatsOut(BaseModel):
    throughput_eps: float | None = Field(description="Events/s the worker committed lately")
    lag: int | None = Field(description="Events in the topic not yet committed by the worker")
    lag_error: str | None
    alerts_per_min: float
    alerts_seen: int
    live_clients: int
    at: datetime


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    redis: bool
    broker: bool | None = Field(description="null when no broker is configured")
    model_loaded: bool
    model_version: str | None
    site: str = Field(description="The one site this API serves (shown on /ui)")


class ErrorOut(BaseModel):
    detail: Any
