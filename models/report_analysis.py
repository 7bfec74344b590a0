"""Markdown sections and plots for the analysis part of the report (``models.analysis``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def analysis_markdown(report: Mapping[str, Any]) -> list[str]:
    """Importance, partial dependence, segments and hold-out drift (empty if absent)."""
    lines: list[str] = []
    imp = report.get("importance") or {}
    if imp:
        cut = list(imp)
        names = list(next(iter(imp.values()))["features"])
        total = {n: sum(imp[d]["features"][n]["mean_abs_change"] for d in cut) for n in names}
        names.sort(key=lambda n: -total[n])
        lines += [
            "## What drives risk overall (permutation importance)",
            "",
            "Each feature shuffled across the hold-out students registered at D; cells are "
            "mean |change of risk| over students / ROC-AUC drop. Sorted by the mean change.",
            "",
        ]
        rows = [
            [n]
            + [
                f"{_f(imp[d]['features'][n]['mean_abs_change'])} / "
                f"{_f(imp[d]['features'][n]['auc_drop'])}"
                for d in cut
            ]
            for n in names
        ]
        lines += [*_table(["feature", *[f"D={d}" for d in cut]], rows), ""]
    pdp = report.get("partial_dependence") or {}
    if pdp:
        lines += [
            "## Partial dependence (main features)",
            "",
            "Mean risk at D when the feature is set to the value on every day up to D.",
            "",
        ]
        for name, item in pdp.items():
            grid = item["grid"]
            rows = [[f"D={d}", *[_f(v) for v in vals]] for d, vals in item["mean_risk"].items()]
            lines += [f"### {name}", "", *_table(["", *[_f(g, 2) for g in grid]], rows), ""]
    seg = report.get("segments") or {}
    if seg:
        lines += [
            "## Student segments (k-means over the last four weeks' activity)",
            "",
            "Fitted on the training presentations (pooled cut-offs); outcome = Fail or "
            "Withdrawn rate among members.",
            "",
        ]
        rows = [
            [str(i), d, _f(seg["share"][i]), _f(seg["outcome_rate"][i])]
            for i, d in enumerate(seg["descriptions"])
        ]
        lines += [*_table(["segment", "in words", "train share", "train outcome"], rows), ""]
        hold = seg.get("holdout") or {}
        if hold:
            lines += ["Hold-out presentation: share / outcome rate / mean risk per segment.", ""]
            rows = [
                [f"D={d}"]
                + [
                    f"{_f(r['share'], 2)} / {_f(r['outcome_rate'], 2)} / "
                    f"{_f(r.get('mean_risk'), 2)}"
                    for r in rs
                ]
                for d, rs in hold.items()
            ]
            k = len(seg["descriptions"])
            lines += [*_table(["", *[f"segment {i}" for i in range(k)]], rows), ""]
    drift = report.get("drift") or {}
    if drift.get("courses"):
        lines += [
            "## Input drift of the hold-out presentation (PSI against training)",
            "",
            f"Per course: weeks with enough data, weeks above the alarm (PSI > "
            f"{drift['alarm_psi']}), median of the weekly max PSI over behaviour features.",
            "",
        ]
        rows = [
            [
                c,
                str(len(v["weeks"])),
                ", ".join(str(w) for w in v["alarm_weeks"][:12]) or "none",
                ", ".join(v.get("alarm_features", [])) or "-",
                _f(v["median_max_psi"]),
            ]
            for c, v in drift["courses"].items()
        ]
        header = ["course", "weeks", "alarm weeks", "features behind alarms", "median max PSI"]
        lines += [*_table(header, rows), ""]
    cal = report.get("live_calibration") or {}
    if cal.get("courses"):
        th = cal["thresholds"]
        lines += [
            "## Live calibration as the API reports it (hold-out, all outcomes known)",
            "",
            f"Per course and band day D: ECE / precision of high (risk >= {_f(th['high'])}) / "
            "students flagged high; `!` = alarm (ECE > 0.1 or precision < target - 0.1, "
            "with >= 200 outcomes).",
            "",
        ]
        days = sorted({int(d) for v in cal["courses"].values() for d in v})
        rows = []
        for c, by_d in cal["courses"].items():
            row = [c]
            for d in days:
                b = by_d.get(str(d))
                if not b:
                    row.append("-")
                    continue
                mark = "!" if b["verdict"] == "alarm" else ""
                row.append(
                    f"{_f(b['ece'], 2)} / {_f(b['precision_high'], 2)} / {b['flagged_high']}{mark}"
                )
            rows.append(row)
        lines += [*_table(["course", *[f"D={d}" for d in days]], rows), ""]
    return lines


def analysis_plots(report: Mapping[str, Any], out: Path) -> list[Path]:
    """importance.png (mean change per feature and D) and pdp_<feature>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    imp = report.get("importance") or {}
    if imp:
        cut = list(imp)
        names = list(next(iter(imp.values()))["features"])
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.5))
        h = 0.8 / max(len(cut), 1)
        for i, d in enumerate(cut):
            vals = [imp[d]["features"][n]["mean_abs_change"] for n in names]
            ax.barh([j + i * h for j in range(len(names))], vals, height=h, label=f"D={d}")
        ax.set_yticks([j + 0.4 for j in range(len(names))])
        ax.set_yticklabels(names, fontsize=7)
        ax.set_xlabel("mean |change of risk| when shuffled")
        ax.legend(fontsize=6)
        fig.tight_layout()
        paths.append(_save(fig, out / "importance.png"))
    for name, item in (report.get("partial_dependence") or {}).items():
        fig, ax = plt.subplots(figsize=(5, 4))
        for d, vals in item["mean_risk"].items():
            ax.plot(item["grid"], vals, marker="o", label=f"D={d}")
        ax.set_xlabel(f"{name} (every day)")
        ax.set_ylabel("mean risk at D")
        ax.set_title(f"partial dependence: {name}")
        ax.legend(fontsize=6)
        fig.tight_layout()
        paths.append(_save(fig, out / f"pdp_{name}.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
