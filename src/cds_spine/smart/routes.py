"""The pathway timeline, a SMART App Launch 2.0 app served by the service: /app/launch (the EHR's launch, or a
standalone one), /app/callback (the authorization code for a token, with PKCE), /app/timeline (the page).

The page asks the service, the service reads the patient's record from the EHR's FHIR server with the app's
token through the same FHIR client and reader as a CDS Hooks call, and asks the same pathway: the page only
draws the assessment. Every problem a clinician or the IT team can act on is a page that says so."""
from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ..app_context import AppContext
from ..errors import DataUnavailableError
from ..fhir.prefetch import RECORD_KEYS, FhirAccess, obtain, read_prefetch
from ..fhir.record import build_record
from ..fhir.urls import UnsafeUrl, base_key
from ..pathway import PatientRecord, summarize_patient
from ..pathway.observation_rules import ScoresOnRecord
from .banner import patient_banner
from .oauth import LAUNCH_TTL_SECONDS, LaunchProblem, authorize_url, exchange, pkce_pair
from .sessions import LAUNCH_COOKIE, SESSION_COOKIE, Launch, Session
from .state import Smart, SmartState
from .timeline import Timeline, build, order_assessment

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PAGES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                    trim_blocks=True, lstrip_blocks=True)
STATIC_FILES = {"timeline.css"}
SESSION_MAX_SECONDS = 12 * 3600
"""The longest a session cookie is opened, whatever the token's lifetime says."""
DEFAULT_TOKEN_SECONDS = 3600
PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
POLICY = "default-src 'none'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; base-uri 'none'; form-action 'self'"
"""No script at all, nothing from another host; the page's one style element (where the timeline's bars sit)
carries a nonce; its one form (End session) posts to the service. No frame-ancestors: EHRs show the app in a
frame."""

router = APIRouter(prefix="/app")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = PAGES.get_template(template).render(static=f"{_root(request)}/app/static", nonce=nonce, **values)
    return HTMLResponse(html, status_code=status,
                        headers={**PAGE_HEADERS, "Content-Security-Policy": POLICY.format(nonce=nonce)})


