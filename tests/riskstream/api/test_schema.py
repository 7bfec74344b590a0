"""Schemathesis against the published OpenAPI document: no 500s, only documented answers."""

from __future__ import annotations

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings

from tests.riskstream.api.conftest import AUTH, LiveServer, add_alert, put_student


@pytest.fixture
def api_schema(live: LiveServer, redis_client: redis.Redis):  # type: ignore[no-untyped-def]
    for u in range(1, 6):  # something to find for small ids, which hypothesis tries first
        put_student(redis_client, 0, u, [0.1 * u, 0.15 * u])
        put_student(redis_client, 1, u, [0.2 * u])
        add_alert(redis_client, u % 2, u, day=3)
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


# the live stream never ends by design (test_live.py covers it)
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/v1/alerts/live")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    # All default checks (no 5xx, documented status codes, bodies and content types, valid
    # data accepted, auth enforced) except one: like most HTTP APIs this one ignores
    # unknown query parameters instead of refusing them.
    case.call_and_validate(
        headers=AUTH,
        timeout=10,
        excluded_checks=[schemathesis.checks.negative_data_rejection],
    )
