"""Batched model steps for a whole micro-batch, run off the event loop.

Every student of a batch goes through the model together: committed-day steps (including
empty gap days and re-warm steps) are looped over the longest sequence with the active rows
selected, and every event's provisional step (committed state + open day so far) is one
tensor op over all events. The work runs in a single-thread executor so the event loop keeps
sending heartbeats while the model runs.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class StepPlan:
    """Inputs for one batch; rows index students, ``ev_*`` arrays index events."""

    states: dict[str, np.ndarray]  # committed state per student [S, ...] (zeros for init rows)
    init_rows: np.ndarray  # int64 [I]: students whose state is made by init_state(static)
    init_static: np.ndarray  # float32 [I, n_static]
    seqs: list[np.ndarray]  # per student float32 [K_s, n_day]: re-warm + committed days
    ev_student: np.ndarray  # int64 [E]: student row of each event
    ev_after: np.ndarray  # int64 [E]: steps of seqs[student] applied before this event
    ev_x: np.ndarray  # float32 [E, n_day]: open-day vector after folding the event


@dataclass
class StepResult:
    states: dict[str, np.ndarray]  # committed state after every seq step [S, ...]
    seq_risk: list[np.ndarray]  # per student [K_s] risk after each seq step
    ev_risk: np.ndarray  # float32 [E] provisional risk after each event


def state_shapes(model: Any, n_static: int, device: torch.device) -> dict[str, tuple[int, ...]]:
    """Per-row shape of every model state tensor (without the batch dim)."""
    with torch.inference_mode():
        st = model.init_state(torch.zeros(1, n_static, device=device))
    return {k: tuple(v.shape[1:]) for k, v in st.items()}


def run_plan(model: Any, device: torch.device, plan: StepPlan) -> StepResult:
    """The batch's model work (synchronous; the engine runs it in its executor)."""
    n_students = len(plan.seqs)
    with torch.inference_mode():
        state = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in plan.states.items()
        }
        if len(plan.init_rows):
            rows = torch.from_numpy(plan.init_rows).to(device)
            init = model.init_state(torch.from_numpy(plan.init_static).to(device))
            for k, v in init.items():
                if k not in state:  # a model whose state keys are all new (first batch)
                    state[k] = torch.zeros((n_students, *v.shape[1:]), device=device)
                state[k][rows] = v.to(state[k].dtype)
        lens = np.array([len(s) for s in plan.seqs], dtype=np.int64)
        max_k = int(lens.max()) if n_students else 0
        n_day = plan.ev_x.shape[1]
        seq_risk = np.zeros((n_students, max_k), dtype=np.float32)
        x_pad = np.zeros((n_students, max_k, n_day), dtype=np.float32)
        for i, s in enumerate(plan.seqs):
            if len(s):
                x_pad[i, : len(s)] = s
        x_all = torch.from_numpy(x_pad).to(device)
        n_ev = len(plan.ev_student)
        ev_state = {
            k: torch.empty((n_ev, *v.shape[1:]), dtype=v.dtype, device=device)
            for k, v in state.items()
        }
        ev_student = torch.from_numpy(plan.ev_student).to(device)
        for t in range(max_k + 1):
            sel = np.nonzero(plan.ev_after == t)[0]
            if len(sel):
                sel_t = torch.from_numpy(sel).to(device)
                for k, v in state.items():
                    ev_state[k][sel_t] = v[ev_student[sel_t]]
            if t == max_k:
                break
            active_np = np.nonzero(lens > t)[0]
            active = torch.from_numpy(active_np).to(device)
            sub = {k: v[active] for k, v in state.items()}
            new, out = model.step(sub, x_all[active, t])
            for k, v in new.items():
                state[k][active] = v
            seq_risk[active_np, t] = out.risk.float().cpu().numpy()
        if n_ev:
            _, out = model.step(ev_state, torch.from_numpy(plan.ev_x).to(device))
            ev_risk = out.risk.float().cpu().numpy()
        else:
            ev_risk = np.zeros(0, dtype=np.float32)
        states = {k: v.float().cpu().numpy() for k, v in state.items()}
    return StepResult(
        states=states,
        seq_risk=[seq_risk[i, : lens[i]] for i in range(n_students)],
        ev_risk=ev_risk,
    )


class InferenceEngine:
    """Runs plans on the configured device in one worker thread (model calls never overlap)."""

    def __init__(self, threads: int = 0) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskstream-infer")
        if threads > 0:
            self._pool.submit(torch.set_num_threads, threads).result()

    async def run(self, model: Any, device: torch.device, plan: StepPlan) -> StepResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, run_plan, model, device, plan)

    async def call(self, fn: Any, *args: Any) -> Any:
        """Any other model work (loading, explanations) on the same thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