def _problem(request: Request, problem: LaunchProblem) -> HTMLResponse:
    return _page(request, "problem.html", problem.status, title=problem.title, message=str(problem))


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, for the app's paths only; in a frame of the EHR (another site) the browser sends it only when
    it is `SameSite=None; Secure` (which needs https) and, where third-party cookies are blocked, Partitioned
    (kept for the EHR's site alone)."""
    secure = request.url.scheme == "https"
    response.set_cookie(name, value, max_age=max_age, path=f"{_root(request)}/app", httponly=True, secure=secure,
                        samesite="none" if secure else "lax")
    if secure:  # Python's http.cookies writes Partitioned only from 3.14 on
        header, written = response.raw_headers[-1]
        response.raw_headers[-1] = (header, written + b"; Partitioned")


OAUTH_ERRORS = frozenset({"invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
                          "invalid_scope", "server_error", "temporarily_unavailable"})
"""RFC 6749 §4.1.2.1: the only `error` values the callback names on its page (no one's text is shown there)."""


def _trusted(state: SmartState, iss: str) -> str:
    """The launch's FHIR server, normalised, when the service trusts it; LaunchProblem otherwise."""
    try:
        server = base_key(iss)
    except UnsafeUrl:  # not even a URL the service could compare: certainly not a trusted server (not echoed)
        server = "This address"
    if server not in state.fhir_servers:
        raise LaunchProblem(403, "This FHIR server is not trusted",
                            f"{server} is not among the FHIR servers this service may read "
                            "(CDS_SPINE_SMART_FHIR_SERVERS, or fhir_servers in the trusted clients): ask the IT "
                            "team to add it.")
    return server


def _enabled(state: SmartState) -> str:
    if not state.client_id:
        raise LaunchProblem(404, "The pathway timeline is not set up here",
                            "The IT team turns it on with CDS_SPINE_SMART_CLIENT_ID (docs/deploy.md).")
    return state.client_id


@router.get("/launch")
async def launch(request: Request, state: Smart, iss: str | None = None, launch: str | None = None) -> Response:
    """An EHR launch (`iss` and `launch`) or a standalone one (`iss` only)."""
    try:
        client_id = _enabled(state)
        if not iss:
            raise LaunchProblem(400, "Open the pathway timeline from the EHR",
                                "The app starts from a card's link or the patient's chart: the EHR tells it which "
                                "FHIR server to read (iss).")
        server = _trusted(state, iss)
        configuration = await state.discovery.configuration(state.http, server)
    except LaunchProblem as problem:
        return _problem(request, problem)
    verifier, challenge = pkce_pair()
    opaque = secrets.token_urlsafe(24)
    response = RedirectResponse(authorize_url(configuration, client_id, state.redirect_uri, server, opaque, challenge,
                                              launch), status_code=302)
    _cookie(response, request, LAUNCH_COOKIE,
            state.sealer.seal(Launch(state=opaque, verifier=verifier, iss=server,
                                     token_endpoint=configuration.token_endpoint)), LAUNCH_TTL_SECONDS)
    return response


@router.get("/callback")
async def callback(request: Request, state: Smart, code: str | None = None, error: str | None = None) -> Response:
    """The authorization server's answer: the code for a token, bound to this browser's launch (state) and
    proven with the PKCE verifier."""
    sealed = state.sealer.open(request.cookies.get(LAUNCH_COOKIE), Launch, LAUNCH_TTL_SECONDS)
    try:
        client_id = _enabled(state)
        if error:
            said = f"Its authorization server answered {error}" if error in OAUTH_ERRORS else \
                "Its authorization server answered with an error"
            raise LaunchProblem(403, "The EHR refused access",
                                f"{said}: open the app again from the patient's chart, or ask the IT team to check "
                                "the app's registration.")
        if sealed is None:  # no launch of this browser is waiting for an answer
            raise LaunchProblem(403, "This launch has expired",
                                "Open the app again from the patient's chart (a launch lasts "
                                f"{LAUNCH_TTL_SECONDS // 60} minutes).")
        launched: Launch = sealed
        if not code or not secrets.compare_digest(request.query_params.get("state", ""), launched.state):
            raise LaunchProblem(403, "This answer does not belong to this launch",
                                "Open the app again from the patient's chart.")
        token = await exchange(state.http, launched.token_endpoint, code, launched.verifier, client_id,
                               state.redirect_uri)
        if not token.patient:
            raise LaunchProblem(400, "The EHR did not say which patient",
                                "Open the app from a patient's chart or from a card.")
        if token.expires_in == 0:
            raise LaunchProblem(403, "The EHR gave an access token that has already expired",
                                "Open the app again from the patient's chart.")
        context = token.app_context()
        if context and context.patient and context.patient != token.patient:
            raise LaunchProblem(403, "This link was made for another patient",
                                "The card's link names another patient than the chart the EHR opened: open the "
                                "app again from this patient's card or chart.")
    except LaunchProblem as problem:
        return _problem(request, problem)
    lifetime = min(DEFAULT_TOKEN_SECONDS if token.expires_in is None else token.expires_in, SESSION_MAX_SECONDS)
    launch_id = secrets.token_urlsafe(16)
    session = Session(iss=launched.iss, access_token=token.access_token, patient=token.patient,
                      expires_at=time.time() + lifetime, launch_id=launch_id, banner=token.need_patient_banner,
                      app_context=context.model_dump_json(exclude_none=True) if context else None)
    try:
        opened = state.clock().timestamp()
        await run_in_threadpool(state.sessions.open, launch_id, opened, opened + lifetime, state.idle_seconds)
    except SQLAlchemyError as exc:
        return _problem(request, _store_problem(exc))
    response = RedirectResponse(f"{_root(request)}/app/timeline?launch={launch_id}", status_code=303)
    _cookie(response, request, SESSION_COOKIE, state.sealer.seal(session), lifetime)
    response.delete_cookie(LAUNCH_COOKIE, path=f"{_root(request)}/app")
    return response


def _store_problem(exc: SQLAlchemyError) -> LaunchProblem:
    log.error("the audit store could not keep a pathway-timeline session (%s)", type(exc).__name__)
    return LaunchProblem(503, "The app cannot open a session now",
                         "The service's store is not answering: try again in a minute, or ask the IT team.")


def _launch_session(state: SmartState, request: Request, launch: str | None) -> Session:
    """The session of this page's launch from the browser's cookie; LaunchProblem when there is none, it has
    expired, or the cookie is of a later launch."""
    session: Session | None = state.sealer.open(request.cookies.get(SESSION_COOKIE), Session, SESSION_MAX_SECONDS)
    if session is None or session.expired:
        raise LaunchProblem(401, "Your session with the EHR has ended",
                            "Open the app again from the patient's chart or a card.")
    if not launch or not secrets.compare_digest(launch.encode(), session.launch_id.encode()):
        raise LaunchProblem(409, "This page belongs to an earlier launch",
                            "The app was opened again in this browser, perhaps for another patient, since this page "
                            "was: open it again from this patient's chart or card.")
    return session


@router.get("/timeline")
async def timeline(request: Request, state: Smart, launch: str | None = None) -> Response:
    try:
        session = _launch_session(state, request, launch)
        if not await run_in_threadpool(state.sessions.resume, session.launch_id, state.clock().timestamp(),
                                       state.idle_seconds):
            raise LaunchProblem(401, "Your session has ended",
                                f"It was ended, or left unused for {state.idle_seconds / 60:g} minutes: open the app "
                                "again from the patient's chart or a card.")
    except LaunchProblem as problem:
        return _problem(request, problem)
    except SQLAlchemyError as exc:
        return _problem(request, _store_problem(exc))
    access = FhirAccess(session.iss, session.access_token, allow_unauthenticated=False)
    try:
        obtained = await obtain(read_prefetch(RECORD_KEYS, None, state.keep, state.optional), session.patient, access,
                                state.fhir, state.fhir_timeout_seconds, state.keep)
    except DataUnavailableError as unavailable:
        if unavailable.kind == "refused":
            return _problem(request, LaunchProblem(401, "The EHR refused the app's access",
                                                   "The access token has expired or was revoked: open the app "
                                                   "again from the patient's chart."))
        return _problem(request, LaunchProblem(502, "The patient's record could not be read",
                                               f"The EHR's FHIR server did not give it ({unavailable.kind}); try "
                                               "again, or ask the IT team."))
    now = state.clock()
    context = AppContext.model_validate_json(session.app_context) if session.app_context else None
    banner = await patient_banner(state, session) if session.banner else None
    view = await run_in_threadpool(_evaluate, state, obtained.resources, context, now)
    log.info("pathway timeline shown for patient %s", state.patient_hash(session.patient))
    if view is None:
        return _page(request, "problem.html", title=state.knowledge.config.timeline.title,
                     message=state.knowledge.config.timeline.no_spine_data)
    return _page(request, "timeline.html", view=view, wording=state.knowledge.config.timeline, banner=banner,
                 end_url=f"{_root(request)}/app/end?launch={session.launch_id}")


@router.post("/end")
async def end(request: Request, state: Smart, launch: str | None = None) -> Response:
    """The page's "End session": the session is ended in the store (a copy of the cookie opens nothing more) and
    the browser forgets the cookie. The launch id in the URL is the page's own: another site cannot end it."""
    try:
        session = _launch_session(state, request, launch)
        await run_in_threadpool(state.sessions.end, session.launch_id)
    except LaunchProblem as problem:
        return _problem(request, problem)
    except SQLAlchemyError as exc:
        return _problem(request, _store_problem(exc))
    response = _page(request, "problem.html", title="Session ended",
                     message="The pathway timeline no longer shows this patient in this browser. Open it again from "
                             "the patient's chart or a card.")
    response.delete_cookie(SESSION_COOKIE, path=f"{_root(request)}/app")
    return response


def _evaluate(state: SmartState, resources: Any, context: AppContext | None, now: datetime) -> Timeline | None:
    """The same reader and pathway as a call: the patient summary, and the card's order assessed again."""
    record: PatientRecord = build_record(resources, state.knowledge)
    summary = summarize_patient(record, state.knowledge, now)
    if summary is None:
        return None
    return build(summary, order_assessment(context, record, state.knowledge, now),
                 ScoresOnRecord(record, state.knowledge), state.knowledge, now)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response(status_code=404)
    return FileResponse(HERE / "static" / name, headers={"Cache-Control": "max-age=3600",
                                                          "X-Content-Type-Options": "nosniff"})
