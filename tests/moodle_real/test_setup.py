"""README steps 2-5 on a real Moodle: the plugin's setup script, then `connector check`."""

from __future__ import annotations

import re
from typing import Any

from moodle_connector.run import NEEDED
from riskstream.stack import Stack
from tests.moodle_real.conftest import PHP, SETUP, TOKEN_LINE, cli, connector_env, ws
from tests.moodle_real.site import MoodleSite

PLUGIN_CAPS = re.compile(r"^\s+'([a-z]+/[a-z0-9_]+:[a-z0-9_]+)' => ", re.M)


def role_capabilities(moodle: MoodleSite) -> set[str]:
    rows = moodle.sql(
        "SELECT rc.capability FROM mdl_role_capabilities rc JOIN mdl_role r ON r.id = rc.roleid "
        "WHERE r.shortname = 'riskstreamconnector' AND rc.permission = 1"
    )
    return {r[0] for r in rows}


def test_setup_script_makes_user_role_and_token_once(
    moodle: MoodleSite, service: dict[str, Any]
) -> None:
    source = (moodle.www / "local/riskstream/classes/service_user.php").read_text()
    wanted = set(PLUGIN_CAPS.findall(source))
    assert "mod/quiz:view" in wanted and "mod/assign:view" in wanted  # defect 1
    assert role_capabilities(moodle) == wanted  # exactly the list, nothing more
    assert moodle.sql("SELECT value FROM mdl_config WHERE name = 'enablewebservices'") == [["1"]]
    protocols = moodle.sql("SELECT value FROM mdl_config WHERE name = 'webserviceprotocols'")
    assert "rest" in protocols[0][0].split(",")
    # authorised on the predefined (restricted) service
    assert moodle.sql(
        "SELECT COUNT(*) FROM mdl_external_services_users su JOIN mdl_external_services s "
        f"ON s.id = su.externalserviceid WHERE s.shortname = 'local_riskstream' "
        f"AND su.userid = {service['userid']}"
    ) == [["1"]]
    # a second run repairs (an extra capability is taken away) and prints no token
    moodle.php(PHP / "admin.php", "--assign=moodle/site:config")
    assert "moodle/site:config" in role_capabilities(moodle)
    moodle.php(moodle.www / "admin/cli/cfg.php", "--name=enablewebservices", "--set=0", check=False)
    again = moodle.php(moodle.www / SETUP)
    assert not TOKEN_LINE.search(again) and "--rotate-token" in again
    assert service["token"] not in again
    assert role_capabilities(moodle) == wanted
    assert moodle.sql("SELECT value FROM mdl_config WHERE name = 'enablewebservices'") == [["1"]]
    # the token printed once works for the service
    info = ws(moodle, service["token"], "core_webservice_get_site_info")
    assert info["username"] == "riskstream"


def test_service_lists_quiz_attempts_of_moodle_5(
    moodle: MoodleSite, service: dict[str, Any]
) -> None:
    """Defect 3: db/services.php lists mod_quiz_get_user_quiz_attempts on 5.0.2."""
    info = ws(moodle, service["token"], "core_webservice_get_site_info")
    names = {f["name"] for f in info["functions"]}
    assert "mod_quiz_get_user_quiz_attempts" in names
    for purpose, alternatives, _ in NEEDED:
        assert any(a in names for a in alternatives), purpose


def test_check_calls_every_function_on_a_real_course_and_says_ready(
    moodle: MoodleSite, service: dict[str, Any], course: dict[str, Any], stack: Stack
) -> None:
    env = connector_env(moodle, service["token"], stack, "check")
    out = cli(env, "connector", "check", "--course", str(course["course"]))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "ready" in text and "5.0.2" in text
    for fn in (
        "local_riskstream_get_events",
        "core_enrol_get_enrolled_users",
        "mod_quiz_get_quizzes_by_courses",
        "mod_quiz_get_user_quiz_attempts",
        "mod_assign_get_assignments",
        "gradereport_user_get_grade_items",
    ):
        assert re.search(re.escape(fn) + r"\s*│\s*ok", text), f"{fn} not ok:\n{text}"
    assert service["token"] not in text
