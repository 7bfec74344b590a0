"""What teachers experience, from a list of alerts and the students' final results.

Pure functions over two tables, so the policy evaluation (``riskstream evaluate-alerts``),
the demo's summary and the tests compute the same figures the same way:

- ``alerts``: one row per alert (``course_id``, ``user_id``, ``day``: course day raised);
- ``outcomes``: one row per enrolment (``course_id``, ``user_id``, ``label`` 1 = Fail or
  Withdrawn, ``final_result``, ``registration_day``, ``withdraw_day`` (NaN = stayed),
  ``length`` course days, and optionally ``module``, ``gender``, ``age_band``,
  ``disability``, ``imd_band``).

Per cut-off day D, the population is the enrolments still registered at D (registered on
or before D, not withdrawn before D), as in the model evaluation. A student counts as
alerted by D when their first alert came on or before D. Lead = days from the first alert
to the withdrawal (Withdrawn) or to the course end (Fail).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

CUTOFFS: tuple[int, ...] = (14, 28, 56, 84, 112, 140, 168, 196)
GROUPS: tuple[str, ...] = ("gender", "age_band", "disability", "imd_band")
#: the limits a teacher can live with (issue 12): share of a course newly alerted
DAY_LIMIT = 0.05
WEEK_LIMIT = 0.10


def _first_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    if alerts.empty:
        return pd.DataFrame(columns=["course_id", "user_id", "first_day", "n_alerts"])
    g = alerts.groupby(["course_id", "user_id"])["day"]
    return pd.DataFrame({"first_day": g.min(), "n_alerts": g.size()}).reset_index()


def joined(alerts: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """Outcomes with ``first_day`` (NaN = never alerted), ``n_alerts`` and ``end_day``."""
    df = outcomes.merge(_first_alerts(alerts), on=["course_id", "user_id"], how="left")
    df["n_alerts"] = df["n_alerts"].fillna(0).astype(int)
    wd = df["withdraw_day"].astype("float64")
    df["end_day"] = np.where(wd.notna(), wd, df["length"].astype("float64"))
    return df


def _registered(df: pd.DataFrame, d: int) -> np.ndarray:
    reg = df["registration_day"].astype("float64").fillna(-1e9).to_numpy() <= d
    wd = df["withdraw_day"].astype("float64").to_numpy()
    stay = np.isnan(wd) | (wd >= d)
    return np.asarray(reg & stay & (df["length"].to_numpy() > d))


def _rates(df: pd.DataFrame, d: int) -> dict[str, Any]:
    m = _registered(df, d)
    pop = df[m]
    y = pop["label"].to_numpy()
    first = pop["first_day"].to_numpy(dtype=np.float64)
    al = ~np.isnan(first) & (first <= d)
    n, pos = len(pop), int(y.sum())
    tp = int((al & (y == 1)).sum())
    fp = int((al & (y == 0)).sum())
    lead = (pop["end_day"].to_numpy(dtype=np.float64) - first)[al & (y == 1)]
    return {
        "n": n,
        "positives": pos,
        "base_rate": pos / n if n else None,
        "alerted": int(al.sum()),
        "share_alerted": al.sum() / n if n else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / pos if pos else None,
        "fpr": fp / (n - pos) if n - pos else None,
        "median_lead_days": float(np.median(lead)) if len(lead) else None,
    }


def volume(df: pd.DataFrame, alerts: pd.DataFrame) -> dict[str, Any]:
    """New alerts per course day and per week, against the course's enrolment."""
    if alerts.empty:
        return {
            "per_100_per_week_median": 0.0,
            "per_100_per_week_worst": 0.0,
            "worst_day_share": 0.0,
            "worst_week_share": 0.0,
            "days_over_limit": 0,
            "weeks_over_limit": 0,
            "weekly": [],
        }
    size = df.groupby("course_id").size()
    first = df.dropna(subset=["first_day"])
    new = first.groupby(["course_id", "first_day"]).size().rename("n").reset_index()
    new["share"] = new["n"] / new["course_id"].map(size)
    all_alerts = alerts.assign(week=alerts["day"] // 7)
    weekly = all_alerts.groupby(["course_id", "week"]).size().rename("n").reset_index()
    weekly["per_100"] = 100.0 * weekly["n"] / weekly["course_id"].map(size)
    new_week = first.assign(week=first["first_day"] // 7)
    nw = new_week.groupby(["course_id", "week"]).size().rename("n").reset_index()
    nw["share"] = nw["n"] / nw["course_id"].map(size)
    # every course-week from its first to its last alert week counts, quiet ones too
    per_week = []
    for _c, g in weekly.groupby("course_id"):
        full = g.set_index("week")["per_100"].reindex(
            range(int(g["week"].min()), int(g["week"].max()) + 1), fill_value=0.0
        )
        per_week.extend(full.tolist())
    overall = weekly.groupby("week")["n"].sum() * 100.0 / float(size.sum())
    return {
        "per_100_per_week_median": float(np.median(per_week)),
        "per_100_per_week_worst": float(np.max(per_week)),
        "worst_day_share": float(new["share"].max()),
        "worst_week_share": float(nw["share"].max()),
        "days_over_limit": int((new["share"] > DAY_LIMIT + 1e-9).sum()),
        "weeks_over_limit": int((nw["share"] > WEEK_LIMIT + 1e-9).sum()),
        "weekly": [
            {"week": int(w), "alerts_per_100": round(float(v), 3)} for w, v in overall.items()
        ],
    }


def feedback_share(alerts: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, Any]:
    """Per course: alerts that got teachers' feedback and the share marked useful
    (acknowledged or contacted, against not useful); the latest answer per alert counts.

    ``feedback``: ``course_id``, ``alert_id``, ``action``, ``feedback_id`` (TeacherFeedback).
    """
    out: dict[str, Any] = {}
    if feedback.empty:
        return out
    latest = feedback.sort_values("feedback_id").groupby("alert_id").tail(1)
    sent = alerts.groupby("course_id").size() if not alerts.empty else pd.Series(dtype=int)
    for c, g in latest.groupby("course_id"):
        useful = int(g["action"].isin(["acknowledged", "contacted"]).sum())
        out[str(c)] = {
            "alerts": int(sent.get(c, 0)),
            "answered": len(g),
            "useful": useful,
            "share_useful": useful / len(g),
            "contacted": int((g["action"] == "contacted").sum()),
        }
    return out


def teacher_view(
    alerts: pd.DataFrame,
    outcomes: pd.DataFrame,
    cutoffs: tuple[int, ...] = CUTOFFS,
    feedback: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The whole report: per D, per course (and module), volume, waves, groups, repeats, and
    teachers' feedback per course when given."""
    df = joined(alerts, outcomes)
    per_d = {str(d): _rates(df, d) for d in cutoffs}
    per_course: dict[str, Any] = {}
    for c, g in df.groupby("course_id"):
        name = str(g["module"].iloc[0]) if "module" in g else str(c)
        sub = alerts[alerts["course_id"] == c] if not alerts.empty else alerts
        per_course[str(c)] = {
            "name": name,
            "n": len(g),
            "by_day": {str(d): _rates(g, d) for d in (28, 56, 112)},
            "volume": {
                k: v for k, v in volume(g, sub).items() if k != "weekly"
            },
        }
    groups: dict[str, Any] = {}
    for col in GROUPS:
        if col in df:
            groups[col] = {
                str(v): _rates(g, 56) for v, g in df.groupby(df[col].astype(str).fillna("?"))
            }
    alerted = df[df["n_alerts"] > 0]
    return {
        "students": len(df),
        "alerts": len(alerts),
        "alerted_students": len(alerted),
        "alerts_per_alerted_student": float(alerted["n_alerts"].mean()) if len(alerted) else 0.0,
        "never_active_alerted": (
            int((alerted["never_active"]).sum()) if "never_active" in alerted else None
        ),
        "per_cutoff": per_d,
        "volume": volume(df, alerts),
        "per_course": per_course,
        "groups_at_56": groups,
        "limits": {"day": DAY_LIMIT, "week": WEEK_LIMIT},
        "feedback": feedback_share(alerts, feedback) if feedback is not None else {},
    }


def _f(x: Any, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def render_text(rep: dict[str, Any], title: str) -> str:
    """The readable report: per D, volume and waves, per course, groups."""
    lines = [f"# {title}", ""]
    lines.append(
        f"{rep['students']} enrolments, {rep['alerts']} alerts to {rep['alerted_students']} "
        f"students ({rep['alerts_per_alerted_student']:.2f} per alerted student)"
    )
    lines += ["", "| D | n | base rate | alerted by D | precision | recall | FPR | median lead |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for d, r in rep["per_cutoff"].items():
        lines.append(
            f"| {d} | {r['n']} | {_f(r['base_rate'])} | {_f(r['share_alerted'])} | "
            f"{_f(r['precision'])} | {_f(r['recall'])} | {_f(r['fpr'])} | "
            f"{_f(r['median_lead_days'], '.0f')} |"
        )
    v = rep["volume"]
    lines += [
        "",
        f"Alerts per 100 students per week: median {v['per_100_per_week_median']:.1f}, worst "
        f"{v['per_100_per_week_worst']:.1f}. Biggest single-day wave: "
        f"{100 * v['worst_day_share']:.1f}% of a course (limit {100 * DAY_LIMIT:.0f}%); "
        f"worst week {100 * v['worst_week_share']:.1f}% (limit {100 * WEEK_LIMIT:.0f}%); "
        f"course-days over the limit: {v['days_over_limit']}, weeks: {v['weeks_over_limit']}.",
        "",
        "| course | n | alerted by 56 | precision 56 | recall 56 | lead 56 | worst day | "
        "worst week |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c, r in rep["per_course"].items():
        b = r["by_day"]["56"]
        vv = r["volume"]
        lines.append(
            f"| {r['name']} ({c}) | {r['n']} | {_f(b['share_alerted'])} | {_f(b['precision'])} "
            f"| {_f(b['recall'])} | {_f(b['median_lead_days'], '.0f')} | "
            f"{100 * vv['worst_day_share']:.1f}% | {100 * vv['worst_week_share']:.1f}% |"
        )
    if rep.get("feedback"):
        lines += ["", "Teachers' feedback:", "", "| course | alerts | answered | useful |"]
        lines.append("|---|---|---|---|")
        for c, f in rep["feedback"].items():
            lines.append(
                f"| {c} | {f['alerts']} | {f['answered']} | {100 * f['share_useful']:.0f}% |"
            )
    for col, vals in rep["groups_at_56"].items():
        lines += ["", f"By {col} at D = 56:", ""]
        lines.append("| group | n | alerted | precision | recall | FPR |")
        lines.append("|---|---|---|---|---|---|")
        for g, r in vals.items():
            lines.append(
                f"| {g} | {r['n']} | {_f(r['share_alerted'])} | {_f(r['precision'])} | "
                f"{_f(r['recall'])} | {_f(r['fpr'])} |"
            )
    return "\n".join(lines) + "\n"


def plot(rep: dict[str, Any], path: Any) -> None:
    """Precision / recall / share alerted by D, and weekly alert volume (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    ds = [int(d) for d in rep["per_cutoff"]]
    for key, label in (("precision", "precision"), ("recall", "recall"),
                       ("share_alerted", "share alerted")):
        a1.plot(ds, [rep["per_cutoff"][str(d)][key] or np.nan for d in ds], marker="o",
                label=label)
    a1.set_xlabel("course day D")
    a1.set_ylim(0, 1)
    a1.legend()
    a1.set_title("act-on alerts by day D")
    wk = rep["volume"]["weekly"]
    a2.bar([w["week"] for w in wk], [w["alerts_per_100"] for w in wk])
    a2.axhline(100 * WEEK_LIMIT, color="red", linestyle="--", label="weekly limit")
    a2.set_xlabel("course week")
    a2.set_ylabel("alerts per 100 students")
    a2.legend()
    a2.set_title("weekly volume")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
