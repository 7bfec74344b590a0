"""Monitoring routes: drift (PSI), live calibration, segments, the overview and its gauges."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from contracts import CourseOutcome
from models.drift import bin_increments, build_reference
from models.registry import Registry
from models.segments import fit_segments
from models.testing import tiny_model
from riskstream.api import ApiConfig, create_app
from stream_app.state import BatchWrite, StudentKey, StudentState, encode_state
from tests.riskstream.api.conftest import AUTH, SITE, _url, _write


def _training(n: int = 300, t: int = 70, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Day tensors in DEFAULT_SPEC order: half busy students (label 0), half quitters."""
    from models.features import DEFAULT_SPEC

    rng = np.random.default_rng(seed)
    names = DEFAULT_SPEC.day_features
    x = np.zeros((n, t, len(names)), np.float32)
    ci, ai = names.index("clicks_total"), names.index("active")
    y = np.arange(n) % 2
    for i in range(n):
        act = rng.random(t) < (0.8 if y[i] == 0 else 0.3)
        if y[i]:
            act[25:] = False
        x[i, :, ci] = np.where(act, np.log1p(rng.poisson(20, t)), 0)
        x[i, :, ai] = act
        x[i, :, names.index("day_index")] = np.arange(t) / 270
    return x, y


def _registry(tmp_path: Path) -> tuple[Registry, str]:
    from models.features import DEFAULT_SPEC

    v = tiny_model(tmp_path)
    reg = Registry(tmp_path)
    x, y = _training()
    reg.attach(
        v,
        "drift_reference.json",
        build_reference(x, np.full(len(x), 69), DEFAULT_SPEC.day_features).to_dict(),
    )
    seg = fit_segments(x, np.full(len(x), 69), y, DEFAULT_SPEC.day_features, (27, 55), k=2)
    reg.attach(v, "segments.json", seg.to_dict())
    return reg, v


def _student(r: redis.Redis, course: int, user: int, traj: list[float], win: np.ndarray) -> None:
    key = StudentKey(SITE, course, user)
    st = StudentState(
        day=len(traj),
        d0=0,
        ver="v0001",
        risk=traj[-1],
        upd=time.time(),
        win=win,
        traj=np.asarray(traj, dtype=np.float16),
    )
    _write(_url(r), BatchWrite(states={key: encode_state(st, full=True)}, ranks={key: traj[-1]}))


def _course_data(r: redis.Redis, tmp_path: Path) -> tuple[Registry, str]:
    """Courses 5 (like training, 300 students, 250 final results) and 6 (students stopped
    clicking in weeks 2-3), with drift counts, trajectories, windows and outcomes."""
    reg, v = _registry(tmp_path)
    x, y = _training(seed=1)
    from models.drift import DriftReference

    ref = DriftReference.from_dict(reg.read_extra(v, "drift_reference.json"))
    quiet = x.copy()
    quiet[:, 14:, :12] = 0
    quiet[:, 14:, 12] = 0
    for course, data in ((5, x), (6, quiet)):
        days = np.tile(np.arange(28), len(data))
        inc = bin_increments(ref, data[:, :28].reshape(-1, data.shape[2]), days)
        r.hset(f"rs:drift:{SITE}:{course}:{v}", mapping=inc)
        r.sadd(f"rs:courses:{SITE}", course)
    rng = np.random.default_rng(2)
    for u in range(300):  # risk follows the true label, mostly
        p = 0.85 if y[u] else 0.1
        _student(r, 5, u, [p] * 56, x[u, 28:56])
        if u < 250:
            res = "fail" if rng.random() < p else "pass"
            o = CourseOutcome(site=SITE, course_id=5, user_id=u, result=res, final=True)
            r.hset(f"rs:outcome:{SITE}:5", str(u), o.model_dump_json())
    return reg, v


