"""Why is this student at risk? Occlusion by feature group, said in a teacher's words.

For one prediction we replay the recent window through the model once as it is and once per
feature group with that group's days replaced by the course's typical day (the reference).
The risk difference is the group's contribution: positive = what the student did (or did
not do) in that group raises the risk compared with a typical student. All replays run as
one batch, so an explanation costs one window of model steps.

The text comes from the window itself ("no quiz activity for 14 days") or from comparing it
with the reference ("forum visits down 80% against the course's median").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from contracts import Contribution

#: teacher-facing names of the canonical activity types
LABELS: dict[str, str] = {
    "content": "course content",
    "resource": "resource",
    "forum": "forum",
    "quiz": "quiz",
    "assignment": "assignment",
    "url": "link",
    "wiki": "wiki",
    "glossary": "glossary",
    "collaborate": "live session",
    "course_view": "course page",
    "other": "other",
}
#: calendar features are not behaviour: never occluded or explained
CALENDAR_FEATURES = frozenset({"deadline_days", "day_index"})
CLICK_PREFIX = "clicks_"
#: fallback reference: OULAD 2013B+2013J students still registered at day 196, days 0..196
#: (``reference_day``); used when neither the caller nor the model supplies one
OULAD_TYPICAL_DAY: dict[str, float] = {
    "clicks_content": 0.7759,
    "clicks_resource": 0.1059,
    "clicks_forum": 0.5889,
    "clicks_quiz": 0.289,
    "clicks_assignment": 0.0251,
    "clicks_url": 0.071,
    "clicks_course_view": 0.6276,
    "clicks_total": 1.6551,
    "active": 0.2792,
    "submitted": 0.0305,
    "score": 0.0224,
}
COURSE = "the course's median"
TYPICAL = "a typical student's"


class _Spec(Protocol):
    @property
    def day_features(self) -> tuple[str, ...]: ...


class _Loaded(Protocol):
    """What explain needs of a registry LoadedModel."""

    @property
    def model(self) -> Any: ...
    @property
    def spec(self) -> _Spec: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def metrics(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FeatureGroup:
    name: str  # e.g. "quiz", "activity", "assessment"
    label: str  # teacher words, e.g. "quiz"
    indices: tuple[int, ...]  # day-feature columns occluded together
    clicks: tuple[int, ...]  # columns holding log1p(clicks) (for the words)


def feature_groups(day_features: Sequence[str]) -> list[FeatureGroup]:
    """Groups the occlusion switches off together: one per activity type, overall activity,
    assessments. Calendar features stay as they are."""
    names = list(day_features)
    groups: list[FeatureGroup] = []
    for i, f in enumerate(names):
        if f.startswith(CLICK_PREFIX) and f != "clicks_total":
            act = f[len(CLICK_PREFIX) :]
            groups.append(FeatureGroup(act, LABELS.get(act, act.replace("_", " ")), (i,), (i,)))
    overall = tuple(names.index(f) for f in ("clicks_total", "active") if f in names)
    if overall:
        total = tuple(names.index(f) for f in ("clicks_total",) if f in names)
        groups.append(FeatureGroup("activity", "any", overall, total))
    assess = tuple(names.index(f) for f in ("submitted", "score") if f in names)
    if assess:
        groups.append(FeatureGroup("assessment", "assessment", assess, ()))
    known = {i for g in groups for i in g.indices}
    for i, f in enumerate(names):
        if i not in known and f not in CALENDAR_FEATURES:
            groups.append(FeatureGroup(f, f.replace("_", " "), (i,), ()))
    return groups


def reference_day(x: np.ndarray, day_features: Sequence[str]) -> dict[str, float]:
    """The course's typical day: per feature, the median over students of their mean day
    (click features: the median of clicks per day, stored as log1p like the features).

    ``x`` is [N, T, n_day] (one course or the training set). Store it with the model
    (``metrics["reference_day"]``) or per course, and pass it to :func:`explain`.
    """
    if x.ndim != 3 or x.shape[2] != len(day_features):
        raise ValueError(f"x must be [N, T, {len(day_features)}], got {x.shape}")
    out = {}
    for i, f in enumerate(day_features):
        col = x[:, :, i].astype(np.float64)
        if f.startswith(CLICK_PREFIX):
            # median of clicks per day, in clicks (a mean of logs would understate it)
            out[f] = float(np.log1p(np.median(np.expm1(col).mean(axis=1))))
        else:
            out[f] = float(np.median(col.mean(axis=1)))
    return out


def _reference_vector(
    reference: Mapping[str, float] | np.ndarray | None,
    loaded: _Loaded,
    names: Sequence[str],
) -> np.ndarray:
    if reference is None:
        reference = loaded.metrics.get("reference_day") if loaded.metrics else None
    if reference is None:
        reference = OULAD_TYPICAL_DAY
    if isinstance(reference, Mapping):
        return np.asarray([float(reference.get(f, 0.0)) for f in names], dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    if ref.shape != (len(names),):
        raise ValueError(f"reference must have {len(names)} values (one per day feature)")
    return ref


@torch.no_grad()
def _replay(loaded: _Loaded, windows: np.ndarray, static: np.ndarray, state: Any) -> np.ndarray:
    """Risk after the last day of each window in the batch [B, T, n_day].

    ``static`` is one vector for every row [n_static] or one per row [B, n_static].
    """
    model = loaded.model
    dev = loaded.device
    x = torch.as_tensor(windows, dtype=torch.float32, device=dev)
    b = x.shape[0]
    rows = static if static.ndim == 2 else np.repeat(static[None, :], b, axis=0)
    s = torch.as_tensor(rows, dtype=torch.float32, device=dev)
    if state is None:
        st = model.init_state(s)
    else:
        st = {k: v.to(dev).expand(b, *v.shape[1:]).contiguous() for k, v in state.items()}
    risk = torch.full((b,), float("nan"))
    for t in range(x.shape[1]):
        st, out = model.step(st, x[:, t])
        risk = out.risk
    return np.asarray(risk.detach().cpu().numpy(), dtype=np.float64)


def _trailing_zero_days(window: np.ndarray, idx: Sequence[int]) -> int:
    if not idx:
        return 0
    busy = (np.abs(window[:, list(idx)]) > 0).any(axis=1)
    if not busy.any():
        return int(window.shape[0])
    return int(window.shape[0] - 1 - np.flatnonzero(busy)[-1])


def describe(
    group: FeatureGroup,
    window: np.ndarray,
    reference: np.ndarray,
    names: Sequence[str],
    against: str = COURSE,
) -> str:
    """Teacher words for one group over the window (T days), compared with ``against``."""
    t = window.shape[0]
    label = group.label
    activity = "activity in the course" if label == "any" else f"{label} activity"
    if group.name == "assessment":
        sub = [names.index("submitted")] if "submitted" in names else list(group.indices)
        quiet = _trailing_zero_days(window, sub)
        if quiet >= t:
            return f"no assessment submitted in the last {t} days"
        if "score" in names:
            sc = window[:, names.index("score")]
            if (sc > 0).any():
                return f"average mark {100 * float(sc[sc > 0].mean()):.0f}% on recent assessments"
        return f"last assessment submitted {quiet} days ago"
    quiet = _trailing_zero_days(window, group.indices)
    if quiet >= min(7, t):
        return f"no {activity} for {quiet} days"
    if group.clicks:
        mine = float(np.expm1(window[:, list(group.clicks)]).sum())
        typical = float(np.expm1(reference[list(group.clicks)]).sum()) * t
        noun = "clicks in the course" if label == "any" else f"{label} visits"
        if typical >= 1.0:
            change = mine / typical - 1.0
            if change <= -0.3:
                return f"{noun} down {-change:.0%} against {against}"
            if change >= 2.0:
                return f"{noun} {change + 1:.0f} times {against}"
            if change >= 0.3:
                return f"{noun} up {change:.0%} against {against}"
    busy = int((np.abs(window[:, list(group.indices)]) > 0).any(axis=1).sum())
    return f"{activity} on {busy} of the last {t} days"


def explain(
    loaded: _Loaded,
    window: np.ndarray,
    static: np.ndarray,
    *,
    reference: Mapping[str, float] | np.ndarray | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
    top_k: int = 3,
    min_weight: float = 0.005,
) -> list[Contribution]:
    """Top contributing feature groups of the risk after the window's last day.

    ``window`` [T, n_day] = the recent day vectors (oldest first); ``static`` [n_static];
    ``reference`` = the course's typical day (dict by feature name or [n_day]; default
    ``loaded.metrics["reference_day"]``, else ``OULAD_TYPICAL_DAY``); ``state`` = model state before
    the window's first day, batch 1 (default: the model's initial state). Returns the groups
    that raise the risk most, strongest first (at most ``top_k``); if none raises it by
    ``min_weight``, the single strongest group either way.
    """
    return explain_many(
        loaded,
        [window],
        [static],
        reference=reference,
        state=state,
        top_k=top_k,
        min_weight=min_weight,
    )[0]


def explain_many(
    loaded: _Loaded,
    windows: Sequence[np.ndarray],
    statics: Sequence[np.ndarray],
    *,
    reference: Mapping[str, float] | np.ndarray | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
    top_k: int = 3,
    min_weight: float = 0.005,
) -> list[list[Contribution]]:
    """``explain`` for many predictions at once: one occlusion replay per window length.

    A worker raises many alerts in one batch; replaying each alone costs a model step per
    day per alert, batching them costs a step per day.
    """
    names = list(loaded.spec.day_features)
    arrs = [np.asarray(w, dtype=np.float32) for w in windows]
    for w in arrs:
        if w.ndim != 2 or w.shape[1] != len(names) or w.shape[0] == 0:
            raise ValueError(f"window must be [T>0, {len(names)}] day vectors, got {w.shape}")
    if state is not None and len(arrs) != 1:
        raise ValueError("a starting state can only be given for one window")
    ref = _reference_vector(reference, loaded, names)
    against = COURSE if reference is not None else TYPICAL
    groups = feature_groups(names)
    g1 = len(groups) + 1
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(arrs):
        by_len.setdefault(w.shape[0], []).append(i)
    weights: list[np.ndarray] = [np.empty(0)] * len(arrs)
    for items in by_len.values():
        batch = np.repeat(np.stack([arrs[i] for i in items]), g1, axis=0)  # item-major
        for n in range(len(items)):
            for k, g in enumerate(groups, start=1):
                batch[n * g1 + k][:, list(g.indices)] = ref[list(g.indices)]
        rows = np.repeat(
            np.stack([np.asarray(statics[i], dtype=np.float32) for i in items]), g1, axis=0
        )
        risks = _replay(loaded, batch, rows, state).reshape(len(items), g1)
        for n, i in enumerate(items):
            weights[i] = risks[n, 0] - risks[n, 1:]
    return [
        _choose(
            weights[i],
            groups,
            [describe(g, arrs[i], ref, names, against) for g in groups],
            top_k,
            min_weight,
        )
        for i in range(len(arrs))
    ]


def _choose(
    weights: np.ndarray,
    groups: Sequence[FeatureGroup],
    texts: list[str],
    top_k: int,
    min_weight: float,
) -> list[Contribution]:
    """The groups that raise the risk most, without saying the same silence twice."""
    order = np.argsort(-weights, kind="stable")
    chosen: list[int] = []
    for i in (int(i) for i in order if weights[i] >= min_weight):
        if len(chosen) == top_k:
            break
        if direction(texts[i]) > 0:
            continue  # "more than typical" never reads as a reason for higher risk
        if _type_silence(groups[i], texts[i]) and any(
            _all_silent(groups[j], texts[j]) for j in chosen
        ):
            continue  # "no quiz activity" adds nothing to "no activity in the course"
        if _all_silent(groups[i], texts[i]):
            chosen = [j for j in chosen if not _type_silence(groups[j], texts[j])]
        chosen.append(i)
    if not chosen:  # nothing raises the risk in words that point that way: say nothing
        return []
    return [
        Contribution(feature=groups[i].name, weight=float(weights[i]), text=texts[i])
        for i in chosen
    ]


def direction(text: str) -> int:
    """+1 when the words describe more or better than typical (which can never be a
    reason for higher risk), -1 for less or worse, 0 when neutral."""
    if " up " in f" {text} " or " times " in f" {text} ":
        return 1
    if text.startswith("average mark "):
        try:
            mark = float(text.split()[2].rstrip("%"))
        except (IndexError, ValueError):
            return 0
        return 1 if mark >= 60 else -1
    if text.startswith("no ") or " down " in f" {text} ":
        return -1
    return 0


def _all_silent(group: FeatureGroup, text: str) -> bool:
    return group.name == "activity" and text.startswith("no activity")


def _type_silence(group: FeatureGroup, text: str) -> bool:
    return group.name != "activity" and bool(group.clicks) and text.startswith("no ")


def sentence(contributions: Sequence[Contribution]) -> str:
    """The contributions as one sentence (RiskAlert.explanation)."""
    texts = [c.text for c in contributions]
    if not texts:
        return ""
    s = "; ".join(texts)
    return s[0].upper() + s[1:] + "."
