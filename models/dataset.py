"""Day tensors for training and evaluation, built through the featurizer's table door.

One row per enrolment (course, student): ``x`` [N, T, n_day] day vectors from day 0 to
T-1, ``static`` [N, n_static], the outcome and the last day the student was registered, so
the trainer can mask days after withdrawal and the evaluation can keep only enrolments still
registered at a cut-off day D.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from models.features import N_ACT, Featurizer
from models.oulad import Oulad


@dataclass
class DayTensors:
    x: np.ndarray  # float32 [N, T, n_day]
    static: np.ndarray  # float32 [N, n_static]
    active: np.ndarray  # bool [N, T]: any click that day (engagement target)
    course_id: np.ndarray  # int64 [N]
    user_id: np.ndarray  # int64 [N]
    label: np.ndarray  # int64 [N]: 1 = Fail or Withdrawn
    final_score: np.ndarray  # float32 [N], NaN if unknown
    last_day: (
        np.ndarray
    )  # int64 [N]: last registered day (withdrawal day or course end); <0 = never
    length: np.ndarray  # int64 [N]: course length in days

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_days(self) -> int:
        return int(self.x.shape[1])

    def subset(self, idx: np.ndarray) -> DayTensors:
        return DayTensors(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def registered_at(self, day: int) -> np.ndarray:
        """Mask of enrolments still registered at ``day`` (the evaluation population)."""
        return self.last_day >= day

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> DayTensors:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in fields(cls)})


def build_day_tensors(
    oulad: Oulad,
    featurizer: Featurizer,
    presentations: tuple[str, ...] | None = None,
    module: str | None = None,
    n_days: int | None = None,
    max_students: int | None = None,
    seed: int = 0,
) -> DayTensors:
    """Vectorised over OULAD's tables (pandas/numpy; no per-event Python)."""
    enrol = oulad.enrolments
    if module is not None:
        enrol = enrol[enrol["code_module"] == module]
    if presentations is not None:
        enrol = enrol[enrol["code_presentation"].isin(list(presentations))]
    if max_students is not None and len(enrol) > max_students:
        enrol = enrol.sample(n=max_students, random_state=seed).sort_values(
            ["course_id", "user_id"]
        )
    enrol = enrol.reset_index(drop=True)
    calendars = oulad.calendars()
    lengths = enrol["course_id"].map({c: cal.length_days for c, cal in calendars.items()})
    length = lengths.to_numpy(np.int64)
    T = int(n_days if n_days is not None else (length.max() if len(length) else 1))
    users = set(enrol["user_id"].astype(int).tolist()) if max_students is not None else None
    frames = []
    for pres in sorted(set(enrol["code_presentation"].astype(str))):
        frames.append(oulad.event_table(module, pres, users))
    events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    key = pd.MultiIndex.from_arrays([enrol["course_id"], enrol["user_id"]])
    row = key.get_indexer(pd.MultiIndex.from_arrays([events["course_id"], events["user_id"]]))
    events = events[row >= 0]
    row = row[row >= 0]
    grade = events["grade"].to_numpy(np.float64) / 100.0
    accs = featurizer.table_accumulators(
        len(enrol),
        T,
        row,
        events["day"].to_numpy(),
        events["activity"].to_numpy(),
        events["count"].to_numpy(),
        events["submitted"].to_numpy(),
        grade,
    )
    x = np.zeros((len(enrol), T, featurizer.spec.n_day), dtype=np.float32)
    days = np.arange(T)
    cid = enrol["course_id"].to_numpy(np.int64)
    for c in np.unique(cid):
        sel = cid == c
        x[sel] = featurizer.day_vectors(accs[sel], days[None, :], calendars[int(c)])
    active = accs[..., :N_ACT].sum(axis=-1) > 0
    profiles = oulad.profiles()
    static = featurizer.static_matrix(
        [profiles.get((int(c), int(u))) for c, u in zip(cid, enrol["user_id"], strict=True)]
    )
    wd = enrol["withdraw_day"].to_numpy(np.float64)
    last = np.where(np.isnan(wd), length - 1, np.minimum(np.nan_to_num(wd), length - 1))
    return DayTensors(
        x=x,
        static=static,
        active=active,
        course_id=cid,
        user_id=enrol["user_id"].to_numpy(np.int64),
        label=enrol["label"].to_numpy(np.int64),
        final_score=enrol["final_score"].to_numpy(np.float32),
        last_day=last.astype(np.int64),
        length=length,
    )
