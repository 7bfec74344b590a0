"""Write an evaluation report as JSON (machines), Markdown (people) and PNG plots.

The report is a plain dict (see :func:`build_report`) so it can be written, read back and
compared without importing anything heavy; matplotlib runs headless (Agg).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.evaluate import jsonable
from models.report_analysis import analysis_markdown, analysis_plots

PRIMARY_PREFERENCE = ("lstm", "cnn_lstm")


def build_report(
    metrics: Mapping[str, Mapping[int, Mapping[str, Any]]],
    *,
    primary: str,
    reference: str = "lightgbm",
    target_precision: float,
    thresholds: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    protected_pairs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Assemble the report dict: per-model metrics plus the verdicts people ask first.

    ``protected_pairs`` maps a variant that sees protected attributes to its default model,
    e.g. {"lightgbm+protected": "lightgbm"}.
    """
    cutoffs = sorted({int(d) for by_d in metrics.values() for d in by_d})
    vs: dict[int, dict[str, Any]] = {}
    if primary in metrics and reference in metrics:
        for d in cutoffs:
            a = _get(metrics, primary, d, "roc_auc")
            b = _get(metrics, reference, d, "roc_auc")
            delta = None if a is None or b is None else a - b
            vs[d] = {
                primary: a,
                reference: b,
                "delta": delta,
                "beats": delta is not None and delta > 0,
            }
    protected: dict[str, dict[int, dict[str, Any]]] = {}
    for variant, base in (protected_pairs or {}).items():
        if variant not in metrics or base not in metrics:
            continue
        protected[variant] = {}
        for d in cutoffs:
            a = _get(metrics, variant, d, "roc_auc")
            b = _get(metrics, base, d, "roc_auc")
            protected[variant][d] = {
                "roc_auc": a,
                "roc_auc_default": b,
                "delta": None if a is None or b is None else a - b,
                "tpr_gap": {
                    attr: tpr_gap(metrics[variant].get(d, {}), attr) for attr in _attrs(metrics)
                },
                "tpr_gap_default": {
                    attr: tpr_gap(metrics[base].get(d, {}), attr) for attr in _attrs(metrics)
                },
            }
    report = {
        "meta": dict(meta or {}),
        "target_precision": target_precision,
        "cutoffs": cutoffs,
        "primary": primary,
        "reference": reference,
        "models": {name: dict(by_d) for name, by_d in metrics.items()},
        "primary_vs_reference": vs,
        "primary_beats_reference_everywhere": bool(vs) and all(v["beats"] for v in vs.values()),
        "protected_attributes": protected,
        "recommended_thresholds": dict(thresholds or {}),
    }
    out = jsonable(report)
    assert isinstance(out, dict)
    return out


def _get(metrics: Mapping[str, Mapping[int, Mapping[str, Any]]], m: str, d: int, k: str) -> Any:
    v = metrics.get(m, {}).get(d, {}).get(k)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def _attrs(metrics: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> list[str]:
    for by_d in metrics.values():
        for res in by_d.values():
            return sorted(res.get("fairness", {}))
    return []


def tpr_gap(res: Mapping[str, Any], attr: str, min_n: int = 30) -> float | None:
    """Largest TPR difference between groups of one attribute (groups of >= min_n students)."""
    groups = res.get("fairness", {}).get(attr, {})
    tprs = [
        g["tpr"]
        for g in groups.values()
        if g.get("n", 0) >= min_n and g.get("tpr") is not None and not _isnan(g["tpr"])
    ]
    return float(max(tprs) - min(tprs)) if len(tprs) >= 2 else None


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def write_json(report: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(dict(report)), indent=2, sort_keys=False) + "\n")
    return path


def _f(x: Any, nd: int = 3) -> str:
    if x is None or _isnan(x):
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{nd}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def auc_table(report: Mapping[str, Any], models: Sequence[str] | None = None) -> list[str]:
    """ROC-AUC per cut-off, one column per model, plus the primary-minus-reference delta."""
    names = list(models or report["models"])
    prim, ref = report["primary"], report["reference"]
    has_delta = prim in report["models"] and ref in report["models"]
    header = ["D", "n", *names] + ([f"{prim} - {ref}"] if has_delta else [])
    rows = []
    for d in report["cutoffs"]:
        key = str(d)
        any_model = next(iter(report["models"].values()))
        n = any_model.get(key, {}).get("n")
        row = [str(d), _f(n)]
        row += [_f(report["models"][m].get(key, {}).get("roc_auc")) for m in names]
        if has_delta:
            delta = report["primary_vs_reference"].get(key, {}).get("delta")
            row.append("-" if delta is None else f"{delta:+.3f}")
        rows.append(row)
    return _table(header, rows)


