"""Real activity through web services -> connector -> worker -> alerts in Moodle (issue 14).

Students view the course and a page, attempt the quiz (answer right: 10/10) and submit the
assignment with their own mobile-app tokens; the teacher browses too. The model in service
gives every scored student risk 0.9 and the course started 10 days ago, so a student's first
event commits the empty days before it and makes them a candidate; candidates are admitted
when a course day is over for their partition, so the students view the course again once
the day (moved to end during the test) is over. One alert per active student must reach the
teacher.
"""

from __future__ import annotations

import html
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest

from contracts import (
    ENROLMENT_EVENTNAME,
    TOPICS,
    UNENROLMENT_EVENTNAME,
    LmsEvent,
    RiskAlert,
    TeacherFeedback,
    decode,
    decode_event,
)
from contracts import keys as rkeys
from stream_app import feedback
from tests.moodle_real.conftest import PHP, Pipeline, teacher_page, teacher_session, wait_for, ws
from tests.moodle_real.site import MoodleSite


def notifications(
    moodle: MoodleSite, user_id: int, kind: str = "riskalert"
) -> list[dict[str, Any]]:
    rows = json.loads(moodle.php(PHP / "admin.php", f"--notifications={user_id}").splitlines()[-1])
    return [r for r in rows if r["eventtype"] == kind]


def site_events(p: Pipeline) -> list[LmsEvent]:
    out = []
    for v in p.topic(TOPICS.events, idle_s=0.8):
        ev = decode_event(v)
        if ev.site == p.site:
            out.append(ev)
    return out


def act(moodle: MoodleSite, course: dict[str, Any], user: int) -> None:
    tok = course["tokens"][user]
    ws(moodle, tok, "core_course_view_course", courseid=course["course"])
    ws(moodle, tok, "mod_page_view_page", pageid=course["page"])
    if user == course["teacher"]:
        return
    attempt = ws(moodle, tok, "mod_quiz_start_attempt", quizid=course["quiz"])["attempt"]
    u = attempt["uniqueid"]
    done = ws(
        moodle,
        tok,
        "mod_quiz_process_attempt",
        attemptid=attempt["id"],
        finishattempt=1,
        data=[
            {"name": f"q{u}:1_answer", "value": "1"},
            {"name": f"q{u}:1_:sequencecheck", "value": "1"},
        ],
    )
    assert done["state"] == "finished"
    ws(
        moodle,
        tok,
        "mod_assign_save_submission",
        assignmentid=course["assign"],
        plugindata={"onlinetext_editor": {"text": "My essay", "format": 1, "itemid": 0}},
    )


@pytest.fixture(scope="module")
def activity(moodle: MoodleSite, course: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    t0 = time.monotonic()
    act(moodle, course, course["teacher"])
    for s in course["students"]:
        act(moodle, course, s)
    assert time.time() < pipeline.day_ends, "the first round ran past the course day's end"
    time.sleep(max(0.0, pipeline.day_ends - time.time()) + 1.0)
    for s in course["students"]:  # the next course day: the sweep closes the previous one
        ws(moodle, course["tokens"][s], "core_course_view_course", courseid=course["course"])
    acted = time.monotonic()

    def all_alerted() -> list[dict[str, Any]] | None:
        for name, proc in pipeline.procs.items():
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"{name} exited {proc.returncode}:\n{out[-3000:]}")
        stored = moodle.sql(
            "SELECT DISTINCT userid FROM mdl_local_riskstream_alerts "
            f"WHERE courseid = {course['course']} AND alertid NOT LIKE 'digest%'"
        )
        if not set(course["students"]) <= {int(r[0]) for r in stored}:
            return None
        got = notifications(moodle, course["teacher"])  # one per stored alert
        return got if len(got) >= len(stored) else None

    notes = wait_for(all_alerted, 150, "an alert per active student in the teacher's notifications")
    return {
        "notifications": notes,
        "act_s": acted - t0,
        "alert_latency_s": time.monotonic() - acted,
    }


