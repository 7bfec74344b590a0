"""One featurizer, two doors: the stream folds events one by one, the trainer runs over tables.

Both doors fill the same raw per-day *accumulator* (counts of one day) and share one function,
``day_vectors``, that turns accumulators into model inputs. So training and streaming see the
same numbers by construction, and a test checks it on real OULAD data.

Accumulator layout (float32, raw, unscaled):
    [0:11]  clicks per canonical ActivityType (ACTIVITY_TYPES order)
    [11]    assessment submissions that day (events carrying a grade or an attempt id)
    [12]    sum of grade / max_grade over graded submissions that day
    [13]    graded submissions that day

Days count from the calendar's ``start`` (day 0). Events before the start are folded into
day 0: pre-course browsing is a real engagement signal, and the stream has no earlier day to
put it in. Both doors apply the same rule (``day_of`` clamps at 0).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np

from contracts import ACTIVITY_TYPES, ActivityType, CourseCalendar, LmsEvent, StudentProfile

#: bump when the meaning of a feature changes; it is part of every spec hash
FEATURIZER_VERSION = 1

N_ACT = len(ACTIVITY_TYPES)
ACC_SUBMIT = N_ACT
ACC_SCORE_SUM = N_ACT + 1
ACC_SCORED = N_ACT + 2
N_ACC = N_ACT + 3

DAY_SCALE = 270.0  # day index is scaled by a typical course length
DEADLINE_CAP = 28.0  # "no deadline within four weeks" looks the same as "none at all"
_ACT_INDEX = {a: i for i, a in enumerate(ACTIVITY_TYPES)}

#: every day feature the featurizer can compute, in computation order
ALL_DAY_FEATURES: tuple[str, ...] = (
    *(f"clicks_{a.value}" for a in ACTIVITY_TYPES),
    "clicks_total",
    "active",
    "submitted",
    "score",
    "deadline_days",
    "day_index",
)

EDUCATION_LEVELS: tuple[str, ...] = (
    "No Formal quals",
    "Lower Than A Level",
    "A Level or Equivalent",
    "HE Qualification",
    "Post Graduate Qualification",
)
AGE_BANDS: tuple[str, ...] = ("0-35", "35-55", "55<=")
REGIONS: tuple[str, ...] = (
    "East Anglian Region",
    "East Midlands Region",
    "Ireland",
    "London Region",
    "North Region",
    "North Western Region",
    "Scotland",
    "South East Region",
    "South Region",
    "South West Region",
    "Wales",
    "West Midlands Region",
    "Yorkshire Region",
)
IMD_BANDS: tuple[str, ...] = (
    "0-10%",
    "10-20",
    "20-30%",
    "30-40%",
    "40-50%",
    "50-60%",
    "60-70%",
    "70-80%",
    "80-90%",
    "90-100%",
)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


BASE_STATIC_FEATURES: tuple[str, ...] = (
    "num_prev_attempts",
    "studied_credits",
    *(f"edu_{_slug(e)}" for e in EDUCATION_LEVELS),
    "registration_day",
)
#: protected attributes: a model sees them only when its spec names them (fairness reports)
PROTECTED_STATIC_FEATURES: tuple[str, ...] = (
    "gender_m",
    *(f"age_{_slug(a)}" for a in AGE_BANDS),
    "disability",
    "imd_band",
    "imd_missing",
    *(f"region_{_slug(r)}" for r in REGIONS),
)
ALL_STATIC_FEATURES = BASE_STATIC_FEATURES + PROTECTED_STATIC_FEATURES


@dataclass(frozen=True)
class FeatureSpec:
    """Which day features and static features a model sees (names from ALL_*_FEATURES)."""

    day_features: tuple[str, ...] = ALL_DAY_FEATURES
    static_features: tuple[str, ...] = BASE_STATIC_FEATURES
    version: int = field(default=FEATURIZER_VERSION)

    def __post_init__(self) -> None:
        bad_day = [f for f in self.day_features if f not in ALL_DAY_FEATURES]
        bad_static = [f for f in self.static_features if f not in ALL_STATIC_FEATURES]
        if bad_day or bad_static:
            raise ValueError(
                f"unknown features: day {bad_day}, static {bad_static}; "
                f"choose from models.features.ALL_DAY_FEATURES / ALL_STATIC_FEATURES"
            )

    @property
    def n_day(self) -> int:
        return len(self.day_features)

    @property
    def n_static(self) -> int:
        return len(self.static_features)

    def to_dict(self) -> dict[str, object]:
        return {
            "day_features": list(self.day_features),
            "static_features": list(self.static_features),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> FeatureSpec:
        day = data["day_features"]
        static = data["static_features"]
        assert isinstance(day, list) and isinstance(static, list)
        version = data.get("version", FEATURIZER_VERSION)
        return cls(tuple(day), tuple(static), int(str(version)))

    def hash(self) -> str:
        """Stable sha256 over names, order and featurizer version: the registry compares it."""
        raw = json.dumps(asdict(self), sort_keys=True, default=list).encode()
        return hashlib.sha256(raw).hexdigest()

    def with_protected(self) -> FeatureSpec:
        """The same spec plus every protected attribute (for the fairness comparison)."""
        extra = tuple(f for f in PROTECTED_STATIC_FEATURES if f not in self.static_features)
        return FeatureSpec(self.day_features, self.static_features + extra, self.version)


DEFAULT_SPEC = FeatureSpec()


def deadline_days_array(calendar: CourseCalendar) -> np.ndarray:
    """Sorted deadline day indices of a course (what ``deadline_days`` counts towards)."""
    days = sorted({_day_index(d.due, calendar) for d in calendar.deadlines})
    return np.asarray(days, dtype=np.int64)


def _day_index(time: datetime, calendar: CourseCalendar) -> int:
    return max(0, math.floor((time - calendar.start).total_seconds() / 86400.0))


class Featurizer:
    """Turns events into per-day accumulators and accumulators into model inputs."""

    n_acc: int = N_ACC

    def __init__(self, spec: FeatureSpec = DEFAULT_SPEC) -> None:
        self.spec = spec
        self._day_idx = np.asarray([ALL_DAY_FEATURES.index(f) for f in spec.day_features])
        self._static_idx = np.asarray(
            [ALL_STATIC_FEATURES.index(f) for f in spec.static_features], dtype=np.int64
        )
        self._deadline_cache: dict[tuple[str, int, str], np.ndarray] = {}

    # -- the stream's door -------------------------------------------------------------
    def day_of(self, time: datetime, calendar: CourseCalendar) -> int:
        """Course day of a moment (0 = start; earlier moments count as day 0)."""
        return _day_index(time, calendar)

    def empty_accumulator(self) -> np.ndarray:
        return np.zeros(N_ACC, dtype=np.float32)

    def fold(self, acc: np.ndarray, event: LmsEvent) -> None:
        """Add one event to the open day's accumulator, in place."""
        acc[_ACT_INDEX[ActivityType(event.activity)]] += np.float32(event.count)
        if event.grade is not None or event.attempt_id is not None:
            acc[ACC_SUBMIT] += np.float32(1.0)
        if event.grade is not None and event.max_grade is not None:
            acc[ACC_SCORE_SUM] += np.float32(event.grade / event.max_grade)
            acc[ACC_SCORED] += np.float32(1.0)

    def day_vector(self, acc: np.ndarray, day: int, calendar: CourseCalendar) -> np.ndarray:
        """Model input for one closed day (an empty day is an empty accumulator)."""
        return self.day_vectors(acc[None, :], np.asarray([day]), calendar)[0]

    # -- shared by both doors ----------------------------------------------------------
    def _deadlines(self, calendar: CourseCalendar) -> np.ndarray:
        key = (calendar.site, calendar.course_id, calendar.model_dump_json())
        got = self._deadline_cache.get(key)
        if got is None:
            got = deadline_days_array(calendar)
            if len(self._deadline_cache) > 4096:
                self._deadline_cache.clear()
            self._deadline_cache[key] = got
        return got

    def day_vectors(
        self, accs: np.ndarray, days: np.ndarray, calendar: CourseCalendar
    ) -> np.ndarray:
        """Batched: accs [..., n_acc] with days broadcastable to accs[..., 0] -> [..., n_day]."""
        accs = np.asarray(accs, dtype=np.float32)
        days = np.broadcast_to(np.asarray(days, dtype=np.int64), accs.shape[:-1])
        clicks = accs[..., :N_ACT]
        total = clicks.sum(axis=-1)
        scored = accs[..., ACC_SCORED]
        score = np.where(scored > 0, accs[..., ACC_SCORE_SUM] / np.maximum(scored, 1.0), 0.0)
        deadlines = self._deadlines(calendar)
        if deadlines.size:
            pos = np.searchsorted(deadlines, days, side="left")
            has_next = pos < deadlines.size
            nxt = deadlines[np.minimum(pos, deadlines.size - 1)]
            gap = np.where(has_next, nxt - days, DEADLINE_CAP)
        else:
            gap = np.full(days.shape, DEADLINE_CAP)
        cols = [
            np.log1p(clicks),
            np.log1p(total)[..., None],
            (total > 0)[..., None],
            (accs[..., ACC_SUBMIT] > 0)[..., None],
            score[..., None],
            (np.minimum(gap, DEADLINE_CAP) / DEADLINE_CAP)[..., None],
            (days / DAY_SCALE)[..., None],
        ]
        full = np.concatenate([np.asarray(c, dtype=np.float32) for c in cols], axis=-1)
        return np.ascontiguousarray(full[..., self._day_idx], dtype=np.float32)

    def static_vector(self, profile: StudentProfile | None) -> np.ndarray:
        """Static features of one enrolment; unknown fields become 0 (Moodle rarely knows them)."""
        full = np.zeros(len(ALL_STATIC_FEATURES), dtype=np.float32)
        if profile is not None:
            full[:] = _static_full(profile)
        return full[self._static_idx]

    # -- the trainer's door -------------------------------------------------------------
    def table_accumulators(
        self,
        n_rows: int,
        n_days: int,
        row: np.ndarray,
        day: np.ndarray,
        activity: np.ndarray,
        count: np.ndarray,
        submitted: np.ndarray,
        grade_frac: np.ndarray,
    ) -> np.ndarray:
        """Vectorised ``fold`` over an event table -> accumulators [n_rows, n_days, n_acc].

        One entry per event: ``row`` (enrolment index), ``day`` (course day, clamped at 0
        like ``day_of``; days >= n_days are dropped), ``activity`` (index into
        ACTIVITY_TYPES), ``count`` (clicks), ``submitted`` (bool), ``grade_frac``
        (grade / max_grade, NaN when ungraded).
        """
        row = np.asarray(row, dtype=np.int64)
        day = np.maximum(np.asarray(day, dtype=np.int64), 0)
        keep = day < n_days
        row, day = row[keep], day[keep]
        activity = np.asarray(activity, dtype=np.int64)[keep]
        count = np.asarray(count, dtype=np.float64)[keep]
        submitted = np.asarray(submitted, dtype=bool)[keep]
        grade = np.asarray(grade_frac, dtype=np.float64)[keep]
        size = n_rows * n_days * N_ACC
        base = (row * n_days + day) * N_ACC
        graded = ~np.isnan(grade)
        flat = np.bincount(base + activity, weights=count, minlength=size)
        flat += np.bincount(base[submitted] + ACC_SUBMIT, minlength=size)
        flat += np.bincount(base[graded] + ACC_SCORE_SUM, weights=grade[graded], minlength=size)
        flat += np.bincount(base[graded] + ACC_SCORED, minlength=size)
        return flat.reshape(n_rows, n_days, N_ACC).astype(np.float32)

    def static_matrix(self, profiles: list[StudentProfile | None]) -> np.ndarray:
        if not profiles:
            return np.zeros((0, self.spec.n_static), dtype=np.float32)
        return np.stack([self.static_vector(p) for p in profiles])


def _onehot(value: str | None, levels: tuple[str, ...]) -> list[float]:
    return [1.0 if value == lv else 0.0 for lv in levels]


def _static_full(p: StudentProfile) -> np.ndarray:
    prev = 0.0 if p.num_prev_attempts is None else min(p.num_prev_attempts, 3) / 3.0
    credits = 0.0 if p.studied_credits is None else min(p.studied_credits, 240) / 240.0
    reg = 0.0 if p.registration_day is None else max(-300.0, min(p.registration_day, 100)) / 100.0
    imd = p.imd_band if p.imd_band in IMD_BANDS else None
    base = [prev, credits, *_onehot(p.highest_education, EDUCATION_LEVELS), reg]
    protected = [
        1.0 if (p.gender or "").upper().startswith("M") else 0.0,
        *_onehot(p.age_band, AGE_BANDS),
        1.0 if p.disability else 0.0,
        0.0 if imd is None else (IMD_BANDS.index(imd) + 0.5) / len(IMD_BANDS),
        1.0 if imd is None else 0.0,
        *_onehot(p.region, REGIONS),
    ]
    return np.asarray(base + protected, dtype=np.float32)
