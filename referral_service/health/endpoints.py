"""`/healthz` (the process is up) and `/readyz` (it can serve: database, schema, broker).

Both are unauthenticated, answer JSON and are never cached; neither touches patient data.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from referral_service.health.service import readiness

router = APIRouter(tags=["operations"])
NO_STORE = {"Cache-Control": "no-store"}


class Liveness(BaseModel):
    status: Literal["ok"]


class ReadinessReport(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]  # database, migrations, broker: "ok" or what is wrong
    failed: list[str]


@router.get("/healthz", response_model=Liveness)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get(
    "/readyz",
    response_model=ReadinessReport,
    responses={503: {"model": ReadinessReport, "description": "a check failed"}},
)
def readyz(request: Request) -> JSONResponse:
    found = readiness(request.app.state.engine, request.app.state.producer.app)
    report = ReadinessReport(
        status="ready" if found.ready else "not ready", checks=found.checks, failed=found.failed
    )
    return JSONResponse(
        report.model_dump(), status_code=200 if found.ready else 503, headers=NO_STORE
    )