def test_drift_calibration_segments_and_overview(
    cfg: ApiConfig, redis_client: redis.Redis, tmp_path: Path
) -> None:
    reg, v = _course_data(redis_client, tmp_path)
    app_cfg = replace(cfg, registry=reg)
    with TestClient(create_app(app_cfg)) as c:
        ok = c.get("/v1/courses/5/drift", headers=AUTH).json()
        bad = c.get("/v1/courses/6/drift", headers=AUTH).json()
        assert ok["model_version"] == v and ok["latest"]["week"] == 3
        assert not ok["alarm"] and ok["latest"]["max_psi"] < 0.1
        assert bad["alarm"] and bad["persistent"] and bad["latest"]["max_psi"] > 0.25
        assert bad["weeks"][0]["alarm"] is False  # weeks 0-1 were normal
        cal = c.get("/v1/courses/5/calibration", headers=AUTH).json()
        b14 = next(b for b in cal["bands"] if b["day"] == 14)
        assert b14["scored"] == 300 and b14["known"] == 250 and not b14["complete"]
        assert b14["ece"] < 0.1 and b14["precision_high"] > 0.75
        assert cal["final_results"] == 250
        seg = c.get("/v1/courses/5/segments", headers=AUTH).json()
        assert sum(s["students"] for s in seg["segments"]) == 300 and seg["too_early"] == 0
        busy, quiet_seg = seg["segments"]
        assert busy["mean_risk"] < 0.2 < 0.8 < quiet_seg["mean_risk"]
        assert quiet_seg["live_outcome_rate"] > busy["live_outcome_rate"]
        over = c.get("/v1/monitoring", headers=AUTH).json()
        rows = {r["course"]: r for r in over["courses"]}
        assert rows[6]["drift_alarm"] and not rows[5]["drift_alarm"]
        assert over["retrain"]["due"] and over["retrain"]["signals"]["drifting_courses"] == [6]
        metrics = c.get("/metrics").text
        assert f'riskstream_drift_alarm{{course="6",site="{SITE}"}} 1.0' in metrics
        assert "riskstream_live_ece{" in metrics and "riskstream_retrain_due 1.0" in metrics
        assert c.get("/v1/courses/99/drift", headers=AUTH).status_code == 404
        assert c.get("/v1/courses/5/drift").status_code == 401
        assert "Model health" in c.get("/ui").text


def test_a_model_without_reference_says_what_to_run(
    cfg: ApiConfig, redis_client: redis.Redis, tmp_path: Path
) -> None:
    v = tiny_model(tmp_path)
    redis_client.sadd(f"rs:courses:{SITE}", 5)
    with TestClient(create_app(replace(cfg, registry=Registry(tmp_path)))) as c:
        doc = c.get("/v1/courses/5/drift", headers=AUTH).json()
        assert f"riskstream monitor reference --version {v}" in doc["error"]
        seg = c.get("/v1/courses/5/segments", headers=AUTH).json()
        assert seg["segments"] == [] and "segments.json" in seg["error"]
        assert json.loads(c.get("/v1/monitoring", headers=AUTH).text)["retrain"]["due"] is False
        # `riskstream monitor reference` while the API runs: the next request finds it
        x, _ = _training()
        from models.features import DEFAULT_SPEC

        ref = build_reference(x, np.full(len(x), 69), DEFAULT_SPEC.day_features)
        Registry(tmp_path).attach(v, "drift_reference.json", ref.to_dict())
        assert "error" not in c.get("/v1/courses/5/drift", headers=AUTH).json()


@pytest.mark.slow
def test_ui_draws_the_model_health_panel(
    cfg: ApiConfig, redis_client: redis.Redis, tmp_path: Path
) -> None:
    from tests.riskstream.api.conftest import KEY, LiveServer
    from tests.riskstream.api.test_live import ARTIFACTS, _chromium

    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    reg, _ = _course_data(redis_client, tmp_path)
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with LiveServer(replace(cfg, registry=reg)) as live, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1300})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{live.url}/ui#key={KEY}")
            page.wait_for_selector("#drift svg rect", state="attached", timeout=10_000)
            page.wait_for_selector("#reliability polyline", state="attached", timeout=10_000)
            page.wait_for_selector("#segments table", timeout=10_000)
            assert "active days a week" in page.inner_text("#segments")
            assert "outcomes known" in page.inner_text("#cal-sub")
            page.select_option("#course", "6")
            page.wait_for_function(
                "document.getElementById('drift-state').textContent.includes('ALARM')"
            )
            page.wait_for_function("document.getElementById('retrain').textContent.includes('due')")
            page.screenshot(path=str(ARTIFACTS / "ui_health.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
