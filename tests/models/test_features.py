"""The featurizer's two doors give the same day vectors; specs hash stably."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from contracts import ActivityType, CourseCalendar, Deadline, LmsEvent, StudentProfile
from models.dataset import build_day_tensors
from models.features import (
    DEFAULT_SPEC,
    PROTECTED_STATIC_FEATURES,
    FeatureSpec,
    Featurizer,
)
from models.oulad import Oulad
from tests.conftest import OULAD_DIR

START = datetime(2024, 2, 1, tzinfo=UTC)


def _cal() -> CourseCalendar:
    return CourseCalendar(
        site="t",
        course_id=1,
        start=START,
        deadlines=[
            Deadline(due=START + timedelta(days=10), kind="quiz"),
            Deadline(due=START + timedelta(days=60), kind="assignment"),
        ],
    )


def _event(day: float, activity: str, count: int = 1, grade: float | None = None) -> LmsEvent:
    comp = {"quiz": "mod_quiz", "forum": "mod_forum"}.get(activity, "mod_page")
    return LmsEvent(
        site="t",
        event_id=1,
        user_id=1,
        course_id=1,
        time=START + timedelta(days=day),
        eventname="\\x\\event\\y",
        component=comp,
        action="viewed",
        count=count,
        grade=grade,
        max_grade=None if grade is None else 10.0,
    )


def test_spec_hash_is_stable_and_sensitive() -> None:
    assert DEFAULT_SPEC.hash() == FeatureSpec().hash()
    assert FeatureSpec.from_dict(DEFAULT_SPEC.to_dict()).hash() == DEFAULT_SPEC.hash()
    assert DEFAULT_SPEC.with_protected().hash() != DEFAULT_SPEC.hash()
    dropped = FeatureSpec(DEFAULT_SPEC.day_features[:-1], DEFAULT_SPEC.static_features)
    assert dropped.hash() != DEFAULT_SPEC.hash()
    assert not set(PROTECTED_STATIC_FEATURES) & set(DEFAULT_SPEC.static_features)
    with pytest.raises(ValueError, match="unknown features"):
        FeatureSpec(("clicks_nonsense",), ())


def test_fold_and_day_vector_values() -> None:
    f = Featurizer()
    cal = _cal()
    acc = f.empty_accumulator()
    for ev in (_event(3.2, "forum", 4), _event(3.5, "quiz", 1, grade=7.0), _event(3.9, "forum")):
        assert f.day_of(ev.time, cal) == 3
        f.fold(acc, ev)
    v = dict(zip(DEFAULT_SPEC.day_features, f.day_vector(acc, 3, cal), strict=True))
    assert v["clicks_forum"] == pytest.approx(np.log1p(5))
    assert v["clicks_quiz"] == pytest.approx(np.log1p(1))
    assert v["clicks_total"] == pytest.approx(np.log1p(6))
    assert v["active"] == 1.0 and v["submitted"] == 1.0
    assert v["score"] == pytest.approx(0.7)
    assert v["deadline_days"] == pytest.approx(7 / 28)  # next deadline on day 10
    assert v["day_index"] == pytest.approx(3 / 270)
    empty = dict(
        zip(DEFAULT_SPEC.day_features, f.day_vector(f.empty_accumulator(), 70, cal), strict=True)
    )
    assert empty["active"] == 0.0 and empty["clicks_total"] == 0.0
    assert empty["deadline_days"] == 1.0  # no deadline left
    # events before the start count on day 0
    assert f.day_of(START - timedelta(days=5), cal) == 0


def test_static_vector_respects_spec() -> None:
    prof = StudentProfile(
        site="t", user_id=1, course_id=1, num_prev_attempts=1, studied_credits=60,
        highest_education="HE Qualification", registration_day=-50, gender="M",
        age_band="35-55", disability=True, imd_band="20-30%", region="Wales",
    )  # fmt: skip
    base = Featurizer().static_vector(prof)
    full = Featurizer(DEFAULT_SPEC.with_protected()).static_vector(prof)
    assert base.shape == (DEFAULT_SPEC.n_static,)
    assert full.shape == (DEFAULT_SPEC.with_protected().n_static,)
    np.testing.assert_array_equal(full[: base.shape[0]], base)
    assert full[base.shape[0] :].sum() > 0  # protected columns are filled only when asked
    assert Featurizer().static_vector(None).sum() == 0.0


@pytest.mark.skipif(not (OULAD_DIR / "studentVle.parquet").is_file(), reason="OULAD not present")
def test_stream_door_equals_table_door_on_oulad_sample() -> None:
    """Fold LmsEvents one by one (stream) == vectorised tables (trainer), day by day."""
    oulad = Oulad(OULAD_DIR)
    f = Featurizer()
    tensors = build_day_tensors(
        oulad, f, presentations=("2013J",), module="AAA", max_students=40, seed=3
    )
    cal = oulad.calendars()[oulad.course_id("AAA", "2013J")]
    users = {int(u) for u in tensors.user_id}
    accs: dict[tuple[int, int], np.ndarray] = defaultdict(f.empty_accumulator)
    n_events = 0
    for ev in oulad.iter_events("AAA", "2013J", users=users):
        f.fold(accs[(ev.user_id, f.day_of(ev.time, cal))], ev)
        n_events += 1
    assert n_events > 1000
    row = {int(u): i for i, u in enumerate(tensors.user_id)}
    stream = np.zeros_like(tensors.x)
    for i in range(len(tensors)):
        for d in range(tensors.n_days):
            stream[i, d] = f.day_vector(f.empty_accumulator(), d, cal)
    for (user, day), acc in accs.items():
        if day < tensors.n_days:
            stream[row[user], day] = f.day_vector(acc, day, cal)
    score = DEFAULT_SPEC.day_features.index("score")
    others = [i for i in range(DEFAULT_SPEC.n_day) if i != score]
    np.testing.assert_array_equal(stream[..., others], tensors.x[..., others])
    np.testing.assert_allclose(stream[..., score], tensors.x[..., score], atol=1e-6)
    assert tensors.x[..., DEFAULT_SPEC.day_features.index("submitted")].sum() > 10


def test_activity_mapping_of_events_matches_accumulator() -> None:
    f = Featurizer()
    acc = f.empty_accumulator()
    f.fold(acc, _event(0, "forum", 3))
    assert acc[list(ActivityType).index(ActivityType.FORUM)] == 3.0
