"""Run and try the service: serve, migrate, evaluate a request file, mint a test token, send a request."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from ..audit.db import HEAD, StoreProblem, migrate, open_engine, shown_url
from ..cdshooks.calls import Caller, decode_json, parse_call
from ..cdshooks.models import CdsResponse
from ..cdshooks.services import SERVICES
from ..errors import ApiError, operation_outcome
from ..logs import configure_logging, logging_config
from ..metrics import prepare_multiprocess_dir
from ..security.policy import ConfigurationError
from ..security.test_issuer import TRUSTED_CLIENTS_FILE, ensure_issuer, mint
from .common import (
    read_knowledge,
    read_settings,
    store_exit,
)


def serve(host: Annotated[str | None, typer.Option(help="Address to bind (CDS_SPINE_HOST).")] = None,
          port: Annotated[int | None, typer.Option(help="Port (CDS_SPINE_PORT).")] = None,
          workers: Annotated[int | None, typer.Option(help="Worker processes (CDS_SPINE_WORKERS).")] = None
          ) -> None:
    """Run the HTTP service: check the settings and migrate the audit store once, then start the workers."""

    import uvicorn

    from ..app import create_app, tune_gc_for_serving
    from ..appstate import state_of
    from ..audit.store import SqlAuditStore

    settings = read_settings(host=host, port=port, workers=workers)
    configure_logging(settings.log_level, settings.log_format)
    try:  # everything a worker needs, checked once, and the schema migrated, before any worker starts
        application = create_app(settings, read_knowledge(settings))
    except ConfigurationError as exc:
        typer.echo(f"cds-spine: refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None
    except StoreProblem as exc:
        raise store_exit(exc) from None
    if not _can_bind(settings.host, settings.port):
        typer.echo(f"cds-spine: port {settings.port} on {settings.host} is in use: stop what uses it, or choose "
                   f"another with CDS_SPINE_PORT (or --port)", err=True)
        raise typer.Exit(2)
    base = f"http://{settings.host}:{settings.port}"
    readers = "" if settings.audit_users or settings.audit_auth == "oidc" else \
        " (no audit readers yet: the page says how to add them)"
    logging.getLogger("cds_spine").info("serving %s/cds-services; the dashboard: %s/dashboard%s", base, base, readers)
    server: dict[str, Any] = dict(host=settings.host, port=settings.port, log_config=logging_config(settings.log_level,
                  settings.log_format), log_level=settings.log_level.lower(), access_log=False, server_header=False,
                  proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips)
    if settings.workers == 1:  # this process serves: the app just checked is the one that runs
        tune_gc_for_serving()
        uvicorn.run(application, **server)
        return
    # Several workers: uvicorn starts them from the factory (cds_spine.app:serving_app), each reading its
    # settings from the environment; this process only supervises them.
    state_of(application, SqlAuditStore).engine.dispose()
    prepare_multiprocess_dir()
    os.environ.update(CDS_SPINE_HOST=settings.host, CDS_SPINE_PORT=str(settings.port),
                      CDS_SPINE_WORKERS=str(settings.workers))
    uvicorn.run("cds_spine.app:serving_app", factory=True, workers=settings.workers, **server)


def _can_bind(host: str, port: int) -> bool:
    """Whether the server could listen there now (as uvicorn binds: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def migrate_store() -> None:
    """Migrate the audit store (CDS_SPINE_DATABASE_URL) to this version's schema, then exit. Run it once
    before starting replicas (with CDS_SPINE_SCHEMA_MANAGED=true); running it twice at once is safe."""
    settings = read_settings()
    engine = open_engine(settings.database_url)
    try:
        migrate(engine)
    except StoreProblem as exc:
        raise store_exit(exc) from None
    finally:
        engine.dispose()
    typer.echo(f"audit store {shown_url(settings.database_url)}: schema at {HEAD}")


def _moment(value: str) -> datetime:
    """`today` or `now`: this moment; else an ISO date or date-time (UTC unless it says otherwise)."""
    if value in ("today", "now"):
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD), a date-time or `today`",
                                 param_hint="--as-of") from None
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def evaluate(request_file: Annotated[Path, typer.Argument(help="A CDS Hooks request (JSON).", exists=True,
                                                          dir_okay=False)],
             as_of: Annotated[str, typer.Option(
                 "--as-of", help="Evaluate as of this date or time (UTC), or `today`; default: now.")] = "today"
             ) -> None:
    """Print the cards the service would return for a CDS Hooks request file."""
    now = _moment(as_of)
    settings = read_settings()
    knowledge = read_knowledge(settings)

    from ..app import call_answerer

    async def run() -> CdsResponse:
        body = decode_json(request_file.read_bytes(), settings.max_json_containers)
        hook = body.get("hook")
        service = next((s for s in SERVICES.values() if s.hook == hook), next(iter(SERVICES.values())))
        call = parse_call(service, body, settings.max_draft_orders)
        async with httpx.AsyncClient(timeout=settings.fhir_timeout_seconds) as http:
            # The file's own fhirServer is read: whoever runs the command already has this machine's network.
            answer = await call_answerer(settings, knowledge, http).answer(call, now, Caller(settings.ehr_profile), inline=True)
            if answer.unavailable:
                raise answer.unavailable
            return CdsResponse(cards=answer.cards)

    try:
        response = asyncio.run(run())
    except ApiError as error:
        typer.echo(json.dumps(operation_outcome(*error.issues), indent=2), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(response.wire(), indent=2, ensure_ascii=False))


