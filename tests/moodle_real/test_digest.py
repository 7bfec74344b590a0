"""Item 6: a teacher who chooses the daily digest gets one notification listing new alerts."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from tests.moodle_real.conftest import PHP, teacher_session, ws
from tests.moodle_real.site import MoodleSite


def kinds(moodle: MoodleSite, user: int) -> list[dict[str, Any]]:
    return json.loads(moodle.php(PHP / "admin.php", f"--notifications={user}").splitlines()[-1])


def test_daily_digest_instead_of_one_notification_per_alert(
    moodle: MoodleSite, service: dict[str, Any], course: dict[str, Any]
) -> None:
    page_path = f"/local/riskstream/index.php?id={course['course']}"
    try:
        with teacher_session(moodle, course) as c:
            page = c.get(page_path).text
            assert 'data-digest="0"' in page  # one notification per alert by default
            sesskey = re.search(r'"sesskey":"([^"]+)"', page)
            assert sesskey
            r = c.post(
                "/local/riskstream/index.php",
                data={"id": course["course"], "digest": "digest", "sesskey": sesskey.group(1)},
            )
            assert 'data-digest="1"' in r.text
        before = kinds(moodle, course["teacher"])
        student = course["students"][1]
        pushed = ws(
            moodle,
            service["token"],
            "local_riskstream_push_alerts",
            alerts=[
                {
                    "alertid": "digest" + uuid.uuid4().hex[:20],
                    "courseid": course["course"],
                    "userid": student,
                    "risk": 0.8,
                    "level": "high",
                    "explanation": "no quiz activity for 14 days",
                    "timecreated": int(time.time()),
                }
            ],
        )
        assert pushed["results"][0]["status"] == "stored"
        assert pushed["results"][0]["notified"] == 0  # held for the digest
        assert kinds(moodle, course["teacher"]) == before
        moodle.sql(
            "UPDATE mdl_config_plugins SET value = '0' WHERE plugin = 'local_riskstream' "
            "AND name = 'lastdigest'"
        )
        out = moodle.php(
            moodle.www / "admin/cli/scheduled_task.php",
            "--execute=\\local_riskstream\\task\\send_digest",
        )
        assert "digest(s) sent" in out, out
        digests = [n for n in kinds(moodle, course["teacher"]) if n["eventtype"] == "riskdigest"]
        assert len(digests) == 1
        body = digests[0]["fullmessage"]
        assert f"Student2 {course['tag']}: high risk (80%)" in body and "&#" not in body
    finally:
        moodle.php(
            PHP / "admin.php", "--unsetpref=local_riskstream_digest", f"--user={course['teacher']}"
        )
