import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskstream.cli import app
from tests.conftest import OULAD_DIR


@pytest.mark.slow
def test_evaluate_writes_report_on_an_oulad_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (OULAD_DIR / "studentInfo.parquet").is_file():
        pytest.skip(f"OULAD not found in {OULAD_DIR}")
    from models.testing import tiny_model

    reg = tmp_path / "registry"
    version = tiny_model(reg, hidden=8)
    monkeypatch.setenv("RISKSTREAM_MODEL_REGISTRY", str(reg))
    monkeypatch.setenv("RISKSTREAM_DATA_DIR", str(OULAD_DIR))
    monkeypatch.setenv("RISKSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "reports"
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--out",
            str(out),
            "--max-students",
            "250",
            "--cutoffs",
            "14,56",
            "--examples",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["meta"]["model_version"] == version and rep["meta"]["validation"] == "2014B"
    assert set(rep["models"]) == {
        "lstm",
        "logreg",
        "lightgbm",
        "lightgbm+protected",
        "lstm+lightgbm",  # the stack: both models' logits averaged
    }
    boot = rep["paired_bootstrap"]["lstm - lightgbm"]["56"]
    assert boot[0] <= boot[1]  # a 95 % interval of the paired AUC difference
    d14, d56 = rep["models"]["lightgbm"]["14"], rep["models"]["lightgbm"]["56"]
    # only enrolments still registered at D are scored: the population shrinks with D
    assert 0 < d56["n"] <= d14["n"] <= 250
    assert 0.5 < d56["roc_auc"] <= 1.0  # engagement up to day 56 carries real signal
    assert rep["models"]["lstm"]["56"]["score"]["n"] > 0
    assert set(rep["models"]["lstm"]["14"]["fairness"]) == {
        "gender",
        "age_band",
        "disability",
        "imd_band",
    }
    th = json.loads((out / "thresholds.json").read_text())
    assert 0 <= th["rearm"] <= th["medium"] <= th["high"] <= 1
    assert len(rep["explanation_examples"]) == 2
    md = (out / "report.md").read_text()
    assert (
        "| D | n | lstm | logreg | lightgbm | lightgbm+protected | lstm+lightgbm "
        "| lstm - lightgbm |" in md
    )
    assert "## Paired bootstrap" in md
    assert (out / "auc_by_cutoff.png").stat().st_size > 1000
    assert list((tmp_path / "cache").glob("days-*.npz"))  # shared with the trainer's cache
    # analysis sections: importance per cut-off, partial dependence, segments, drift
    imp = rep["importance"]["56"]["features"]
    assert len(imp) == 17 + 8 and all(v["mean_abs_change"] >= 0 for v in imp.values())
    assert len(rep["partial_dependence"]) == 3
    for item in rep["partial_dependence"].values():
        assert len(item["mean_risk"]["56"]) == len(item["grid"])
    seg = rep["segments"]
    assert len(seg["descriptions"]) == 4 and sum(r["n"] for r in seg["holdout"]["56"]) == d56["n"]
    assert rep["drift"]["courses"]
    assert "## What drives risk overall" in md and "## Student segments" in md
    assert (out / "importance.png").stat().st_size > 1000


def test_evaluate_without_a_model_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKSTREAM_MODEL_REGISTRY", str(tmp_path / "empty"))
    res = CliRunner().invoke(app, ["evaluate", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert "riskstream train" in res.output
    res = CliRunner().invoke(app, ["evaluate", "--cutoffs", "a,b"])
    assert res.exit_code == 1 and "--cutoffs" in res.output


def _one_presentation_folder(dst: Path, module: str, pres: str, users: int) -> None:
    """A folder holding only one module-presentation (as a site with one term would)."""
    import pandas as pd

    dst.mkdir(parents=True)
    info = pd.read_parquet(OULAD_DIR / "studentInfo.parquet")
    info = info[(info.code_module == module) & (info.code_presentation == pres)]
    keep = set(info.id_student.sort_values().head(users))
    ass = pd.read_parquet(OULAD_DIR / "assessments.parquet")
    ass = ass[(ass.code_module == module) & (ass.code_presentation == pres)]
    for name in ("courses", "assessments", "vle", "studentInfo", "studentRegistration",
                 "studentAssessment", "studentVle"):
        df = pd.read_parquet(OULAD_DIR / f"{name}.parquet")
        if "code_module" in df:
            df = df[(df.code_module == module) & (df.code_presentation == pres)]
        if "id_student" in df:
            df = df[df.id_student.isin(keep)]
        if name == "studentAssessment":
            df = df[df.id_assessment.isin(set(ass.id_assessment))]
        df.to_parquet(dst / f"{name}.parquet")


@pytest.mark.slow
def test_evaluate_any_folder_one_presentation_and_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (OULAD_DIR / "studentInfo.parquet").is_file():
        pytest.skip(f"OULAD not found in {OULAD_DIR}")
    from models.testing import tiny_model

    reg = tmp_path / "registry"
    tiny_model(reg, hidden=8)
    monkeypatch.setenv("RISKSTREAM_MODEL_REGISTRY", str(reg))
    monkeypatch.setenv("RISKSTREAM_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "one"
    _one_presentation_folder(folder, "GGG", "2014B", 120)
    out = tmp_path / "rep"
    args = ["evaluate", "--data", str(folder), "--presentation", "2014B", "--out", str(out),
            "--cutoffs", "28,56", "--examples", "0"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["models"]) == {"lstm"}  # nothing older to fit baselines on: skipped
    assert rep["meta"]["data"] == str(folder)
    fair = rep["fairness_at_worker_threshold"]
    assert set(fair["by_day"]["56"]) == {"gender", "age_band", "disability", "imd_band"}
    g = fair["by_day"]["56"]["gender"]["groups"]
    assert sum(v["n"] for v in g.values()) == rep["models"]["lstm"]["56"]["n"]
    assert "Fairness at the worker's act-on threshold" in (out / "report.md").read_text()
    # the tensor cache is keyed by the data: the full folder's tensors are not served here
    assert len(list((tmp_path / "cache").glob("days-*.npz"))) == 1

    res = CliRunner().invoke(app, [*args[:4], "2013J", *args[5:]])
    assert res.exit_code == 1 and "2013J is not in" in res.output
    (folder / "vle.parquet").unlink()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1 and "vle.parquet is missing" in res.output
    assert "Traceback" not in res.output
