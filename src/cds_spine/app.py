"""create_app(settings): the FastAPI application, its middleware and its knowledge (loaded once)."""
from __future__ import annotations

import asyncio
import functools
import gc
import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .appstate import provide
from .audit import api as audit_api
from .audit import pages as audit_pages
from .audit.access import audit_access
from .audit.db import StoreProblem, migrate, open_engine, public_problem, schema_problem
from .audit.measure import load_measure
from .audit.sessions import SqlSessions, TimelineSessions
from .audit.state import AuditState
from .audit.store import SqlAuditStore, SqlReplayCache
from .cdshooks.answers import CallAnswerer
from .cdshooks.routes import HookState, RequestLimits, router
from .cdshooks.services import discovery
from .errors import ApiError, Issue, error_response, outcome_response
from .fhir.client import FhirClient, SearchLimits
from .fhir.urls import base_key
from .jsonio import JsonResponse
from .logs import RequestLog, ensure_logging
from .metrics import exposition
from .pathway import Knowledge, load_knowledge
from .refusals import FLUSH_SECONDS, RefusalTally
from .security.jwt import Verifier
from .security.keys import KeySource
from .security.policy import trust_summary, trusted_issuers
from .security.trusted_clients import TrustedIssuer
from .settings import Settings
from .smart import routes as smart_routes
from .smart.sessions import Sealer
from .smart.state import SmartState

log = logging.getLogger("cds_spine")
READINESS_TIMEOUT_SECONDS = 3
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported"}


class InternalErrorGuard:
    """Inside CORS, so even an unexpected failure answers with CORS headers and an OperationOutcome.

    Only the exception's type and frames are logged, never its message (it may quote patient data).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            log.error("internal error %s at %s", type(exc).__name__,
                      " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(traceback.extract_tb(exc.__traceback__))))
            if not started:
                response = outcome_response(500, Issue("exception", "internal error"))
                await response(scope, receive, send)


class NoStoreForTheAudit:
    """Every /audit answer (JSON, CSV, PDF, errors alike) carries patient data or who read it: no cache, in the
    browser or on the way, may keep it (`Cache-Control: no-store`, as the pages already say)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/audit"):
            await self.app(scope, receive, send)
            return

        async def no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(name, value) for name, value in message.get("headers", []) if name.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, no_store)


class RootPath:
    """Every request as served under the prefix a proxy serves the service at (CDS_SPINE_ROOT_PATH): the ASGI
    root_path, which links and redirects start with, whichever server runs the app."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "root_path": self.root_path}
        await self.app(scope, receive, send)


def http_routes(routes: Iterable[BaseRoute]) -> list[Route]:
    """The HTTP routes, including those of included routers (FastAPI wraps them; none has a prefix of its own)."""
    found: list[Route] = []
    for route in routes:
        if isinstance(route, Route):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += http_routes(route.original_router.routes)
    return found


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this path (one route answers 405 knowing only its own)."""
    return sorted({method for route in http_routes(app.router.routes)
                   if route.matches(request.scope)[0] is not Match.NONE for method in route.methods or ()})


