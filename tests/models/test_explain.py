from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from models.explain import direction, explain, feature_groups, reference_day, sentence

NAMES = (
    "clicks_content",
    "clicks_forum",
    "clicks_quiz",
    "clicks_total",
    "active",
    "submitted",
    "score",
    "deadline_days",
    "day_index",
)
IDX = {f: i for i, f in enumerate(NAMES)}


class QuizForumModel(torch.nn.Module):
    """Risk falls with cumulative quiz and forum clicks (log scale), quiz counting most."""

    def init_state(self, static: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"acc": static.new_zeros(static.shape[0], 2)}

    def step(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[Any, Any]:
        acc = state["acc"] + x[:, [IDX["clicks_quiz"], IDX["clicks_forum"]]]
        risk = torch.sigmoid(2.0 - 0.5 * acc[:, 0] - 0.1 * acc[:, 1])
        return {"acc": acc}, SimpleNamespace(risk=risk)


def _loaded(metrics: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(
        model=QuizForumModel(),
        spec=SimpleNamespace(day_features=NAMES),
        device=torch.device("cpu"),
        metrics=metrics or {},
    )


def _typical_day() -> dict[str, float]:
    ref = dict.fromkeys(NAMES, 0.0)
    ref.update(clicks_quiz=float(np.log1p(3)), clicks_forum=float(np.log1p(5)))
    ref.update(clicks_content=float(np.log1p(10)), clicks_total=float(np.log1p(18)), active=1.0)
    return ref


def test_no_quiz_activity_is_the_top_reason() -> None:
    window = np.zeros((14, len(NAMES)), dtype=np.float32)
    window[:, IDX["clicks_content"]] = np.log1p(12)
    window[:, IDX["clicks_forum"]] = np.log1p(1)  # 14 forum clicks vs a median of 70
    window[:, IDX["clicks_total"]] = np.log1p(13)
    window[:, IDX["active"]] = 1.0
    got = explain(_loaded(), window, np.zeros(2, dtype=np.float32), reference=_typical_day())
    assert got[0].feature == "quiz"
    assert got[0].text == "no quiz activity for 14 days"
    assert got[0].weight > 0.1
    forum = next(c for c in got if c.feature == "forum")
    assert forum.text == "forum visits down 80% against the course's median"
    assert 0 < forum.weight < got[0].weight
    assert all(c.feature != "content" for c in got)  # the model ignores content
    assert sentence(got).startswith("No quiz activity for 14 days; forum visits down 80%")


def test_reference_from_model_metrics_and_busy_student() -> None:
    window = np.zeros((10, len(NAMES)), dtype=np.float32)
    window[:, IDX["clicks_quiz"]] = np.log1p(6)  # twice the median: lowers the risk
    window[:, IDX["clicks_forum"]] = np.log1p(5)
    got = explain(_loaded({"reference_day": _typical_day()}), window, np.zeros(2), top_k=2)
    # nothing raises this student's risk: no reason is given (never "quiz visits up 100%"
    # as a reason for risk)
    assert got == []
    assert direction("quiz visits up 100% against a typical student's") == 1
    assert direction("no quiz activity for 14 days") == -1
    assert direction("average mark 85% on recent assessments") == 1
    assert direction("average mark 40% on recent assessments") == -1


def test_without_any_reference_the_oulad_typical_day_is_used() -> None:
    window = np.zeros((14, len(NAMES)), dtype=np.float32)
    window[:, IDX["clicks_forum"]] = np.log1p(0.5)  # 0.5 a day vs expm1(0.5889) = 0.80
    got = explain(_loaded(), window, np.zeros(2))
    assert got[0].feature == "quiz" and got[0].weight > 0
    assert got[0].text == "no quiz activity for 14 days"
    forum = next(c for c in got if c.feature == "forum")
    assert forum.text == "forum visits down 38% against a typical student's"


def test_groups_and_reference_day_and_bad_window() -> None:
    groups = {g.name: g for g in feature_groups(NAMES)}
    assert set(groups) == {"content", "forum", "quiz", "activity", "assessment"}
    assert groups["activity"].indices == (IDX["clicks_total"], IDX["active"])
    x = np.zeros((3, 4, len(NAMES)), dtype=np.float32)
    x[:, :, IDX["active"]] = [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    x[:, :, IDX["clicks_quiz"]] = np.log1p(np.array([1.0, 3.0, 7.0]))[:, None]
    ref = reference_day(x, NAMES)
    assert ref["active"] == 0.5
    assert ref["clicks_quiz"] == pytest.approx(np.log1p(3.0))
    with pytest.raises(ValueError, match="window must be"):
        explain(_loaded(), np.zeros((5, 3)), np.zeros(2))


def test_assessment_words() -> None:
    window = np.zeros((14, len(NAMES)), dtype=np.float32)
    window[3, IDX["submitted"]] = 1.0
    window[3, IDX["score"]] = 0.42
    groups = {g.name: g for g in feature_groups(NAMES)}
    from models.explain import describe

    ref = np.zeros(len(NAMES), dtype=np.float32)
    assert describe(groups["assessment"], window, ref, NAMES) == (
        "average mark 42% on recent assessments"
    )
    assert describe(groups["assessment"], window * 0, ref, NAMES) == (
        "no assessment submitted in the last 14 days"
    )


def test_weights_are_occlusion_deltas_of_a_registry_model(tmp_path: Any) -> None:
    from models.registry import Registry
    from models.testing import tiny_model

    version = tiny_model(tmp_path, hidden=8, seed=3)
    loaded = Registry(tmp_path).load(version)
    names = list(loaded.spec.day_features)
    rng = np.random.default_rng(0)
    window = rng.random((10, len(names))).astype(np.float32)
    window[:, names.index("clicks_quiz")] = 0.0
    static = rng.random(loaded.spec.n_static).astype(np.float32)
    ref = rng.random(len(names)).astype(np.float32)
    got = explain(loaded, window, static, reference=ref, top_k=20, min_weight=-1.0)
    assert got == sorted(got, key=lambda c: -c.weight)
    quiz = next(c for c in got if c.feature == "quiz")
    assert quiz.text == "no quiz activity for 10 days"
    occluded = window.copy()
    occluded[:, names.index("clicks_quiz")] = ref[names.index("clicks_quiz")]
    with torch.no_grad():
        s = torch.as_tensor(static[None])
        full = loaded.model(torch.as_tensor(window[None]), s).risk[0, -1].item()
        occ = loaded.model(torch.as_tensor(occluded[None]), s).risk[0, -1].item()
    assert quiz.weight == pytest.approx(full - occ, abs=1e-5)


def test_silence_everywhere_is_said_once() -> None:
    class Silence(QuizForumModel):
        def step(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[Any, Any]:
            acc = state["acc"] + x[:, [IDX["clicks_total"], IDX["clicks_quiz"]]]
            risk = torch.sigmoid(2.0 - 0.5 * acc[:, 0] - 0.3 * acc[:, 1])
            return {"acc": acc}, SimpleNamespace(risk=risk)

    loaded = _loaded()
    loaded.model = Silence()
    got = explain(loaded, np.zeros((14, len(NAMES)), dtype=np.float32), np.zeros(2))
    texts = [c.text for c in got]
    assert texts[0] == "no activity in the course for 14 days"
    assert not any(t.startswith("no quiz") for t in texts)


def test_explain_many_equals_one_at_a_time_for_mixed_window_lengths(tmp_path: Any) -> None:
    """The worker explains a batch's alerts in one replay; the answers must not change."""
    from models.explain import explain_many
    from models.registry import Registry
    from models.testing import tiny_model

    loaded = Registry(tmp_path).load(tiny_model(tmp_path, hidden=8, seed=5))
    rng = np.random.default_rng(0)
    n_day, n_static = loaded.spec.n_day, loaded.spec.n_static
    windows = [rng.random((t, n_day)).astype(np.float32) for t in (29, 5, 29, 1, 12, 5)]
    statics = [rng.random(n_static).astype(np.float32) for _ in windows]
    batched = explain_many(loaded, windows, statics)
    single = [explain(loaded, w, s) for w, s in zip(windows, statics, strict=True)]
    assert [[c.feature for c in cs] for cs in batched] == [[c.feature for c in cs] for cs in single]
    for bs, ss in zip(batched, single, strict=True):
        for b, s in zip(bs, ss, strict=True):
            assert b.text == s.text
            assert abs(b.weight - s.weight) < 1e-5
