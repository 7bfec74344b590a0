"""The API over a real Redis holding worker state under the pinned keys."""

from __future__ import annotations

import time

import pytest
import redis
from fastapi.testclient import TestClient

from tests.riskstream.api.conftest import AUTH, add_alert, put_student


def wait_for(pred, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic k"}, {"Authorization": ""}],
)
def test_v1_needs_a_valid_key(
    client: TestClient, redis_client: redis.Redis, headers: dict[str, str]
) -> None:
    put_student(redis_client, 7, 42, [0.2, 0.3])
    for path in (
        "/v1/courses/7/students/42/risk",
        "/v1/courses/7/at-risk",
        "/v1/alerts",
        "/v1/models",
        "/v1/courses",
        "/v1/stats",
    ):
        r = client.get(path, headers=headers)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/courses/7/students/42/risk", headers=AUTH).status_code == 200
    second = {"Authorization": "Bearer another-key"}
    assert client.get("/v1/courses/7/students/42/risk", headers=second).status_code == 200


def test_risk_reports_level_trend_version_and_time(
    client: TestClient, redis_client: redis.Redis
) -> None:
    traj = [0.1, 0.12, 0.15, 0.2, 0.3, 0.45, 0.55, 0.6, 0.66, 0.72]
    put_student(redis_client, 7, 42, traj, level="high")
    r = client.get("/v1/courses/7/students/42/risk", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "42" and body["course"] == 7
    assert body["risk"] == pytest.approx(0.72, abs=1e-3)
    assert body["level"] == "high" and body["model_version"] == "v0002"
    assert body["trend"]["direction"] == "rising"
    assert body["trend"]["days"] == 7
    assert body["trend"]["change"] == pytest.approx(0.72 - 0.15, abs=2e-3)  # day 9 vs day 2
    assert body["trajectory"] == pytest.approx(traj, abs=1e-3)
    assert body["updated_at"].startswith("20")
    assert body["explanation"] is None


def test_explanation_comes_from_the_latest_alert(
    client: TestClient, redis_client: redis.Redis
) -> None:
    put_student(redis_client, 7, 42, [0.3, 0.8], level="high")
    add_alert(redis_client, 7, 42, day=1)

    def explained():  # type: ignore[no-untyped-def]
        e = client.get("/v1/courses/7/students/42/risk", headers=AUTH).json()["explanation"]
        return e

    e = wait_for(explained)
    assert e["text"].startswith("no quiz activity")
    assert [c["feature"] for c in e["contributions"]] == ["quiz", "forum"]
    assert e["level"] == "high" and e["day"] == 1


def test_unknown_course_or_student_is_404_and_bad_user_422(
    client: TestClient, redis_client: redis.Redis
) -> None:
    put_student(redis_client, 7, 42, [0.2])
    r = client.get("/v1/courses/8/students/42/risk", headers=AUTH)
    assert r.status_code == 404 and "course 8" in r.json()["detail"]
    r = client.get("/v1/courses/7/students/43/risk", headers=AUTH)
    assert r.status_code == 404 and "43" in r.json()["detail"]
    r = client.get("/v1/courses/7/students/abc/risk", headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "user"]
    r = client.get("/v1/courses/-1/students/42/risk", headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "course"]
    assert client.get("/v1/courses/8/at-risk", headers=AUTH).status_code == 404


def test_at_risk_pages_cover_every_student_once_in_risk_order(
    client: TestClient, redis_client: redis.Redis
) -> None:
    risks = {u: round(0.3 + (u % 7) * 0.1, 2) for u in range(1, 31)}  # many ties
    for u, risk in risks.items():
        put_student(redis_client, 5, u, [risk], level="high" if risk >= 0.7 else "medium")
    seen: list[tuple[str, float]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"min_level": "medium", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/courses/5/at-risk", headers=AUTH, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 4
        seen += [(i["user"], i["risk"]) for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # medium threshold of the current model (v0002) is 0.4
    expected = {str(u) for u, risk in risks.items() if risk >= 0.4}
    assert [u for u, _ in seen] and len(seen) == len({u for u, _ in seen})
    assert {u for u, _ in seen} == expected
    assert [r for _, r in seen] == sorted((r for _, r in seen), reverse=True)
    assert pages == -(-len(expected) // 4)
    high = client.get("/v1/courses/5/at-risk", headers=AUTH, params={"min_level": "high"}).json()
    assert {i["user"] for i in high["items"]} == {str(u) for u, r in risks.items() if r >= 0.7}
    assert all(i["level"] == "high" for i in high["items"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"min_level": "extreme"}, "min_level"),
        ({"cursor": "0.5:12"}, "cursor"),
        ({"cursor": "0x1.0p-1:abc"}, "cursor"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, redis_client: redis.Redis, params: dict[str, object], field: str
) -> None:
    put_student(redis_client, 5, 1, [0.9])
    r = client.get("/v1/courses/5/at-risk", headers=AUTH, params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == field


def test_alerts_filter_by_course_and_time_and_page(
    client: TestClient, redis_client: redis.Redis
) -> None:
    first = add_alert(redis_client, 1, 10)
    time.sleep(0.005)
    ids = [add_alert(redis_client, 1 + (i % 2), 20 + i) for i in range(9)]
    r = client.get("/v1/alerts", headers=AUTH, params={"course": 1, "limit": 2})
    assert r.status_code == 200
    got, cursor = [], r.json()["next_cursor"]
    got += r.json()["items"]
    while cursor:
        page = client.get(
            "/v1/alerts", headers=AUTH, params={"course": 1, "limit": 2, "cursor": cursor}
        ).json()
        got += page["items"]
        cursor = page["next_cursor"]
    assert all(a["course"] == 1 for a in got)
    assert [a["id"] for a in got] == sorted([first, *ids[0::2]], reverse=True)
    assert got[0]["explanation"] and got[0]["contributions"][0]["feature"] == "quiz"
    ms = int(first.split("-")[0]) + 1
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    later = client.get("/v1/alerts", headers=AUTH, params={"since": since}).json()["items"]
    assert first not in {a["id"] for a in later} and len(later) == 9
    bad = client.get("/v1/alerts", headers=AUTH, params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]


def test_pseudonyms_hide_user_ids_and_still_find_students(
    pseudo_client: TestClient, client: TestClient, redis_client: redis.Redis
) -> None:
    put_student(redis_client, 3, 123456, [0.5, 0.9], level="high")
    put_student(redis_client, 3, 654321, [0.1], level="low")
    add_alert(redis_client, 3, 123456)
    ranked = pseudo_client.get(
        "/v1/courses/3/at-risk", headers=AUTH, params={"min_level": "low"}
    ).json()
    users = [i["user"] for i in ranked["items"]]
    assert len(users) == 2 and all(u.startswith("p") and len(u) == 21 for u in users)
    assert "123456" not in str(ranked)
    risk = pseudo_client.get(f"/v1/courses/3/students/{users[0]}/risk", headers=AUTH)
    assert risk.status_code == 200 and risk.json()["user"] == users[0]
    assert risk.json()["risk"] == pytest.approx(0.9, abs=1e-3)
    alerts = wait_for(lambda: pseudo_client.get("/v1/alerts", headers=AUTH).json()["items"])
    assert alerts[0]["user"] == users[0] and "123456" not in str(alerts)
    unknown = pseudo_client.get("/v1/courses/3/students/p" + "0" * 20 + "/risk", headers=AUTH)
    assert unknown.status_code == 404
    # without the key the plain API shows ids and knows no pseudonyms
    plain = client.get(f"/v1/courses/3/students/{users[0]}/risk", headers=AUTH)
    assert plain.status_code == 404 and "pseudonyms" in plain.json()["detail"]


def test_courses_and_distribution(client: TestClient, redis_client: redis.Redis) -> None:
    for u, risk in enumerate([0.05, 0.07, 0.5, 0.95, 1.0]):
        put_student(redis_client, 9, u, [risk])
    put_student(redis_client, 4, 1, [0.2])
    courses = client.get("/v1/courses", headers=AUTH).json()
    assert courses["courses"] == [{"course": 4, "students": 1}, {"course": 9, "students": 5}]
    d = client.get("/v1/courses/9/distribution", headers=AUTH, params={"bins": 10}).json()
    assert len(d["edges"]) == 11 and sum(d["counts"]) == 5
    assert d["counts"][0] == 2 and d["counts"][5] == 1 and d["counts"][9] == 2
    assert d["thresholds"] == {"medium": 0.4, "high": 0.7}


def test_models_and_current(client: TestClient) -> None:
    body = client.get("/v1/models", headers=AUTH).json()
    assert body["current"] == "v0002"
    assert [(v["version"], v["current"]) for v in body["versions"]] == [
        ("v0001", False),
        ("v0002", True),
    ]
    cur = client.get("/v1/models/current", headers=AUTH).json()
    assert cur["metrics"]["auc"] == 0.86 and cur["thresholds"]["high"] == 0.7


def test_healthz_and_metrics_need_no_key(client: TestClient) -> None:
    h = client.get("/healthz")
    assert h.status_code == 200
    assert h.json() == {
        "status": "ok",
        "redis": True,
        "broker": None,
        "model_loaded": True,
        "model_version": "v0002",
        "site": "test.moodle",
    }
    client.get("/v1/alerts")  # a 401, counted
    text = client.get("/metrics").text
    assert (
        'riskstream_api_requests_total{method="GET",route="unauthorised",status="401"} 1.0' in text
    )


def test_healthz_is_503_when_redis_is_down(cfg) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from riskstream.api import create_app
    from riskstream.stack import free_port

    broken = replace(cfg, redis_url=f"redis://127.0.0.1:{free_port()}/0", registry=None)
    with TestClient(create_app(broken)) as c:
        h = c.get("/healthz")
        assert h.status_code == 503
        assert h.json()["redis"] is False and h.json()["model_loaded"] is False


def test_fast_path_answers_exactly_like_the_fastapi_route(
    cfg, client: TestClient, redis_client: redis.Redis
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from riskstream.api import create_app

    put_student(redis_client, 7, 42, [0.2, 0.5, 0.75], start_day=3)
    add_alert(redis_client, 7, 42, day=5)
    paths = [
        "/v1/courses/7/students/42/risk",
        "/v1/courses/7/students/43/risk",
        "/v1/courses/8/students/42/risk",
        "/v1/courses/7/students/x/risk",
    ]
    with TestClient(create_app(replace(cfg, fast_path=False))) as slow:
        wait_for(lambda: slow.get(paths[0], headers=AUTH).json()["explanation"])
        wait_for(lambda: client.get(paths[0], headers=AUTH).json()["explanation"])
        for p in paths:
            a, b = client.get(p, headers=AUTH), slow.get(p, headers=AUTH)
            assert (a.status_code, a.json()) == (b.status_code, b.json()), p
            assert a.headers["content-type"] == b.headers["content-type"]
    body = client.get(paths[0], headers=AUTH).json()
    assert body["trajectory_start_day"] == 3 and body["day"] == 6
    metrics = client.get("/metrics").text
    assert 'route="/v1/courses/{course}/students/{user}/risk",status="200"' in metrics


def test_openapi_publishes_every_route_with_the_bearer_scheme(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    v1 = {p: ops["get"] for p, ops in doc["paths"].items() if p.startswith("/v1/")}
    assert set(v1) >= {
        "/v1/courses/{course}/students/{user}/risk",
        "/v1/courses/{course}/at-risk",
        "/v1/alerts",
        "/v1/alerts/live",
        "/v1/models",
        "/v1/models/current",
    }
    assert all(
        op["security"] == [{"bearer": []}] and "401" in op["responses"] for op in v1.values()
    )
    assert "security" not in doc["paths"]["/healthz"]["get"]
