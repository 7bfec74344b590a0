"""The monitoring routes (drift, live calibration, segments, overview) on the API app."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import FastAPI, HTTPException, Path
from fastapi.responses import Response

CourseId = Annotated[int, Path(ge=0, le=2**53, description="Moodle course id")]
_SECURED: dict[str, Any] = {"security": [{"bearer": []}]}
_RESP: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "Unknown course"},
}


def _json(doc: Any) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
    )


def add_monitoring_routes(app: FastAPI, api: Any) -> None:
    """``api`` is the app's ``Api`` (``reader`` for course checks, ``monitoring``)."""

    async def known(course: int) -> None:
        if not await api.reader.course_known(course):
            raise HTTPException(404, f"unknown course {course}")

    @app.get("/v1/monitoring", tags=["monitoring"], openapi_extra=_SECURED, responses=_RESP)
    async def monitoring_overview() -> Response:
        """Per course: drift and calibration verdicts; whether the retraining rule fires."""
        return _json(await api.monitoring.overview())

    @app.get(
        "/v1/courses/{course}/drift", tags=["monitoring"], openapi_extra=_SECURED, responses=_RESP
    )
    async def course_drift(course: CourseId) -> Response:
        """PSI of every day feature per course week against the model's training data;
        alarm above ``alarm_psi`` (behaviour features of the latest week with data)."""
        await known(course)
        return _json(await api.monitoring.drift(course))

    @app.get(
        "/v1/courses/{course}/calibration",
        tags=["monitoring"],
        openapi_extra=_SECURED,
        responses=_RESP,
    )
    async def course_calibration(course: CourseId) -> Response:
        """Predicted risk against known outcomes per band day: reliability curve, ECE,
        precision of the high level (and a lower bound while outcomes are incomplete)."""
        await known(course)
        return _json(await api.monitoring.calibration(course))

    @app.get(
        "/v1/courses/{course}/segments",
        tags=["monitoring"],
        openapi_extra=_SECURED,
        responses=_RESP,
    )
    async def course_segments(course: CourseId) -> Response:
        """The course's students per engagement segment (last four weeks), in words, with
        mean risk and outcome rates (training and, when known, live)."""
        await known(course)
        return _json(await api.monitoring.segments(course))
