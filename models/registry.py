"""Versioned model directories with a ``current`` pointer.

Layout under ``root``::

    v0001/  model.pt (state_dict)  model.json (kind + constructor config)
            spec.json (feature spec + its hash)  thresholds.json  metrics.json
            calibration.json (optional: risk calibration per day band, models/calibration.py)
            data.json (training data summary)  meta.json (version, created, parent)
    current            text file holding the version in service, e.g. "v0002"

A version directory is written under a temporary name and renamed into place, so readers never
see half a model. Loading recomputes the spec hash with the running featurizer and refuses a
mismatch: a model must see exactly the features it was trained on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from contracts import RiskLevel
from models.calibration import DayBandCalibrator
from models.device import resolve_device
from models.features import FeatureSpec, Featurizer

_VERSION_RE = re.compile(r"^v(\d{4,})$")


class RegistryError(RuntimeError):
    """A registry operation cannot go ahead; the message says what to do."""


class SpecMismatchError(RegistryError):
    """The model was trained on other features than the running featurizer computes."""


@dataclass
class Thresholds:
    """The alert policy's parameters (see ``stream_app/alerting.py``).

    ``high`` is the one level a teacher is meant to act on: an alert is raised when the
    student's calibrated risk has stayed at or above it for ``persist_days`` course days in
    a row. ``medium`` is "watch": shown on the at-risk list, never sent as an alert.
    ``rearm``: after an alert the student is re-armed once risk falls below it;
    ``cooldown_days`` between two alerts of one student; no alert before course day
    ``min_days`` (counted from the course start, or from a later enrolment); at most
    ``day_cap`` of a course newly alerted on one day and ``week_cap`` in seven days.
    """

    medium: float = 0.5
    high: float = 0.7
    rearm: float = 0.4
    min_days: int = 7
    cooldown_days: int = 7
    persist_days: int = 3
    day_cap: float = 0.05
    week_cap: float = 0.10

    def __post_init__(self) -> None:
        if not 0.0 <= self.rearm <= self.medium <= self.high <= 1.0:
            raise ValueError(
                f"thresholds need 0 <= rearm <= medium <= high <= 1, got rearm={self.rearm} "
                f"medium={self.medium} high={self.high}"
            )
        if self.persist_days < 1 or not 0.0 < self.day_cap <= self.week_cap <= 1.0:
            raise ValueError(
                f"policy needs persist_days >= 1 and 0 < day_cap <= week_cap <= 1, got "
                f"persist_days={self.persist_days} day_cap={self.day_cap} "
                f"week_cap={self.week_cap}"
            )

    def level(self, risk: float) -> RiskLevel:
        if risk >= self.high:
            return RiskLevel.HIGH
        if risk >= self.medium:
            return RiskLevel.MEDIUM
        return RiskLevel.LOW

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        base = cls()
        return cls(
            medium=float(data["medium"]),
            high=float(data["high"]),
            rearm=float(data["rearm"]),
            min_days=int(data["min_days"]),
            cooldown_days=int(data["cooldown_days"]),
            persist_days=int(data.get("persist_days", base.persist_days)),
            day_cap=float(data.get("day_cap", base.day_cap)),
            week_cap=float(data.get("week_cap", base.week_cap)),
        )


@dataclass
class LoadedModel:
    version: str
    model: nn.Module  # in eval mode, on ``device``
    spec: FeatureSpec
    featurizer: Featurizer
    thresholds: Thresholds
    metrics: dict[str, Any]
    device: torch.device
    kind: str = "lstm"
    data_summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    calibrator: DayBandCalibrator = field(default_factory=DayBandCalibrator)

    def calibrate(self, risk: np.ndarray | float, day: np.ndarray | int) -> np.ndarray:
        """The risk teachers see: the model's risk through the version's calibration."""
        return self.calibrator.apply(risk, day)

    def relative(
        self,
        risk: np.ndarray | float,
        day: np.ndarray | int,
        mean: np.ndarray | float,
        count: np.ndarray | float,
    ) -> np.ndarray:
        """The act-on risk: calibrated risk read against the course cohort's mean logit over
        ``count`` students (``models.cohort``); the calibrated risk itself without a cohort."""
        return self.calibrator.relative(risk, day, mean, count)


def model_class(kind: str) -> type[nn.Module]:
    """Model class for a registry ``kind`` ('lstm', 'cnn', 'cnn_lstm', 'ensemble')."""
    if kind == "lstm":
        from models.lstm import LstmRisk

        return LstmRisk
    if kind == "cnn":
        from models.cnn import CnnRisk

        return CnnRisk
    if kind == "cnn_lstm":
        from models.cnn_lstm import CnnLstmRisk

        return CnnLstmRisk
    if kind == "ensemble":
        from models.ensemble import EnsembleRisk

        return EnsembleRisk
    raise RegistryError(
        f"unknown model kind {kind!r}; expected 'lstm', 'cnn', 'cnn_lstm' or 'ensemble'"
    )


_CORE_FILES = frozenset(
    {
        "model.json",
        "spec.json",
        "thresholds.json",
        "calibration.json",
        "metrics.json",
        "data.json",
        "meta.json",
    }
)
_EXTRA_RE = re.compile(r"^[a-z][a-z0-9_]{0,60}\.json$")


def _extra_name(name: str) -> str:
    if not _EXTRA_RE.match(name):
        raise RegistryError(f"extra registry file names are lower_snake.json, got {name!r}")
    return name


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading ----------------------------------------------------------------------
    def _version_dirs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
        return sorted(names, key=lambda n: int(n[1:]))

    def current_version(self) -> str | None:
        ptr = self.root / "current"
        if ptr.is_file():
            v = ptr.read_text().strip()
            if v and (self.root / v).is_dir():
                return v
        return None

    def versions(self) -> list[dict[str, Any]]:
        """One summary per version, oldest first (for the API and the CLI)."""
        cur = self.current_version()
        out = []
        for v in self._version_dirs():
            d = self.root / v
            meta = _read_json(d / "meta.json") if (d / "meta.json").is_file() else {}
            metrics = _read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {}
            data = _read_json(d / "data.json") if (d / "data.json").is_file() else {}
            out.append(
                {
                    "version": v,
                    "current": v == cur,
                    "kind": meta.get("kind"),
                    "created": meta.get("created"),
                    "parent": meta.get("parent"),
                    "spec_hash": meta.get("spec_hash"),
                    "thresholds": _read_json(d / "thresholds.json")
                    if (d / "thresholds.json").is_file()
                    else None,
                    "metrics": metrics,
                    "data": data,
                }
            )
        return out

    def load(
        self,
        version: str | None = None,
        device: str = "cpu",
        expected_spec: FeatureSpec | None = None,
    ) -> LoadedModel:
        """Load a version (default: current) in eval mode; refuses a feature-spec mismatch."""
        v = version or self.current_version()
        if v is None:
            raise RegistryError(
                f"no current model in {self.root}; train one with `riskstream train` "
                "(or `riskstream train --quick`)"
            )
        d = self.root / v
        if not (d / "model.pt").is_file():
            known = ", ".join(self._version_dirs()) or "none"
            raise RegistryError(f"model version {v} not found in {self.root} (have: {known})")
        spec_doc = _read_json(d / "spec.json")
        stored_hash = str(spec_doc["hash"])
        try:
            running = FeatureSpec(
                tuple(spec_doc["spec"]["day_features"]), tuple(spec_doc["spec"]["static_features"])
            )
        except ValueError as exc:
            raise SpecMismatchError(
                f"model {v} uses features the running featurizer does not know ({exc}); "
                "retrain it with `riskstream train` or run the code it was trained with"
            ) from None
        if running.hash() != stored_hash:
            raise SpecMismatchError(
                f"model {v} was trained with feature spec {stored_hash[:12]} (featurizer "
                f"v{spec_doc['spec'].get('version')}) but the running featurizer gives "
                f"{running.hash()[:12]} (v{running.version}); retrain with `riskstream train` "
                "or deploy the code the model was trained with"
            )
        if expected_spec is not None and expected_spec.hash() != stored_hash:
            raise SpecMismatchError(
                f"model {v} was trained with feature spec {stored_hash[:12]} but this worker "
                f"is configured for {expected_spec.hash()[:12]}; publish a model trained on "
                "the configured spec or change the worker's spec"
            )
        info = _read_json(d / "model.json")
        kind = str(info["kind"])
        model = model_class(kind)(**info["config"])
        dev = resolve_device(device)
        state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.to(dev).eval()
        return LoadedModel(
            version=v,
            model=model,
            spec=running,
            featurizer=Featurizer(running),
            thresholds=Thresholds.from_dict(_read_json(d / "thresholds.json")),
            metrics=_read_json(d / "metrics.json"),
            device=dev,
            kind=kind,
            data_summary=_read_json(d / "data.json"),
            meta=_read_json(d / "meta.json"),
            calibrator=DayBandCalibrator.from_dict(
                _read_json(d / "calibration.json") if (d / "calibration.json").is_file() else None
            ),
        )

    # -- writing ----------------------------------------------------------------------
    def publish(
        self,
        model: nn.Module,
        spec: FeatureSpec,
        thresholds: Thresholds,
        metrics: dict[str, Any],
        data_summary: dict[str, Any],
        *,
        make_current: bool = True,
        parent: str | None = None,
        notes: str = "",
        calibration: DayBandCalibrator | None = None,
        extras: dict[str, Any] | None = None,
    ) -> str:
        """Write a new version directory atomically; returns its name ("v0001", ...).

        ``extras`` are more JSON files of the version (e.g. ``drift_reference.json``), written
        in the same atomic step so a worker that hot-reloads the version sees them."""
        kind = getattr(model, "kind", None)
        config = getattr(model, "config", None)
        if not isinstance(kind, str) or not callable(config):
            raise RegistryError("publish needs a riskstream model (LstmRisk or CnnLstmRisk)")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".publish-", dir=self.root))
        try:
            state = {k: t.detach().cpu() for k, t in model.state_dict().items()}
            torch.save(state, tmp / "model.pt")
            _write_json(tmp / "model.json", {"kind": kind, "config": config()})
            _write_json(tmp / "spec.json", {"spec": spec.to_dict(), "hash": spec.hash()})
            _write_json(tmp / "thresholds.json", thresholds.to_dict())
            _write_json(tmp / "metrics.json", metrics)
            _write_json(tmp / "data.json", data_summary)
            if calibration is not None and not calibration.identity:
                _write_json(tmp / "calibration.json", calibration.to_dict())
            for name, doc in (extras or {}).items():
                _write_json(tmp / _extra_name(name), doc)
            version = self._place(
                tmp,
                {
                    "kind": kind,
                    "created": datetime.now(UTC).isoformat(),
                    "spec_hash": spec.hash(),
                    "parent": parent,
                    "notes": notes,
                },
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if make_current:
            self.set_current(version)
        return version

    def import_version(
        self, src: Path, make_current: bool = True, replace_json: dict[str, Any] | None = None
    ) -> str:
        """Copy a version directory from elsewhere (e.g. a shipped model) in as the next version.

        Its meta keeps where it came from; loading still checks its feature spec.
        ``replace_json`` writes these JSON files over the copied ones (e.g. a new
        ``thresholds.json`` and ``calibration.json`` for the same weights).
        """
        src = Path(src)
        for name in ("model.pt", "model.json", "spec.json", "thresholds.json"):
            if not (src / name).is_file():
                raise RegistryError(f"{src} is not a model version: {name} is missing")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=self.root))
        try:
            for f in src.iterdir():
                if f.is_file() and f.suffix in (".pt", ".json"):
                    shutil.copy2(f, tmp / f.name)
            for name, doc in (replace_json or {}).items():
                _write_json(tmp / name, doc)
            meta = _read_json(tmp / "meta.json") if (tmp / "meta.json").is_file() else {}
            meta["imported_from"] = str(src)
            meta.pop("version", None)
            version = self._place(tmp, meta)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if make_current:
            self.set_current(version)
        return version

    def _place(self, tmp: Path, meta: dict[str, Any]) -> str:
        """Rename a finished temporary directory to the next free version number (atomic)."""
        for _ in range(100):
            existing = self._version_dirs()
            n = int(existing[-1][1:]) + 1 if existing else 1
            version = f"v{n:04d}"
            _write_json(tmp / "meta.json", {"version": version, **meta})
            try:
                os.rename(tmp, self.root / version)
            except OSError:
                continue  # someone published the same number first
            return version
        raise RegistryError(f"could not allocate a version directory in {self.root}")

    def version_dir(self, version: str) -> Path:
        d = self.root / version
        if not _VERSION_RE.match(version) or not (d / "model.pt").is_file():
            known = ", ".join(self._version_dirs()) or "none"
            raise RegistryError(f"model version {version} not found in {self.root} (have: {known})")
        return d

    def read_extra(self, version: str, name: str) -> Any | None:
        """A version's extra JSON file (``drift_reference.json``, ``promotion.json``, ...),
        or None when the version has none."""
        path = self.root / version / _extra_name(name)
        if not _VERSION_RE.match(version) or not path.is_file():
            return None
        return _read_json(path)

    def attach(self, version: str, name: str, doc: object) -> Path:
        """Add (or replace) an extra JSON file of an existing version, atomically; the
        model files themselves never change after publishing."""
        d = self.version_dir(version)
        fname = _extra_name(name)
        if fname in _CORE_FILES:
            raise RegistryError(f"{fname} is part of the model itself and cannot be replaced")
        tmp = d / f".{fname}.tmp"
        _write_json(tmp, doc)
        os.replace(tmp, d / fname)
        return d / fname

    def set_current(self, version: str) -> None:
        if not (self.root / version / "model.pt").is_file():
            known = ", ".join(self._version_dirs()) or "none"
            raise RegistryError(
                f"cannot make {version} current: not in {self.root} (have: {known})"
            )
        ptr = self.root / "current"
        tmp = ptr.with_name(".current.tmp")
        tmp.write_text(version + "\n")
        os.replace(tmp, ptr)