def write_markdown(report: Mapping[str, Any], path: Path, plots: Sequence[Path] = ()) -> Path:
    """Human-readable report: verdict, side-by-side AUCs, details, fairness, thresholds."""
    meta = report.get("meta", {})
    prim, ref = report["primary"], report["reference"]
    lines = ["# riskstream evaluation", ""]
    if meta:
        lines += [f"- {k}: {v}" for k, v in meta.items()]
        lines.append("")
    lines += [
        "Task: label 1 = Fail or Withdrawn; at cut-off day D every enrolment still registered "
        "at D is scored using only data up to D.",
        "",
        "## ROC-AUC by cut-off day (all models)",
        "",
        *auc_table(report),
        "",
    ]
    if report["primary_vs_reference"]:
        verdict = (
            f"**{prim} beats {ref} at every D.**"
            if report["primary_beats_reference_everywhere"]
            else f"**{prim} does NOT beat {ref} at every D** (see the delta column)."
        )
        lines += [verdict, ""]
    lines += [
        f"## Details per model (threshold = lowest reaching precision "
        f"{report['target_precision']:.2f} at that D)",
        "",
    ]
    for name, by_d in report["models"].items():
        rows = []
        for d in report["cutoffs"]:
            r = by_d.get(str(d))
            if not r:
                continue
            s = r.get("score") or {}
            rows.append(
                [
                    str(d),
                    _f(r["n"]),
                    _f(r["positives"]),
                    _f(r["roc_auc"]),
                    _f(r["pr_auc"]),
                    _f(r["threshold"], 2),
                    _f(r["precision"]),
                    _f(r["recall"]),
                    _f(r["f1"]),
                    _f(r["accuracy"]),
                    _f(r["ece"]),
                    _f(s.get("mse")),
                    _f(s.get("r2")),
                ]
            )
        lines += [f"### {name}", ""]
        lines += _table(
            [
                "D",
                "n",
                "pos",
                "ROC-AUC",
                "PR-AUC",
                "thr",
                "P",
                "R",
                "F1",
                "acc",
                "ECE",
                "MSE",
                "R²",
            ],
            rows,
        )
        lines.append("")
    lines += _fairness_section(report)
    lines += _module_section(report)
    lines += _protected_section(report)
    lines += _examples_section(report)
    lines += analysis_markdown(report)
    th = report.get("recommended_thresholds") or {}
    if th:
        lines += ["## Recommended alert thresholds", ""]
        for k, v in th.items():
            if isinstance(v, dict):
                v = ", ".join(
                    f"{kk}: {_f(vv) if isinstance(vv, float) else vv}" for kk, vv in v.items()
                )
            elif isinstance(v, float):
                v = _f(v)
            lines.append(f"- {k}: {v}")
        lines.append("")
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _focus_cutoff(report: Mapping[str, Any]) -> str:
    cut = [int(d) for d in report["cutoffs"]]
    return str(min(cut, key=lambda d: abs(d - 84))) if cut else "84"


def _fairness_section(report: Mapping[str, Any]) -> list[str]:
    d = _focus_cutoff(report)
    lines = [f"## Fairness at D = {d} (AUC / TPR / FPR by group)", ""]
    names = list(report["models"])
    attrs: set[str] = set()
    for m in names:
        attrs |= set(report["models"][m].get(d, {}).get("fairness", {}))
    for attr in sorted(attrs):
        groups: set[str] = set()
        for m in names:
            groups |= set(report["models"][m].get(d, {}).get("fairness", {}).get(attr, {}))
        rows = []
        for g in sorted(groups):
            row = [g]
            n = None
            for m in names:
                gm = report["models"][m].get(d, {}).get("fairness", {}).get(attr, {}).get(g, {})
                n = gm.get("n", n)
                row.append(f"{_f(gm.get('roc_auc'))} / {_f(gm.get('tpr'))} / {_f(gm.get('fpr'))}")
            rows.append([row[0], _f(n), *row[1:]])
        lines += [f"### {attr}", "", *_table([attr, "n", *names], rows), ""]
    return lines


def _module_section(report: Mapping[str, Any]) -> list[str]:
    prim = report["primary"]
    by_d = report["models"].get(prim) or next(iter(report["models"].values()))
    mods: set[str] = set()
    for r in by_d.values():
        mods |= set(r.get("per_module", {}))
    if not mods:
        return []
    names = list(report["models"])
    lines = [f"## ROC-AUC per module ({' / '.join(names)})", ""]
    rows = []
    for mod in sorted(mods):
        row = [mod]
        for d in report["cutoffs"]:
            vals = [
                _f(
                    report["models"][m]
                    .get(str(d), {})
                    .get("per_module", {})
                    .get(mod, {})
                    .get("roc_auc"),
                    2,
                )
                for m in names
            ]
            row.append(" / ".join(vals))
        rows.append(row)
    lines += _table(["module", *[f"D={d}" for d in report["cutoffs"]]], rows)
    return [*lines, ""]