def tune_gc_for_serving() -> None:
    """Freeze what start-up built (modules, models, knowledge: ~100k objects) out of the cyclic GC's
    reach, and collect the young generation less often. Decoding a large prefetch allocates hundreds
    of thousands of containers; with the defaults each full collection rescans the whole start-up heap,
    which made decoding a 3 MB body 4 times slower (bench/results.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def serving_app() -> FastAPI:
    """The app of one server worker (`cds-spine serve`, or `uvicorn --factory cds_spine.app:serving_app`):
    settings from the environment, logging set up if the process has none, the schema already migrated
    by `cds-spine serve` before its workers start."""
    settings = Settings()
    ensure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, migrate_schema=False)
    tune_gc_for_serving()
    return app


def utc_now() -> datetime:
    return datetime.now(UTC)


def fhir_client(settings: Settings, http: httpx.AsyncClient) -> FhirClient:
    return FhirClient(http, SearchLimits(settings.fhir_page_cap, settings.fhir_max_entries,
                                         settings.fhir_max_response_bytes))


def call_answerer(settings: Settings, knowledge: Knowledge, http: httpx.AsyncClient) -> CallAnswerer:
    """What answers calls, with the settings that bound it, its FHIR searches on `http`."""
    return CallAnswerer(knowledge, fhir_client(settings, http), fhir_timeout_seconds=settings.fhir_timeout_seconds,
                        allow_unauthenticated_fhir=settings.allow_unauthenticated_fhir,
                        info_card_when_met=settings.info_card_when_met, 
                        smart_launch_url=settings.smart_launch_url() if settings.smart_link else None,
                        epic_referral_preference_item=settings.epic_referral_preference_item,
                        annotate_orders=settings.annotate_orders)


def smart_state(settings: Settings, knowledge: Knowledge, answerer: CallAnswerer, issuers: list[TrustedIssuer] | None,
                store: SqlAuditStore, http: httpx.AsyncClient, clock: Callable[[], datetime]) -> SmartState:
    """The pathway timeline's: the FHIR servers it may be launched from (the trusted clients' and
    CDS_SPINE_SMART_FHIR_SERVERS), its cookies sealed with the deployment's secret and its sessions kept in the
    store, the record read as a call reads it."""
    servers = [*settings.smart_fhir_servers, *(server for issuer in issuers or () for server in issuer.client.fhir_servers)]
    return SmartState(settings.smart_client_id, (settings.public_base_url or "").rstrip("/"),
                      tuple(base_key(server) for server in servers),
                      Sealer([key.get_secret_value().encode() for key in settings.secret_keys]),
                      TimelineSessions(store.engine), settings.smart_idle_minutes * 60, http, answerer.fhir, knowledge, answerer.relevant, answerer.optional,
                      settings.fhir_timeout_seconds, clock, store.patient_hasher)


@functools.cache
def outbound_tls() -> ssl.SSLContext:
    """The TLS context of calls to EHRs, FHIR servers and identity providers: httpx's default (certifi's CAs, or
    SSL_CERT_FILE / SSL_CERT_DIR), built once per process (loading the CAs takes about 25 ms, which every app
    built in one process, as the tests build them, paid again)."""
    return httpx.create_ssl_context()


def create_app(settings: Settings | None = None, knowledge: Knowledge | None = None,
               migrate_schema: bool = True, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The service. Raises KnowledgeError, ConfigurationError or StoreProblem (with the reason) instead of
    starting unsafe. The schema is migrated unless `migrate_schema` is false or CDS_SPINE_SCHEMA_MANAGED
    says it is migrated elsewhere; then it must already be current. `clock` is the time calls are
    evaluated and recorded at (a test replays a past day with it)."""
    settings = settings or Settings()
    knowledge = knowledge or load_knowledge(settings.knowledge_dir(), settings.local_code_systems)
    issuers = trusted_issuers(settings)
    for line in trust_summary(settings, issuers):
        log.info("%s", line)
    engine = open_engine(settings.database_url)
    if migrate_schema and not settings.schema_managed:
        migrate(engine)
    elif problem := schema_problem(engine):
        engine.dispose()
        raise StoreProblem(problem)
    hash_key = settings.audit_hash_key.get_secret_value().encode() if settings.audit_hash_key else None
    store = SqlAuditStore(engine, hash_key, settings.audit_plain_patient_ids)
    measure = load_measure(settings.knowledge_dir(), knowledge)
    # httpx logs every request URL at INFO, and FHIR query URLs carry the patient id.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    refusals = RefusalTally()

    async def write_refusals() -> None:
        try:
            await run_in_threadpool(store.record_refusals, refusals.drain())
        except SQLAlchemyError as exc:  # the traffic counts are not worth failing anything for
            log.warning("could not record refused requests in the audit store (%s)", type(exc).__name__)

    async def write_refusals_every_few_seconds() -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await write_refusals()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.fhir_timeout_seconds, follow_redirects=False,
                                     verify=outbound_tls()) as http:
            verifier = None if issuers is None else Verifier(
                [KeySource(issuer, http, settings.jwks_cache_seconds) for issuer in issuers],
                SqlReplayCache(engine), settings.jwt_leeway_seconds, settings.jwt_max_lifetime_seconds)
            limits = RequestLimits(settings.max_body_bytes, settings.body_timeout_seconds,
                                   settings.max_json_containers, settings.max_draft_orders)
            answerer = call_answerer(settings, knowledge, http)
            provide(app, HookState(answerer, verifier, store, clock, knowledge.version,
                                   settings.public_base_url or "", limits, settings.audit_required,
                                   settings.ehr_profile, settings.override_memory_hours,
                                   knowledge.config.card.override_reasons, discovery(knowledge)),
                    AuditState(audit_access(settings, SqlSessions(engine), http), store, knowledge, measure,
                               settings.bulk_runs_dir, settings.adherence_target, settings.body_timeout_seconds),
                    smart_state(settings, knowledge, answerer, issuers, store, http, clock))
            writer = asyncio.create_task(write_refusals_every_few_seconds())
            try:
                yield
            finally:
                writer.cancel()
                await write_refusals()  # what the last seconds counted
        engine.dispose()

    app = FastAPI(title="cds-spine", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    provide(app, store)  # from the start: `cds-spine serve` closes it when workers will serve instead
    app.include_router(router)
    app.include_router(audit_api.router)
    app.include_router(audit_pages.router)
    app.include_router(smart_routes.router)

    @app.get("/healthz")
    async def healthz() -> JsonResponse:
        """Alive: the process answers (restart it if not). Says nothing about the store."""
        return JsonResponse({"status": "ok", "version": __version__, "knowledgeVersion": knowledge.version})

    @app.get("/readyz")
    async def readyz() -> JsonResponse:
        """Ready for calls: knowledge loaded (it is, or the app would not exist), the audit store reachable
        and its schema current. 503 with the reason otherwise (take the replica out of rotation)."""
        try:
            problem = await asyncio.wait_for(run_in_threadpool(schema_problem, engine), READINESS_TIMEOUT_SECONDS)
        except TimeoutError:
            problem = f"the audit store did not answer within {READINESS_TIMEOUT_SECONDS} s"
        body = {"status": "unready" if problem else "ready", "version": __version__,
                "knowledgeVersion": knowledge.version}
        if problem:
            log.warning("not ready: %s", problem)
            body["reason"] = public_problem(problem)
        return JsonResponse(body, status_code=503 if problem else 200)

    @app.exception_handler(ApiError)
    async def cds_hooks_error(_: Request, error: ApiError) -> JsonResponse:
        return error_response(error)  # a ClientGone too: its access line (499, INFO) is the one line it gets

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format (no patient data: counts and timings with bounded labels)."""
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.exception_handler(SQLAlchemyError)
    async def store_error(request: Request, error: SQLAlchemyError) -> JsonResponse:
        """The audit store failed while reading (the audit API, the dashboard): 503, as a call would be."""
        log.error("audit store failed (%s) at %s", type(error).__name__, request.url.path)
        return outcome_response(503, Issue("transient", "the audit store is unavailable; try again"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JsonResponse:
        response = outcome_response(error.status_code, Issue(HTTP_ISSUE_CODES.get(error.status_code, "processing"),
                                                             str(error.detail)))
        response.headers.update(error.headers or {})
        if error.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(app, request))
        return response

    app.add_middleware(InternalErrorGuard)
    app.add_middleware(NoStoreForTheAudit)
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                       allow_methods=["GET", "POST", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
                       expose_headers=["X-Request-ID"], max_age=600)
    app.add_middleware(RequestLog, cors_origins=settings.cors_origins, refusals=refusals)
    if settings.root_path:
        app.add_middleware(RootPath, root_path=settings.root_path)
    return app