def test_token(url: Annotated[str, typer.Argument(help="The full URL to be called, e.g. "
                                                     "http://localhost:8080/cds-services/spine-pathway-order-sign: "
                                                     "the token's aud.")],
               folder: Annotated[Path, typer.Option(help="Where the test issuer keeps its key, JWKS and "
                                                         "trusted-clients file.")] = Path(".cds-spine-test-issuer"),
               lifetime: Annotated[int, typer.Option(help="Seconds the token is valid.", min=1, max=3600)] = 300
               ) -> None:
    """Print a JWT from a local test issuer, to call the service with authentication on (curl, a test), as an
    EHR would. The first use creates the issuer; the service trusts it only when CDS_SPINE_TRUSTED_CLIENTS
    names FOLDER/trusted-clients.yaml: for trying the service, never with real patients."""
    if ensure_issuer(folder):
        typer.echo(f"created a test issuer in {folder}: the service trusts it with "
                   f"CDS_SPINE_TRUSTED_CLIENTS={folder / TRUSTED_CLIENTS_FILE} (never with real patients)", err=True)
    typer.echo(mint(folder, url, lifetime))


def send(request_file: Annotated[Path, typer.Argument(help="A CDS Hooks request (JSON), e.g. one of examples/requests.",
                                                      exists=True, dir_okay=False)],
         url: Annotated[str, typer.Argument(help="The CDS service to call, e.g. "
                                                 "http://localhost:8080/cds-services/spine-pathway-order-sign.")],
         test_issuer: Annotated[Path, typer.Option(help="A test issuer's folder (`cds-spine test-token`): when it "
                                                        "exists, the call carries a JWT from it.")
                                ] = Path(".cds-spine-test-issuer")) -> None:
    """Send a CDS Hooks request to a running service as an EHR would: a fresh hookInstance each time (an EHR
    never sends one twice for different calls), and a JWT from the test issuer when there is one. Prints the
    answer; exit 1 when the service refuses the call."""
    body = json.loads(request_file.read_text(encoding="utf-8"))
    body["hookInstance"] = str(uuid.uuid4())
    headers = {"Content-Type": "application/json"}
    signed = (test_issuer / TRUSTED_CLIENTS_FILE).is_file()
    if signed:
        headers["Authorization"] = f"Bearer {mint(test_issuer, url)}"
    try:
        answer = httpx.post(url, content=json.dumps(body), headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cds-spine: {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        typer.echo(json.dumps(answer.json(), indent=2, ensure_ascii=False))
    except ValueError:
        typer.echo(answer.text)
    if answer.status_code >= 400:
        typer.echo(f"cds-spine: {url} answered {answer.status_code}", err=True)
        if answer.status_code == 401:
            typer.echo(_why_unauthorized(url, test_issuer, signed), err=True)
        raise typer.Exit(1)


def _why_unauthorized(url: str, test_issuer: Path, signed: bool) -> str:
    """What a 401 most likely means, on this side (the service's log names the check that failed)."""
    if not signed:
        return (f"  no token was sent: {test_issuer} holds no test issuer. The service requires a JWT: make one "
                f"with `cds-spine test-token {url.rsplit('/cds-services', 1)[0]}/cds-services` and name its "
                f"trusted-clients file in the service's CDS_SPINE_TRUSTED_CLIENTS.")
    return (f"  the token's audience (aud) was {url}: the service accepts only its own CDS_SPINE_PUBLIC_BASE_URL "
            f"followed by the path, spelled as it is set (http://localhost:8080 and http://127.0.0.1:8080 differ). "
            f"Call the URL the service's public base URL names, or check that the service trusts {test_issuer}'s "
            f"trusted-clients file; the service's log names the check that failed.")
