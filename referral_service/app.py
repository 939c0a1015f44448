"""create_app(): the lifespan opens the database (db.open_database) and runs the audit sealer
(audit/sealer.py); routers; error handlers."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool

from fhir_adapters.parse import warm_up
from referral_service.audit.grouped import GroupCommit
from referral_service.audit.sealer import Sealer
from referral_service.config import Settings, get_settings
from referral_service.db import AsyncReads, open_database

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

# Container objects allocated (net) before the cyclic collector looks at the youngest ones;
# Python's default is 700. A request's work is mostly short-lived objects that reference counting
# frees, but many live until the request ends: validating a batch of 100 questionnaires builds
# 7,500 models, and the collector, run every 700, walked them again and again (about 40 µs of
# CPU per batch entry, 2% of it; a few per entry at this threshold). Garbage in reference cycles
# waits longer: at most this many objects more.
GEN0_THRESHOLD = 20_000


def collect_less_often() -> None:
    """The youngest generation collected every GEN0_THRESHOLD allocations, the older ones as
    before (a server process: `create_app(whole_process=True)`)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)


def create_app(settings: Settings | None = None, *, whole_process: bool = False) -> FastAPI:
    """`whole_process`: this app is all the process runs until it ends (`spis serve`)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(warm_up)
        database = open_database(settings, send_in_background=True)
        app.state.engine = database.engine
        app.state.producer = database.producer  # /readyz checks its broker
        app.state.sessionmaker = database.sessionmaker
        app.state.async_reads = reads = await AsyncReads.open(database.engine)
        app.state.read_events = GroupCommit(reads.connection) if reads else None
        # Chains this and every process's committed audit events within about a second.
        sealer = Sealer(database.engine)
        sealer.start()
        if whole_process:
            # What start-up built (modules, routes, models, compiled templates) lives as long as
            # the process: out of the collector's sight, so no collection walks it again.
            gc.collect()
            gc.freeze()
            collect_less_often()
        yield
        sealer.stop()
        if app.state.async_reads is not None:
            await app.state.async_reads.close()
        database.dispose()

    app = FastAPI(
        title="SPIS — Social Prescribing Integration Service",
        version="0.1.0",
        lifespan=lifespan,
        # SPIS exports no OpenTelemetry; FastAPI's native telemetry would look for providers in
        # the environment on every request (about 6% of a FHIR read).
        telemetry=NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.async_reads = None  # until the lifespan opens them
    from referral_service.auth.endpoints import router as auth_router
    from referral_service.fhir.audit_events import router as audit_router
    from referral_service.fhir.endpoints import plain_routes as fhir_plain_routes
    from referral_service.fhir.endpoints import router as fhir_router
    from referral_service.fhir.errors import LastResort, install_error_handlers
    from referral_service.fhir.measures import router as measures_router
    from referral_service.fhir.subscriptions import router as subscriptions_router
    from referral_service.health.endpoints import router as health_router
    from referral_service.keys.jose import key_store
    from referral_service.kit.route_index import index_routes
    from referral_service.ledger.endpoints import router as ledger_router
    from referral_service.openapi import install_openapi
    from referral_service.transit.endpoints import router as transit_router
    from referral_service.transit.middleware import TransitMiddleware
    from referral_service.web.router import install_web

    install_error_handlers(app)
    install_openapi(app)
    app.include_router(auth_router)
    app.include_router(audit_router)  # before the generic /fhir/{type} routes
    app.include_router(measures_router)  # so is /fhir/Measure
    app.include_router(subscriptions_router)  # and /fhir/Subscription, /fhir/Basic (the topics)
    app.include_router(fhir_router)
    app.router.routes.extend(fhir_plain_routes)  # the hot reads, after the routes above
    app.include_router(ledger_router)
    app.include_router(transit_router)
    app.include_router(health_router)
    install_web(app)  # the pages and /static; after the handlers above, which it wraps
    index_routes(app)  # last: it indexes every route added above
    app.add_middleware(TransitMiddleware)
    # Added last, so outermost: no exception escapes to Starlette and uvicorn, which would log it
    # with its message.
    app.add_middleware(LastResort, handlers=app.exception_handlers)
    if settings.environment == "production":
        app.state.transit_keys = key_store(settings)  # refuse to start without them
    return app
