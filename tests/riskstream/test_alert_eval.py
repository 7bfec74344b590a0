"""``riskstream evaluate-alerts`` on a small real OULAD sample: the worker's processor replayed
in process, scored against final results, with reasons that read right."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from models.explain import direction
from models.registry import Registry
from riskstream import alert_metrics
from riskstream.alert_eval import evaluate_alerts, write_report
from tests.conftest import OULAD_DIR

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pretrained" / "lstm_oulad"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not (OULAD_DIR / "studentVle.parquet").is_file():
        pytest.skip(f"OULAD not found in {OULAD_DIR}")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    reg = tmp_path_factory.mktemp("reg")
    Registry(reg).import_version(SHIPPED)
    return evaluate_alerts(OULAD_DIR, "GGG/2014B", reg, max_students=60)


def test_replay_scores_every_enrolment_including_no_shows(result) -> None:  # type: ignore[no-untyped-def]
    rep = result.report
    assert rep["students"] == 60
    assert rep["run"]["dead_letters"] == 0
    d56 = rep["per_cutoff"]["56"]
    assert 0 < d56["n"] <= 60 and d56["alerted"] >= 1
    assert rep["never_active_alerted"] is not None
    # the enrolment records made a state for students who never clicked: every alerted
    # student is an enrolment of the sample, and no alert comes before the policy allows
    th = rep["run"]["thresholds"]
    assert (result.alerts["day"] >= th["min_days"]).all()
    assert result.alerts.groupby(["course_id", "user_id"]).size().max() <= 2


def test_no_wave_beyond_the_limits(result) -> None:  # type: ignore[no-untyped-def]
    v = result.report["volume"]
    # 60 students: at most max(1, 5%) = 3 a day and 6 a week
    assert v["days_over_limit"] == 0 and v["weeks_over_limit"] == 0
    per_day = result.alerts.groupby("day").size()
    assert per_day.max() <= 3


def test_reasons_point_the_way_the_risk_goes(result) -> None:  # type: ignore[no-untyped-def]
    assert len(result.alerts)
    assert (result.alerts["contributions"].map(len) > 0).mean() >= 0.5  # most say why
    for row in result.alerts.itertuples(index=False):
        for c in row.contributions:
            assert c["weight"] > 0  # a reason raises the risk
            assert direction(c["text"]) <= 0, c["text"]  # and its words say less, not more
            m = re.search(r"for (\d+) days|last (\d+) days", c["text"])
            if m:
                n = int(m.group(1) or m.group(2))
                assert n <= row.day + 1, (c["text"], row.day)  # never longer than elapsed


def test_report_files(result, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = write_report(result, tmp_path, "sample")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    data = json.loads(paths[0].read_text())
    assert set(data["per_cutoff"]) == {str(d) for d in alert_metrics.CUTOFFS}
    assert "| D |" in paths[1].read_text()


def test_teacher_view_counts_by_hand() -> None:
    outcomes = pd.DataFrame(
        {
            "course_id": [1, 1, 1, 1],
            "user_id": [1, 2, 3, 4],
            "label": [1, 1, 0, 0],
            "final_result": ["Withdrawn", "Fail", "Pass", "Pass"],
            "registration_day": [-10.0, -10.0, -10.0, -10.0],
            "withdraw_day": [40.0, float("nan"), float("nan"), float("nan")],
            "length": [200, 200, 200, 200],
        }
    )
    alerts = pd.DataFrame({"course_id": [1, 1, 1], "user_id": [1, 3, 3], "day": [20, 30, 60]})
    rep = alert_metrics.teacher_view(alerts, outcomes)
    d28, d56 = rep["per_cutoff"]["28"], rep["per_cutoff"]["56"]
    assert (d28["n"], d28["alerted"], d28["precision"], d28["recall"]) == (4, 1, 1.0, 0.5)
    assert d28["median_lead_days"] == 20.0  # withdrew on day 40, alerted on day 20
    # by 56 student 1 has withdrawn: 3 registered, student 3 (Pass) alerted on day 30
    assert (d56["n"], d56["alerted"], d56["precision"], d56["recall"]) == (3, 1, 0.0, 0.0)
    assert rep["alerts_per_alerted_student"] == 1.5
    assert rep["volume"]["worst_day_share"] == 0.25


def test_feedback_share_per_course_counts_the_latest_answer() -> None:
    alerts = pd.DataFrame({"course_id": [1, 1, 2], "user_id": [1, 2, 3], "day": [20, 21, 22]})
    feedback = pd.DataFrame(
        {
            "course_id": [1, 1, 1, 2],
            "alert_id": ["a", "a", "b", "c"],
            "action": ["notuseful", "contacted", "notuseful", "acknowledged"],
            "feedback_id": [1, 2, 3, 4],
        }
    )
    got = alert_metrics.feedback_share(alerts, feedback)
    assert got["1"] == {"alerts": 2, "answered": 2, "useful": 1, "share_useful": 0.5,
                        "contacted": 1}
    assert got["2"]["share_useful"] == 1.0
    assert alert_metrics.feedback_share(alerts, feedback.iloc[0:0]) == {}