def _examples_section(report: Mapping[str, Any]) -> list[str]:
    ex = report.get("explanation_examples") or []
    if not ex:
        return []
    rows = [
        [
            str(e["course_id"]),
            str(e["user_id"]),
            str(e["day"]),
            _f(e["risk"], 2),
            "Fail/Withdrawn" if e["label"] else "Pass/Distinction",
            e["explanation"],
        ]
        for e in ex
    ]
    header = ["course", "student", "day", "risk", "outcome", "explanation"]
    return ["## Example explanations (highest risk)", "", *_table(header, rows), ""]


def _protected_section(report: Mapping[str, Any]) -> list[str]:
    prot = report.get("protected_attributes") or {}
    if not prot:
        return []
    lines = [
        "## What adding protected attributes changes",
        "",
        "By default no model sees gender, age band, disability, IMD band or region. Each variant "
        "below is the same model trained with them; TPR gap = largest TPR difference between "
        "groups (n >= 30).",
        "",
    ]
    for variant, by_d in prot.items():
        attrs = sorted({a for r in by_d.values() for a in r.get("tpr_gap", {})})
        rows = []
        for d in report["cutoffs"]:
            r = by_d.get(str(d), {})
            row = [
                str(d),
                _f(r.get("roc_auc_default")),
                _f(r.get("roc_auc")),
                "-" if r.get("delta") is None else f"{r['delta']:+.3f}",
            ]
            gap0, gap1 = r.get("tpr_gap_default", {}), r.get("tpr_gap", {})
            row += [f"{_f(gap0.get(a), 2)} -> {_f(gap1.get(a), 2)}" for a in attrs]
            rows.append(row)
        header = ["D", "AUC default", "AUC +protected", "delta", *[f"TPR gap {a}" for a in attrs]]
        lines += [f"### {variant}", "", *_table(header, rows), ""]
    return lines


def write_plots(report: Mapping[str, Any], out: Path) -> list[Path]:
    """PNG plots: AUCs by cut-off, reliability per model, fairness TPR by group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    cut = report["cutoffs"]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, by_d in report["models"].items():
        for ax, key in zip(axes, ("roc_auc", "pr_auc"), strict=True):
            ys = [by_d.get(str(d), {}).get(key) for d in cut]
            ax.plot(cut, [math.nan if y is None else y for y in ys], marker="o", label=name)
    for ax, title in zip(axes, ("ROC-AUC", "PR-AUC"), strict=True):
        ax.set_xlabel("cut-off day D")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out / "auc_by_cutoff.png"))

    for name, by_d in report["models"].items():
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        for d in cut:
            cal = by_d.get(str(d), {}).get("calibration")
            if not cal:
                continue
            xs = [x for x, c in zip(cal["mean_pred"], cal["counts"], strict=True) if c]
            ys = [y for y, c in zip(cal["observed"], cal["counts"], strict=True) if c]
            ax.plot(xs, ys, marker=".", label=f"D={d} ECE={cal['ece']:.3f}")
        ax.set_xlabel("predicted risk")
        ax.set_ylabel("observed Fail/Withdrawn rate")
        ax.set_title(f"reliability: {name}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(_save(fig, out / f"reliability_{_safe(name)}.png"))

    d = _focus_cutoff(report)
    attrs = sorted(
        {a for by_d in report["models"].values() for a in by_d.get(d, {}).get("fairness", {})}
    )
    if attrs:
        fig, axes = plt.subplots(1, len(attrs), figsize=(4 * len(attrs), 4), squeeze=False)
        names = list(report["models"])
        for ax, attr in zip(axes[0], attrs, strict=True):
            groups = sorted(
                {
                    g
                    for m in names
                    for g in report["models"][m].get(d, {}).get("fairness", {}).get(attr, {})
                }
            )
            width = 0.8 / max(len(names), 1)
            for i, m in enumerate(names):
                fm = report["models"][m].get(d, {}).get("fairness", {}).get(attr, {})
                vals = [fm.get(g, {}).get("tpr") for g in groups]
                ax.bar(
                    [j + i * width for j in range(len(groups))],
                    [0.0 if v is None else v for v in vals],
                    width=width,
                    label=m,
                )
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
            ax.set_xticklabels(groups, rotation=45, ha="right", fontsize=7)
            ax.set_title(f"TPR by {attr} (D={d})")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        paths.append(_save(fig, out / "fairness_tpr.png"))
    return paths


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(report: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write report.json, the PNGs and report.md (which links them) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out) + analysis_plots(report, out)
    return {
        "json": write_json(report, out / "report.json"),
        "markdown": write_markdown(report, out / "report.md", plots),
        **{p.stem: p for p in plots},
    }
