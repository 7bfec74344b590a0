"""REST client against the fake Moodle (real HTTP): encoding, typed errors, retries."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moodle_connector.client import MoodleClient, RetryPolicy, encode_params
from moodle_connector.errors import (
    FunctionMissing,
    FunctionNotInService,
    InvalidParameter,
    InvalidToken,
    MoodleUnavailable,
    RecordMissing,
    WebServicesDisabled,
)
from tests.moodle_connector.conftest import FAST
from tests.moodle_connector.fake_moodle import FakeMoodle, decode_params


def test_array_encoding_matches_moodle() -> None:
    params = {
        "courseids": [2, 3],
        "messages": [{"touserid": 3, "text": "a&b=c", "textformat": 1}],
        "includepreviews": False,
        "skip": None,
    }
    pairs = encode_params(params)
    assert ("courseids[1]", "3") in pairs
    assert ("messages[0][text]", "a&b=c") in pairs
    assert ("includepreviews", "0") in pairs
    assert all(k != "skip" for k, _ in pairs)
    # what a Moodle-style decoder reads back from the wire form
    back = decode_params(parse_qsl(urlencode(pairs)))
    assert back["courseids"] == ["2", "3"]
    assert back["messages"] == [{"touserid": "3", "text": "a&b=c", "textformat": "1"}]


async def test_site_info_and_events_shape(client: MoodleClient, fake: FakeMoodle) -> None:
    fake.load_recorded()
    info = await client.site_info()
    assert info["release"].startswith("5.0.2")
    assert client.known_functions is not None
    assert "local_riskstream_get_events" in client.known_functions
    page = await client.call("local_riskstream_get_events", {"sinceid": 5, "limit": 5})
    assert [r["id"] for r in page["events"]] == [6, 7, 8, 9, 10]
    assert page["lastid"] == 10 and page["hasmore"] is True
    assert fake.calls("local_riskstream_get_events")[-1] == {"sinceid": "5", "limit": "5"}


async def test_invalid_token_is_fatal_and_does_not_echo_it(fake: FakeMoodle) -> None:
    secret = "s3cr3t-token-value-XYZ"
    async with MoodleClient(fake.url, secret, retry=FAST) as c:
        with pytest.raises(InvalidToken) as err:
            await c.site_info()
    assert err.value.fatal
    assert "RISKSTREAM_MOODLE_TOKEN" in str(err.value)
    assert secret not in str(err.value) and secret not in repr(c)
    assert len(fake.requests) == 1  # fatal: not retried


async def test_function_not_in_service_names_the_function(
    client: MoodleClient, fake: FakeMoodle
) -> None:
    fake.service.discard("mod_quiz_get_user_quiz_attempts")
    with pytest.raises(FunctionNotInService) as err:
        await client.call("mod_quiz_get_user_quiz_attempts", {"quizid": 1, "userid": 7})
    msg = str(err.value)
    assert "mod_quiz_get_user_quiz_attempts" in msg and "local_riskstream" in msg
    assert err.value.fatal and err.value.errorcode == "accessexception"


async def test_403_empty_body_says_web_services_are_off(
    client: MoodleClient, fake: FakeMoodle
) -> None:
    fake.ws_enabled = False
    with pytest.raises(WebServicesDisabled) as err:
        await client.site_info()
    assert "web services or the REST protocol are disabled" in str(err.value)
    assert "Site administration" in str(err.value)
    assert len(fake.requests) == 1


async def test_unknown_function_vs_missing_record(client: MoodleClient, fake: FakeMoodle) -> None:
    with pytest.raises(RecordMissing):  # no site info yet: same body as an unknown course
        await client.call("core_grades_get_grades", {"courseid": 2})
    await client.site_info()
    with pytest.raises(FunctionMissing, match="core_grades_get_grades"):
        await client.call("core_grades_get_grades", {"courseid": 2})
    with pytest.raises(RecordMissing):
        await client.call("core_enrol_get_enrolled_users", {"courseid": 99999})
    with pytest.raises(InvalidParameter):
        await client.call("local_riskstream_get_events", {"sinceid": "x"})


async def test_5xx_reset_timeout_are_retried_with_backoff(fake: FakeMoodle) -> None:
    fake.faults.extend(["503", "reset", "timeout", "500"])
    fake.timeout_sleep_s = 1.0
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    policy = RetryPolicy(attempts=5, base_s=0.1, max_s=0.3)
    async with MoodleClient(fake.url, fake.token, timeout_s=0.3, retry=policy, sleep=sleep) as c:
        info = await c.site_info()
    assert info["sitename"] == "Moodle Lab"
    assert len(slept) == 4 and c.retries == 4
    caps = [0.1, 0.2, 0.3, 0.3]  # exponential, capped; jitter keeps each in [cap/2, cap]
    assert all(cap / 2 <= s <= cap for s, cap in zip(slept, caps, strict=True))


async def test_persistent_outage_gives_clear_error(fake: FakeMoodle) -> None:
    fake.faults.extend(["503"] * 10)
    async with MoodleClient(fake.url, fake.token, retry=FAST) as c:
        with pytest.raises(MoodleUnavailable) as err:
            await c.site_info()
    assert "after 4 attempts" in str(err.value) and "HTTP 503" in str(err.value)
    assert not err.value.fatal
    assert len(fake.requests) == 4


async def test_connection_refused_is_retried_then_reported() -> None:
    from riskstream.stack import free_port

    url = f"http://127.0.0.1:{free_port()}"
    async with MoodleClient(url, "t", retry=FAST) as c:
        with pytest.raises(MoodleUnavailable, match="ConnectError"):
            await c.site_info()
        assert c.calls == FAST.attempts


_scalar = st.one_of(st.integers(-(10**9), 10**9), st.text(max_size=20), st.booleans())
_key = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(_key, inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


def _as_moodle_sees_it(v: object) -> object:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, list):
        return [_as_moodle_sees_it(x) for x in v]
    if isinstance(v, dict):
        return {k: _as_moodle_sees_it(x) for k, x in v.items()}
    return str(v)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_key, _value, min_size=1, max_size=4))
def test_any_nested_parameters_survive_the_wire(params: dict[str, object]) -> None:
    back = decode_params(parse_qsl(urlencode(encode_params(params)), keep_blank_values=True))
    assert back == _as_moodle_sees_it(params)


def test_permission_errors_are_fatal_and_say_how_to_fix() -> None:
    """Issue 14, defect 4: a missing capability is never an outage to retry."""
    from moodle_connector.errors import AccessDenied, error_from_body, stops_everything

    for code, exc in (
        ("requireloginerror", "require_login_exception"),
        ("nopermissions", "required_capability_exception"),
    ):
        err = error_from_body(
            "mod_quiz_get_user_attempts",
            {"exception": exc, "errorcode": code, "message": "Course or activity not accessible."},
        )
        assert isinstance(err, AccessDenied) and err.fatal and stops_everything(err)
        assert "setup.php" in str(err)
