"""Replay an OULAD presentation through the worker's own processor and score its alerts.

``riskstream evaluate-alerts`` runs the same ``stream_app.processor.Processor`` (featurizer,
batched model steps, calibration, alert policy, course-clock sweeps, explanations) that
``riskstream worker`` runs, in process: records go in as the broker would hand them over
(JSON bytes, one partition), state lives in a private throwaway ``redis-server``, and what
the processor publishes is collected instead of sent. Registrations and unregistrations are
replayed as enrolment records, as the connector publishes a Moodle roster, so students who
never click are scored too. The alerts are then scored against final results
(``riskstream.alert_metrics``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import TOPICS, LmsEvent, RiskAlert, decode, encode, is_enrolment
from riskstream import alert_metrics
from riskstream.replay import load_oulad, write_context
from riskstream.stack import free_port, redis_answers, redis_binary
from stream_app.records import InRecord, OutRecord

Progress = Callable[[int, int], None]


class CollectingPublisher:
    """Keeps what the processor publishes (alerts decoded) instead of sending it."""

    def __init__(self) -> None:
        self.alerts: dict[str, RiskAlert] = {}
        self.scores = 0
        self.dead = 0

    async def publish(self, records: list[OutRecord]) -> None:
        for r in records:
            if r.topic == TOPICS.alerts:
                al = decode(RiskAlert, r.value)
                self.alerts[al.alert_id] = al  # a replayed batch republishes the same id
            elif r.topic == TOPICS.dead_letter:
                self.dead += 1
            else:
                self.scores += 1


class PrivateRedis:
    """A throwaway redis-server on a free loopback port, nothing persisted."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="riskstream-eval-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [str(redis_binary()), "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.dir), "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class EvalResult:
    report: dict[str, Any]
    alerts: pd.DataFrame
    events: int
    wall_s: float


def outcomes_table(o: Any, course_ids: list[int], users: set[int] | None) -> pd.DataFrame:
    """One row per enrolment: label, result, registration/withdrawal days, course length,
    module and the groups the report breaks down by; ``never_active`` = no click at all."""
    e = o.enrolments
    e = e[e["course_id"].isin(course_ids)]
    if users is not None:
        e = e[e["user_id"].isin(list(users))]
    cals = o.calendars()
    out = pd.DataFrame(
        {
            "course_id": e["course_id"].to_numpy(np.int64),
            "user_id": e["user_id"].to_numpy(np.int64),
            "label": e["label"].to_numpy(np.int64),
            "final_result": e["final_result"].astype(str).to_numpy(),
            "registration_day": e["registration_day"].to_numpy(np.float64),
            "withdraw_day": e["withdraw_day"].to_numpy(np.float64),
            "length": e["course_id"].map({c: k.length_days for c, k in cals.items()}).to_numpy(),
            "module": (e["code_module"].astype(str) + "/" + e["code_presentation"].astype(str))
            .to_numpy(),
        }
    )
    for col in alert_metrics.GROUPS:
        out[col] = e[col].astype(str).fillna("?").to_numpy()
    return out


async def _replay(
    url: str,
    handle: Any,
    events: Iterable[LmsEvent],
    total: int,
    batch: int,
    progress: Progress | None,
    sweep_lag_days: int,
    active: set[tuple[int, int]],
) -> CollectingPublisher:
    from stream_app.inference import InferenceEngine
    from stream_app.processor import Processor
    from stream_app.reload import find_explainer
    from stream_app.state import connect

    pub = CollectingPublisher()
    engine = InferenceEngine(threads=1)
    r = connect(url)
    try:
        proc = Processor(
            r,
            pub,
            handle,
            engine=engine,
            explainer=find_explainer(),
            sweep_partitions=1,
            sweep_lag_days=sweep_lag_days,
        )
        recs: list[InRecord] = []
        for i, ev in enumerate(events):
            if not is_enrolment(ev):
                active.add((ev.course_id, ev.user_id))
            recs.append(InRecord(TOPICS.events, 0, i, ev.key, encode(ev), None))
            if len(recs) >= batch:
                await proc.process(recs)
                recs = []
                if progress is not None:
                    progress(i + 1, total)
        if recs:
            await proc.process(recs)
        if progress is not None:
            progress(total, total)
    finally:
        await r.aclose()
        engine.close()
    return pub


def evaluate_alerts(
    data_dir: Path,
    selection: str,
    registry_root: Path,
    version: str | None = None,
    max_students: int = 0,
    batch: int = 1000,
    sweep_lag_days: int = 1,
    progress: Progress | None = None,
    say: Callable[[str], None] = lambda _m: None,
    feedback: Path | None = None,
) -> EvalResult:
    """Replay ``selection`` (e.g. ``2014B``, ``GGG/2014B``) and score the alerts."""
    import redis as redis_sync

    from stream_app.reload import load_handle

    site = f"eval-{int(time.time())}"
    src = load_oulad(data_dir, selection, site, max_students)  # enrolments included
    handle = load_handle(registry_root, "cpu", version)
    say(f"model {handle.version}; replaying {src.total:,} records of {selection}")
    outcomes = outcomes_table(src.reader, src.course_ids, src.users)
    t0 = time.monotonic()
    with PrivateRedis() as rd:
        client = redis_sync.Redis.from_url(rd.url)
        write_context(client, src.calendars, src.profiles)
        client.close()
        active: set[tuple[int, int]] = set()
        pub = asyncio.run(
            _replay(rd.url, handle, src.events, src.total, batch, progress, sweep_lag_days,
                    active)
        )
    wall = time.monotonic() - t0
    outcomes["never_active"] = [
        (c, u) not in active
        for c, u in zip(outcomes["course_id"], outcomes["user_id"], strict=True)
    ]
    rows = [
        {
            "course_id": a.course_id,
            "user_id": a.user_id,
            "day": a.day,
            "risk": a.risk,
            "level": a.level.value,
            "explanation": a.explanation,
            "contributions": [c.model_dump(mode="json") for c in a.contributions],
        }
        for a in pub.alerts.values()
    ]
    alerts = pd.DataFrame(rows, columns=["course_id", "user_id", "day", "risk", "level",
                                         "explanation", "contributions"])
    fb = None
    if feedback is not None:  # TeacherFeedback JSONL (the riskstream.feedback topic)
        from contracts import TeacherFeedback

        rows = [
            decode(TeacherFeedback, line).model_dump(mode="json")
            for line in feedback.read_bytes().splitlines()
            if line.strip()
        ]
        fb = pd.DataFrame(rows, columns=["course_id", "alert_id", "action", "feedback_id"])
    rep = alert_metrics.teacher_view(alerts, outcomes, feedback=fb)
    rep["run"] = {
        "selection": selection,
        "data": str(data_dir),
        "model_version": handle.version,
        "thresholds": handle.loaded.thresholds.to_dict(),
        "calibrated": not handle.loaded.calibrator.identity,
        "records": src.total,
        "wall_s": round(wall, 1),
        "records_per_s": round(src.total / wall, 1) if wall else None,
        "max_students": max_students or None,
        "dead_letters": pub.dead,
    }
    return EvalResult(rep, alerts, src.total, wall)


def write_report(res: EvalResult, out_dir: Path, title: str) -> list[Path]:
    """report.json, report.md, alerts.jsonl and a plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "alerts.jsonl",
             out_dir / "alerts.png"]
    paths[0].write_text(json.dumps(res.report, indent=2, default=str) + "\n")
    paths[1].write_text(alert_metrics.render_text(res.report, title))
    with paths[2].open("w") as f:
        for row in res.alerts.to_dict(orient="records"):
            f.write(json.dumps(row, default=str) + "\n")
    alert_metrics.plot(res.report, paths[3])
    return paths
