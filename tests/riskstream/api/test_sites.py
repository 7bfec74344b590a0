"""Two sites that share course and user ids (issue 15): one site's API never shows the other
site's alerts, risk or explanations; keys can be scoped to a site; /ui names the site."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from fastapi.testclient import TestClient

from contracts import encode
from riskstream.api import ApiConfig, create_app
from riskstream.api.auth import hash_key, parse_key_hashes
from stream_app.state import BatchWrite
from tests.riskstream.api.conftest import AUTH, KEY, SITE, _url, _write, make_alert, put_student
from tests.riskstream.api.test_routes import wait_for

OTHER = "other.moodle"


@pytest.fixture
def two_sites(redis_client: redis.Redis) -> None:
    """Course 7, user 42 on both sites; the other site's 500 alerts are written last."""
    put_student(redis_client, 7, 42, [0.2, 0.3], level="low")
    put_student(redis_client, 7, 42, [0.8, 0.9], level="high", site=OTHER)
    mine = [make_alert(7, 42, day=1, explanation="mine: no quiz activity")]
    theirs = [
        make_alert(7, 42 if i == 0 else 1000 + i, site=OTHER, explanation="THEIRS: other site")
        for i in range(500)
    ]
    _write(_url(redis_client), BatchWrite(alerts=[encode(a) for a in mine + theirs]))


@pytest.fixture
def other_client(cfg: ApiConfig) -> Iterator[TestClient]:
    with TestClient(create_app(replace(cfg, site=OTHER))) as c:
        yield c


def test_alerts_and_explanations_stay_within_their_site(
    two_sites: None, client: TestClient, other_client: TestClient
) -> None:
    got = client.get("/v1/alerts", params={"limit": 500}, headers=AUTH).json()["items"]
    assert [(a["site"], str(a["user"])) for a in got] == [(SITE, "42")]
    theirs = other_client.get("/v1/alerts", params={"limit": 500}, headers=AUTH).json()["items"]
    assert len(theirs) == 500 and {a["site"] for a in theirs} == {OTHER}

    def explained(c: TestClient) -> dict | None:  # type: ignore[type-arg]
        return c.get("/v1/courses/7/students/42/risk", headers=AUTH).json()["explanation"]

    mine = wait_for(lambda: explained(client))
    assert mine["text"].startswith("mine")
    assert wait_for(lambda: explained(other_client))["text"].startswith("THEIRS")
    risk = client.get("/v1/courses/7/students/42/risk", headers=AUTH).json()
    assert risk["risk"] == pytest.approx(0.3, abs=1e-3)  # this site's student, not the other


def test_keys_can_be_scoped_to_a_site(cfg: ApiConfig) -> None:
    scoped_other = "key-for-the-other-site"
    scoped_mine = "key-for-this-site"
    hashes = parse_key_hashes(
        f"{hash_key(KEY)}, {OTHER}={hash_key(scoped_other)},{SITE}={hash_key(scoped_mine)}"
    )
    assert hashes[1] == f"{OTHER}={hash_key(scoped_other)}"
    with pytest.raises(ValueError, match="digest"):
        parse_key_hashes(f"{SITE}=not-a-digest")
    with TestClient(create_app(replace(cfg, key_hashes=hashes))) as c:

        def status(key: str) -> int:
            return c.get("/v1/courses", headers={"Authorization": f"Bearer {key}"}).status_code

        assert status(KEY) == 200  # unscoped: every site
        assert status(scoped_mine) == 200
        assert status(scoped_other) == 401  # a key of another site is refused here


def test_health_and_ui_name_the_site(client: TestClient) -> None:
    assert client.get("/healthz").json()["site"] == SITE
    html = client.get("/ui").text
    assert 'id="chip-site"' in html and '"site " + (h.site' in html
