"""Production monitoring for the API and /ui: drift, live calibration, segments, retraining.

Reads what the worker and the replayer write (``rs:drift:{site}:{course}:{version}``,
``rs:outcome:{site}:{course}``, the students' ``traj`` and ``win``) and what the registry
version keeps (``drift_reference.json``, ``segments.json``), and turns them into the
documents of the monitoring routes and the Prometheus gauges. Every key is the API's site.
Results are cached for ``ttl_s`` per course: a course's calibration reads every student.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from models.drift import ALARM_PSI, DriftReference, course_week_psi, parse_counts
from models.live_calibration import ECE_ALARM, MIN_KNOWN, StudentRecord, course_calibration
from models.segments import SEGMENTS_FILE, Segments, window_profiles
from riskstream.api import keys
from riskstream.api.reader import decode_trajectory


@dataclass(frozen=True)
class MonitorConfig:
    psi_alarm: float = ALARM_PSI
    ece_alarm: float = ECE_ALARM
    min_outcomes: int = MIN_KNOWN
    target_precision: float = 0.8
    ttl_s: float = 30.0


class MonitorGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.psi = Gauge(
            "riskstream_drift_psi",
            "PSI of a day feature in the course's latest week with enough data",
            ["site", "course", "feature"],
            registry=registry,
        )
        self.psi_max = Gauge(
            "riskstream_drift_psi_max",
            "Largest behaviour-feature PSI of the course's latest week with enough data",
            ["site", "course"],
            registry=registry,
        )
        self.drift_alarm = Gauge(
            "riskstream_drift_alarm",
            "1 when the latest week's max PSI is above the alarm threshold",
            ["site", "course"],
            registry=registry,
        )
        self.ece = Gauge(
            "riskstream_live_ece",
            "Expected calibration error over known outcomes, per course and band day",
            ["site", "course", "day"],
            registry=registry,
        )
        self.precision_high = Gauge(
            "riskstream_live_precision_high",
            "Precision of the high level over known outcomes, per course and band day",
            ["site", "course", "day"],
            registry=registry,
        )
        self.outcomes = Gauge(
            "riskstream_outcomes_known",
            "Students of the course whose outcome is known",
            ["site", "course"],
            registry=registry,
        )
        self.retrain_due = Gauge(
            "riskstream_retrain_due", "1 when the retraining rule says retrain", registry=registry
        )


class Monitoring:
    """One per API process; ``registry`` is the models registry (or None)."""

    def __init__(
        self,
        redis: Any,
        site: str,
        registry: Any,
        cfg: MonitorConfig | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self.r = redis
        self.site = site
        self.registry = registry
        self.cfg = cfg or MonitorConfig()
        self.gauges = MonitorGauges(metrics or CollectorRegistry())
        self._cache: dict[tuple[str, int, str], tuple[float, dict[str, Any]]] = {}
        self._files: dict[tuple[str, str], Any] = {}
        self._overview: tuple[float, dict[str, Any]] | None = None

    # -- registry files ----------------------------------------------------------------
    def _version_file(self, version: str, name: str) -> Any:
        """A version's JSON file, cached once found (a missing one is looked for again:
        ``riskstream monitor reference`` may add it while the API runs)."""
        if (version, name) not in self._files:
            root = getattr(self.registry, "root", None)
            path = None if root is None else Path(root) / version / name
            if path is None or not path.is_file():
                return None
            self._files[(version, name)] = json.loads(path.read_text())
        return self._files[(version, name)]

    def _current(self) -> str | None:
        if self.registry is None:
            return None
        try:
            v = self.registry.current_version()
        except (OSError, ValueError):
            return None
        return str(v) if v else None

    def _thresholds(self, version: str | None) -> tuple[float, float]:
        th = self._version_file(version, "thresholds.json") if version else None
        if isinstance(th, dict):
            return float(th.get("high", 0.75)), float(th.get("medium", 0.5))
        return 0.75, 0.5

    def _cached(self, kind: str, course: int, version: str) -> dict[str, Any] | None:
        hit = self._cache.get((kind, course, version))
        if hit and time.monotonic() - hit[0] < self.cfg.ttl_s:
            return hit[1]
        return None

    def _store(self, kind: str, course: int, version: str, doc: dict[str, Any]) -> None:
        if len(self._cache) > 5000:
            self._cache.clear()
        self._cache[(kind, course, version)] = (time.monotonic(), doc)

    # -- drift -----------------------------------------------------------------------
    async def drift(self, course: int) -> dict[str, Any]:
        """PSI per feature and week of the course against the current model's training."""
        version = self._current()
        base: dict[str, Any] = {
            "course": course,
            "model_version": version,
            "statistic": "PSI",
            "alarm_psi": self.cfg.psi_alarm,
            "weeks": [],
            "latest": None,
            "alarm": False,
        }
        if version is None:
            return {**base, "error": "no current model in the registry"}
        hit = self._cached("drift", course, version)
        if hit is not None:
            return hit
        raw_ref = self._version_file(version, "drift_reference.json")
        if raw_ref is None:
            return {
                **base,
                "error": f"model {version} has no drift_reference.json; run "
                f"`riskstream monitor reference --version {version}`",
            }
        ref = DriftReference.from_dict(raw_ref)
        raw = await self.r.hgetall(keys.drift_key(self.site, course, version))
        counts = parse_counts({k.decode(): int(v) for k, v in raw.items()}, ref)
        weeks = [
            course_week_psi(ref, w, cnt, n, alarm=self.cfg.psi_alarm)
            for w, (n, cnt) in sorted(counts.items())
        ]
        judged = [w for w in weeks if w["max_psi"] is not None]
        latest = judged[-1] if judged else None
        doc = {
            **base,
            "weeks": weeks,
            "latest": latest,
            "alarm": bool(latest and latest["alarm"]),
            # two judged weeks in a row above the alarm: what the retraining rule counts
            "persistent": len(judged) >= 2 and all(w["alarm"] for w in judged[-2:]),
        }
        self._store("drift", course, version, doc)
        return doc

    # -- calibration -------------------------------------------------------------------
    async def _records(self, course: int) -> tuple[list[StudentRecord], dict[int, Any]]:
        members = await self.r.zrange(keys.rank_key(self.site, course), 0, -1)
        users = [int(m) for m in members if m.decode().isdigit()]
        raw_out = await self.r.hgetall(keys.outcome_key(self.site, course))
        outcomes: dict[int, Any] = {}
        for u, v in raw_out.items():
            try:
                outcomes[int(u)] = json.loads(v)
            except ValueError:
                continue
        pipe = self.r.pipeline(transaction=False)
        for u in users:
            pipe.hmget(keys.state_key(self.site, course, u), ("traj", "day"))
        rows = await pipe.execute() if users else []
        recs = []
        for u, (traj_raw, day_raw) in zip(users, rows, strict=True):
            traj = decode_trajectory(traj_raw)
            day_s = day_raw.decode() if day_raw else ""
            open_day = int(day_s) if day_s.lstrip("-").isdigit() else len(traj)
            o = outcomes.get(u)
            label = None
            wd = None
            if isinstance(o, dict) and o.get("result") in (
                "pass",
                "distinction",
                "fail",
                "withdrawn",
            ):
                label = 0 if o["result"] in ("pass", "distinction") else 1
                if o["result"] == "withdrawn" and isinstance(o.get("day"), int):
                    wd = int(o["day"])
            recs.append(StudentRecord(traj, max(open_day - len(traj), 0), label, wd))
        return recs, outcomes

    async def calibration(self, course: int) -> dict[str, Any]:
        """Reliability, ECE and precision of ``high`` per band day over known outcomes."""
        version = self._current() or ""
        hit = self._cached("calibration", course, version)
        if hit is not None:
            return hit
        high, medium = self._thresholds(version or None)
        recs, outcomes = await self._records(course)
        doc = course_calibration(
            recs,
            high,
            medium,
            ece_alarm=self.cfg.ece_alarm,
            min_known=self.cfg.min_outcomes,
            target_precision=self.cfg.target_precision,
        )
        finals = sum(1 for o in outcomes.values() if isinstance(o, dict) and o.get("final"))
        doc = {
            "course": course,
            "model_version": version or None,
            "ece_alarm": self.cfg.ece_alarm,
            "min_outcomes": self.cfg.min_outcomes,
            "final_results": finals,
            "withdrawals": sum(
                1
                for o in outcomes.values()
                if isinstance(o, dict) and o.get("result") == "withdrawn"
            ),
            **doc,
        }
        self._store("calibration", course, version, doc)
        return doc

    # -- segments ----------------------------------------------------------------------
    async def segments(self, course: int) -> dict[str, Any]:
        """The course's students placed in the current model's segments by the last four
        weeks of their window (students with fewer committed days are 'too early')."""
        version = self._current()
        if version is None:
            return {"course": course, "segments": [], "error": "no current model"}
        hit = self._cached("segments", course, version)
        if hit is not None:
            return hit
        raw = self._version_file(version, SEGMENTS_FILE)
        spec = self._version_file(version, "spec.json")
        if raw is None or spec is None:
            return {
                "course": course,
                "model_version": version,
                "segments": [],
                "error": f"model {version} has no {SEGMENTS_FILE}; run "
                f"`riskstream monitor reference --version {version}`",
            }
        seg = Segments.from_dict(raw)
        names = list(spec["spec"]["day_features"])
        n_day = len(names)
        ci, ai = names.index(seg.features[0]), names.index(seg.features[1])
        need = 7 * seg.weeks
        members = await self.r.zrange(keys.rank_key(self.site, course), 0, -1)
        users = [int(m) for m in members if m.decode().isdigit()]
        pipe = self.r.pipeline(transaction=False)
        for u in users:
            pipe.hmget(keys.state_key(self.site, course, u), ("win", "risk"))
        rows = await pipe.execute() if users else []
        raw_out = await self.r.hgetall(keys.outcome_key(self.site, course))
        wins, risks, labels = [], [], []
        early = 0
        for u, (win_raw, risk_raw) in zip(users, rows, strict=True):
            win = np.frombuffer(win_raw or b"", dtype=np.float32)
            if win.size % n_day or win.size // n_day < need:
                early += 1
                continue
            wins.append(win.reshape(-1, n_day)[-need:])
            risks.append(float(risk_raw) if risk_raw else math.nan)
            o = raw_out.get(str(u).encode())
            res = json.loads(o).get("result") if o else None
            labels.append(None if res is None else int(res not in ("pass", "distinction")))
        assign = (
            seg.assign(window_profiles(np.stack(wins), ci, ai, seg.weeks))
            if wins
            else np.zeros(0, dtype=np.int64)
        )
        out = []
        for s in range(seg.k):
            m = assign == s
            known = [int(lb) for i in np.flatnonzero(m) if (lb := labels[i]) is not None]
            rs = [risks[i] for i in np.flatnonzero(m) if not math.isnan(risks[i])]
            out.append(
                {
                    "segment": s,
                    "description": seg.descriptions[s],
                    "students": int(m.sum()),
                    "mean_risk": round(float(np.mean(rs)), 4) if rs else None,
                    "training_outcome_rate": seg.outcome_rate[s],
                    "live_outcome_rate": round(float(np.mean(known)), 4) if known else None,
                    "live_outcomes": len(known),
                }
            )
        doc = {
            "course": course,
            "model_version": version,
            "weeks": seg.weeks,
            "too_early": early,
            "segments": out,
        }
        self._store("segments", course, version, doc)
        return doc

    # -- all courses --------------------------------------------------------------------
    async def overview(self, force: bool = False) -> dict[str, Any]:
        """Per course: drift and calibration verdicts; the retraining rule; sets gauges."""
        if not force and self._overview and time.monotonic() - self._overview[0] < self.cfg.ttl_s:
            return self._overview[1]
        from riskstream.retrain import RetrainSignals, decide

        raw = await self.r.smembers(keys.courses_key(self.site))
        courses = sorted(int(c) for c in raw if c.decode().isdigit())
        rows = []
        for c in courses:
            d = await self.drift(c)
            cal = await self.calibration(c)
            latest = d.get("latest") or {}
            site, cs = self.site, str(c)
            for feat, v in (latest.get("psi") or {}).items():
                if v is not None:
                    self.gauges.psi.labels(site, cs, feat).set(v)
            if latest.get("max_psi") is not None:
                self.gauges.psi_max.labels(site, cs).set(latest["max_psi"])
            self.gauges.drift_alarm.labels(site, cs).set(1 if d["alarm"] else 0)
            self.gauges.outcomes.labels(site, cs).set(cal["outcomes_known"])
            for b in cal["bands"]:
                if b["ece"] is not None:
                    self.gauges.ece.labels(site, cs, str(b["day"])).set(b["ece"])
                if b["precision_high"] is not None:
                    self.gauges.precision_high.labels(site, cs, str(b["day"])).set(
                        b["precision_high"]
                    )
            rows.append(
                {
                    "course": c,
                    "drift_week": latest.get("week"),
                    "drift_max_psi": latest.get("max_psi"),
                    "drift_worst_feature": latest.get("worst_feature"),
                    "drift_alarm": d["alarm"],
                    "drift_persistent": bool(d.get("persistent")),
                    "outcomes_known": cal["outcomes_known"],
                    "calibration_alarm": cal["alarm"],
                    "max_ece": max(
                        (b["ece"] for b in cal["bands"] if b["ece"] is not None), default=None
                    ),
                }
            )
        signals = RetrainSignals(
            drifting_courses=[r["course"] for r in rows if r["drift_persistent"]],
            miscalibrated_courses=[r["course"] for r in rows if r["calibration_alarm"]],
            new_presentations=None,
        )
        decision = decide(signals)
        self.gauges.retrain_due.set(1 if decision.due else 0)
        doc = {
            "site": self.site,
            "model_version": self._current(),
            "alarm_psi": self.cfg.psi_alarm,
            "ece_alarm": self.cfg.ece_alarm,
            "courses": rows,
            "retrain": decision.as_dict(),
        }
        self._overview = (time.monotonic(), doc)
        return doc