def test_alerts_reach_the_teacher_and_the_course_page(
    moodle: MoodleSite, course: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    act_s, latency = activity["act_s"], activity["alert_latency_s"]
    print(f"\nactivity {act_s:.1f} s, alerts in Moodle {latency:.1f} s later")
    stored = moodle.sql(
        f"SELECT userid, level FROM mdl_local_riskstream_alerts WHERE courseid = {course['course']}"
    )
    alerted = {int(u) for u, _ in stored}
    assert set(course["students"]) <= alerted  # every active student
    assert alerted <= {*course["students"], course["noshow"]}  # nobody else, ever
    # the teacher's notification, as plain text without HTML entities (defect 7)
    for n in activity["notifications"]:
        assert "&#" not in n["fullmessage"] and "&amp;" not in n["fullmessage"], n["fullmessage"]
        assert "RiskStream test's course" in n["fullmessage"]
        assert "/local/riskstream/feedback.php?alert=" in n["fullmessage"]
        assert "test&#039;s course" in n["fullmessagehtml"] or "test's course" in html.unescape(
            n["fullmessagehtml"]
        )
    # the course page, as the teacher sees it in a browser
    page = teacher_page(moodle, course, f"/local/riskstream/index.php?id={course['course']}")
    for s in course["students"]:
        assert f"Student{course['students'].index(s) + 1} {course['tag']}" in page


def test_only_students_are_scored_and_own_calls_never_become_events(
    course: dict[str, Any], service: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    """Defect 5 and 6: teachers, admins and the service user never produce events or state."""
    events = site_events(pipeline)
    users = {ev.user_id for ev in events}
    assert users <= {*course["students"], course["noshow"]}, users
    assert course["teacher"] not in users and service["userid"] not in users and 2 not in users
    keys = {k.decode() for k in pipeline.redis.scan_iter(rkeys.state_pattern(pipeline.site))}
    scored = {int(k.rsplit(":", 1)[1]) for k in keys}
    assert scored <= {*course["students"], course["noshow"]}
    assert set(course["students"]) <= scored
    assert not any("webservice_function_called" in ev.eventname for ev in events)


def test_quiz_grades_and_deadlines_are_collected(
    course: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    """Defects 1 and 2: quiz grade (10/10), quiz and assignment deadlines in the calendar."""
    events = site_events(pipeline)
    submitted = [ev for ev in events if ev.eventname == "\\mod_quiz\\event\\attempt_submitted"]
    assert {ev.user_id for ev in submitted} == set(course["students"])
    assert all(ev.grade == 10 and ev.max_grade == 10 for ev in submitted), submitted
    cal_raw = pipeline.redis.get(rkeys.calendar_key(pipeline.site, course["course"]))
    cal = json.loads(cal_raw or b"{}")
    kinds = {(d["kind"], d.get("cmid")) for d in cal.get("deadlines", [])}
    assert ("quiz", course["quizcmid"]) in kinds
    assert any(k == "assignment" for k, _ in kinds), cal


def test_enrolment_records_for_every_student_including_the_no_show(
    moodle: MoodleSite, course: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    """Item 4: a roster enrolment (id 0) per student and the log's own enrolment rows; an
    unenrolment passes through for the former student."""
    events = site_events(pipeline)
    roster = {
        ev.user_id for ev in events if ev.eventname == ENROLMENT_EVENTNAME and ev.event_id == 0
    }
    assert roster == {*course["students"], course["noshow"]}
    logged = {
        ev.user_id for ev in events if ev.eventname == ENROLMENT_EVENTNAME and ev.event_id > 0
    }
    assert logged == {*course["students"], course["noshow"]}  # seed enrolled them (log rows)
    gone = course["students"][-1]
    moodle.php(PHP / "admin.php", f"--unenrol={gone}", f"--course={course['course']}")

    def unenrolled() -> bool:
        return any(
            ev.eventname == UNENROLMENT_EVENTNAME and ev.user_id == gone
            for ev in site_events(pipeline)
        )

    wait_for(unenrolled, 60, "the unenrolment row on the events topic", every=1.0)


def test_log_rows_written_by_the_connector(
    moodle: MoodleSite, service: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    """Defect 6: an idle connector makes one log call (one log row) per long-poll wait (3 s
    here, 20 s by default) instead of one per 0.5 s idle interval, and writes no other row."""
    uid = service["userid"]

    def count(function: str) -> int:
        return int(
            moodle.sql(
                f"SELECT COUNT(*) FROM mdl_logstore_standard_log WHERE userid = {uid} "
                f"AND other LIKE '%{function}%'"
            )[0][0]
        )

    time.sleep(2)
    before, t0 = count("local_riskstream_get_events"), time.monotonic()
    time.sleep(12)
    rows, elapsed = count("local_riskstream_get_events") - before, time.monotonic() - t0
    print(f"\nidle connector: {rows} get_events log rows in {elapsed:.0f} s (wait 3 s, idle 0.5 s)")
    assert 1 <= rows <= elapsed / 3.5 + 1  # without the long poll: elapsed / 0.5 = 24
    other = moodle.sql(
        "SELECT DISTINCT eventname FROM mdl_logstore_standard_log WHERE userid = "
        f"{uid} AND eventname <> '\\core\\event\\webservice_function_called'"
    )
    assert other == [], other


def test_teacher_feedback_reaches_the_feedback_topic(
    moodle: MoodleSite, course: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    """Item 5: the teacher marks an alert 'contacted'; it shows on the course page and
    arrives on riskstream.feedback; the worker side keeps the latest per student."""
    student = course["students"][0]
    alert_id = moodle.sql(
        "SELECT alertid FROM mdl_local_riskstream_alerts WHERE courseid = "
        f"{course['course']} AND userid = {student} AND alertid NOT LIKE 'digest%' "
        "ORDER BY id LIMIT 1"
    )[0][0]
    got = ws(
        moodle,
        course["tokens"][course["teacher"]],
        "local_riskstream_give_feedback",
        alertid=alert_id,
        action="contacted",
    )
    assert got["action"] == "contacted"

    def on_topic() -> list[TeacherFeedback]:
        fbs = [decode(TeacherFeedback, v) for v in pipeline.topic(TOPICS.feedback, idle_s=0.8)]
        return [f for f in fbs if f.site == pipeline.site and f.alert_id == alert_id]

    fb = wait_for(on_topic, 60, "the feedback on riskstream.feedback", every=1.0)[0]
    assert fb.user_id == student and fb.teacher_id == course["teacher"]
    assert fb.action == "contacted" and fb.course_id == course["course"]
    page = teacher_page(moodle, course, f"/local/riskstream/index.php?id={course['course']}")
    assert 'data-action="contacted"' in page
    assert 'data-share="1.000"' in page  # 1 of 1 answered alerts marked useful
    # the worker keeps each alert's latest answer under the student's course hash tag; its
    # alert admission reads it there (a contacted student is held back for the cooldown)
    key = rkeys.feedback_key(pipeline.site, course["course"], student)
    stored = wait_for(lambda: pipeline.redis.hget(key, alert_id), 30, f"{key} in Redis")
    answer = json.loads(stored)
    assert answer["action"] == "contacted" and answer["id"] == fb.feedback_id
    held = feedback.suppresses(
        feedback.parse(pipeline.redis.hgetall(key)), fb.time + timedelta(days=1), 7
    )
    assert held  # what `_release` asks: the next day closes within the 7-day cooldown
    alerts = [decode(RiskAlert, v) for v in pipeline.topic(TOPICS.alerts, idle_s=0.5)]
    assert any(a.alert_id == alert_id for a in alerts)


def test_feedback_from_the_notification_link_and_the_privacy_api(
    moodle: MoodleSite, course: dict[str, Any], pipeline: Pipeline, activity: dict[str, Any]
) -> None:
    """The notification's link asks to confirm, then records the answer; Moodle's privacy API
    finds, exports and deletes alerts and feedback for the student and for the teacher."""
    student = course["students"][1]
    alert_id = moodle.sql(
        "SELECT alertid FROM mdl_local_riskstream_alerts WHERE courseid = "
        f"{course['course']} AND userid = {student} AND alertid NOT LIKE 'digest%' "
        "ORDER BY id LIMIT 1"
    )[0][0]

    def note() -> str | None:
        mine = notifications(moodle, course["teacher"])
        return next((n["fullmessage"] for n in mine if alert_id in n["fullmessage"]), None)

    link = wait_for(note, 60, "the teacher's notification about the alert")
    url = re.search(r"(/local/riskstream/feedback\.php\?alert=\w+&action=notuseful)", link)
    assert url, link
    with teacher_session(moodle, course) as c:
        confirm = c.get(url.group(1)).text
        assert "Not useful" in confirm
        sesskey = re.search(r'"sesskey":"([^"]+)"', confirm)
        assert sesskey
        done = c.post(
            "/local/riskstream/feedback.php",
            data={
                "alert": alert_id,
                "action": "notuseful",
                "confirm": 1,
                "sesskey": sesskey.group(1),
            },
        )
        assert "Feedback saved" in done.text
    assert moodle.sql(
        f"SELECT action FROM mdl_local_riskstream_feedback WHERE alertid = '{alert_id}'"
    ) == [["notuseful"]]

    def privacy(user: int, *extra: str) -> dict[str, Any]:
        out = moodle.php(PHP / "privacy.php", f"--user={user}", *extra)
        return json.loads(out.splitlines()[-1])

    teacher = privacy(course["teacher"])
    assert teacher["compliant"] and teacher["contexts"]  # feedback given in the course
    assert "notuseful" in teacher["exported"]
    gone = privacy(student, "--delete")
    assert gone["compliant"] and gone["contexts"]
    assert alert_id in gone["exported"] and "notuseful" in gone["exported"]
    assert gone["alerts_left"] == 0 and gone["feedback_left"] == 0
