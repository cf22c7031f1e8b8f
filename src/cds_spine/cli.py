"""The command line: cds-spine serve | migrate | evaluate | check-config | report | audit-key | audit-bulk."""
from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from . import __version__
from .audit import formats, measure_report, orders, scoring
from .audit.access import key_hash, new_key
from .audit.db import HEAD, StoreProblem, migrate, open_engine, schema_problem, shown_url, sqlite_file_missing
from .audit.measure import load_measure
from .cdshooks.calls import decode_json, parse_call
from .cdshooks.models import CdsResponse
from .cdshooks.services import SERVICES
from .errors import ApiError, operation_outcome
from .logs import configure_logging, logging_config
from .metrics import prepare_multiprocess_dir
from .pathway import KnowledgeError, load_knowledge
from .security.policy import ConfigurationError, trust_summary, trusted_issuers
from .security.test_issuer import TRUSTED_CLIENTS_FILE, ensure_issuer, mint
from .settings import PLACEHOLDER, AuditUser, Settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cds-spine: a CDS Hooks service for conservative therapy before ESI or spine surgery.")


def _version(show: bool) -> None:
    if show:
        typer.echo(f"cds-spine {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """cds-spine: a CDS Hooks service for conservative therapy before ESI or spine surgery."""


def _store_problem(exc: StoreProblem) -> typer.Exit:
    typer.echo(f"cds-spine: {exc}", err=True)
    return typer.Exit(3)


def _setting_problems(exc: ValidationError | SettingsError) -> dict[str | None, str]:
    """Setting name (None: several together) -> what is wrong with it, naming the environment variable."""
    if isinstance(exc, SettingsError):  # a value that should be JSON is not
        field = str(exc).split('"')[1] if '"' in str(exc) else ""
        return {field: f"CDS_SPINE_{field.upper()}: not valid JSON"}
    problems: dict[str | None, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else None
        text = f"CDS_SPINE_{field.upper()}: {error['msg']}" if field else error["msg"]
        problems[field] = f"{problems[field]}; {text}" if field in problems else text
    return problems


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except (ValidationError, SettingsError) as exc:
        typer.echo(f"cds-spine: invalid setting: {'; '.join(_setting_problems(exc).values())}", err=True)
        raise typer.Exit(2) from None


def _settings_to_check() -> tuple[Settings, list[str]]:
    """The settings, and every problem with them: a setting that is wrong is reported and replaced by its
    default, so that every other check still runs. Problems of several settings together end the check."""
    errors: list[str] = []
    defaults: dict[str, object] = {}
    while True:
        try:
            return Settings(**defaults), errors
        except (ValidationError, SettingsError) as exc:
            problems = _setting_problems(exc)
            errors += problems.values()
            fields = [name for name in problems if name in Settings.model_fields and name not in defaults]
            if len(fields) < len(problems):
                for error in errors:
                    typer.echo(f"error: {error}", err=True)
                raise typer.Exit(2) from None
            defaults.update({name: Settings.model_fields[name].default for name in fields})


def _knowledge(settings: Settings):
    try:
        return load_knowledge(settings.knowledge_dir(), settings.local_code_systems)
    except KnowledgeError as exc:
        typer.echo(f"cds-spine: invalid clinical knowledge: {exc}", err=True)
        raise typer.Exit(2) from None


def _code_systems_line(knowledge, settings: Settings) -> str:
    systems = knowledge.code_systems
    standard = ", ".join(system.name for system in systems.config.systems.values())
    site = (f"{len(systems.site.local)} from {settings.local_code_systems}"
            if settings.local_code_systems else "none from the site: CDS_SPINE_LOCAL_CODE_SYSTEMS is unset")
    return (f"code systems: {standard}; {len(systems.local)} local systems mapped to them ({site}). Codes under "
            f"any other system are not read: /metrics counts them by system "
            f"(cds_spine_unplaced_code_systems_total) and the log names each system once; map one to a standard "
            f"system in the file CDS_SPINE_LOCAL_CODE_SYSTEMS names (docs/deploy.md, \"Local code systems\")")


def _measure(settings: Settings, knowledge):
    try:
        return load_measure(settings.knowledge_dir(), knowledge)
    except KnowledgeError as exc:
        typer.echo(f"cds-spine: invalid measure: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="Address to bind (CDS_SPINE_HOST).")] = None,
          port: Annotated[int | None, typer.Option(help="Port (CDS_SPINE_PORT).")] = None,
          workers: Annotated[int | None, typer.Option(help="Worker processes (CDS_SPINE_WORKERS).")] = None
          ) -> None:
    """Run the HTTP service: check the settings and migrate the audit store once, then start the workers."""
    import os

    import uvicorn

    from .app import create_app, tune_gc_for_serving
    from .appstate import state_of
    from .audit.store import SqlAuditStore

    settings = _settings(host=host, port=port, workers=workers)
    configure_logging(settings.log_level, settings.log_format)
    try:  # everything a worker needs, checked once, and the schema migrated, before any worker starts
        application = create_app(settings, _knowledge(settings))
    except ConfigurationError as exc:
        typer.echo(f"cds-spine: refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None
    except StoreProblem as exc:
        raise _store_problem(exc) from None
    server = dict(host=settings.host, port=settings.port, log_config=logging_config(settings.log_level,
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


@app.command("migrate")
def migrate_store() -> None:
    """Migrate the audit store (CDS_SPINE_DATABASE_URL) to this version's schema, then exit. Run it once
    before starting replicas (with CDS_SPINE_SCHEMA_MANAGED=true); running it twice at once is safe."""
    settings = _settings()
    engine = open_engine(settings.database_url)
    try:
        migrate(engine)
    except StoreProblem as exc:
        raise _store_problem(exc) from None
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


@app.command()
def evaluate(request_file: Annotated[Path, typer.Argument(help="A CDS Hooks request (JSON).", exists=True,
                                                          dir_okay=False)],
             as_of: Annotated[str, typer.Option(
                 "--as-of", help="Evaluate as of this date or time (UTC), or `today`; default: now.")] = "today"
             ) -> None:
    """Print the cards the service would return for a CDS Hooks request file."""
    now = _moment(as_of)
    settings = _settings()
    knowledge = _knowledge(settings)

    from .app import call_answerer

    async def run() -> CdsResponse:
        body = decode_json(request_file.read_bytes(), settings.max_json_containers)
        hook = body.get("hook")
        service = next((s for s in SERVICES.values() if s.hook == hook), next(iter(SERVICES.values())))
        call = parse_call(service, body, settings.max_draft_orders)
        async with httpx.AsyncClient(timeout=settings.fhir_timeout_seconds) as http:
            answer = await call_answerer(settings, knowledge, http).answer(call, now)
            if answer.unavailable:
                raise answer.unavailable
            return CdsResponse(cards=answer.cards)

    try:
        response = asyncio.run(run())
    except ApiError as error:
        typer.echo(json.dumps(operation_outcome(*error.issues), indent=2), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(response.wire(), indent=2, ensure_ascii=False))


MIN_AUDIT_HASH_KEY = 32


def in_container() -> bool:
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists() or "KUBERNETES_SERVICE_HOST" in os.environ


def _store_findings(settings: Settings) -> tuple[list[str], list[str], str]:
    """Errors, warnings, and what the audit store is, without creating a SQLite file that is not there."""
    errors, warnings = [], []
    url = settings.database_url
    engine = open_engine(url)
    try:
        if sqlite_file_missing(engine):
            state = "not created yet (the first start creates and migrates it)"
            if settings.schema_managed:
                errors.append("CDS_SPINE_SCHEMA_MANAGED is set but the SQLite store does not exist: run `cds-spine migrate`")
        else:
            problem = schema_problem(engine)
            state = problem or f"reachable, schema at {HEAD}"
            if problem and ("cannot be used" in problem or settings.schema_managed):
                errors.append(problem)
            elif problem:
                warnings.append(f"{problem} (`cds-spine serve` migrates it at start)")
        if engine.dialect.name == "sqlite":
            if settings.auth_required():
                warnings.append("the audit store is SQLite with authentication required: use PostgreSQL in "
                                "production (CDS_SPINE_DATABASE_URL)")
            if in_container():
                warnings.append("the audit store is SQLite inside a container: it is lost with the container "
                                "unless on a volume, and replicas cannot share it; use PostgreSQL")
    finally:
        engine.dispose()
    return errors, warnings, f"{shown_url(url)}: {state}"


def _audit_readers(settings: Settings) -> str:
    if settings.audit_auth == "oidc":
        return f"OIDC tokens of {settings.audit_oidc_issuer} for {settings.audit_oidc_audience}"
    if not settings.audit_users:
        return "none (CDS_SPINE_AUDIT_USERS is empty: /audit and /dashboard answer 404)"
    return ", ".join(f"{user.name} ({user.role})" for user in settings.audit_users)


def _origin_problems(settings: Settings) -> list[str]:
    """CORS origins that no browser sends: an origin is scheme://host[:port], without a path or a slash."""
    return [f"CDS_SPINE_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port], no path or trailing "
            f"slash): browsers at it are refused" for origin in settings.cors_origins
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin)]


def _knowledge_findings(settings: Settings) -> tuple[list[str], str]:
    """Errors, and what is loaded: the knowledge, its code systems and the measure."""
    try:
        knowledge = load_knowledge(settings.knowledge_dir(), settings.local_code_systems)
        load_measure(settings.knowledge_dir(), knowledge)
    except KnowledgeError as exc:
        return [f"invalid clinical knowledge: {exc}"], f"knowledge: {settings.knowledge_dir()}: not loaded"
    return [], (f"knowledge: {settings.knowledge_dir()} (pathway {knowledge.config.version}, version "
                f"{knowledge.version}, {len(knowledge.valueset_ids)} value sets)\n"
                f"{_code_systems_line(knowledge, settings)}")


@app.command("check-config")
def check_config() -> None:
    """A pre-flight check: validate the settings, the trusted clients, the knowledge and the audit store, say
    what the service would run with, and list every error and warning at once.
    Exit code 0: fine; 1: warnings (it runs, but look); 2: errors (it does not start, or must not)."""
    settings, errors = _settings_to_check()
    try:
        issuers = trusted_issuers(settings)
    except ConfigurationError as exc:
        issuers = None
        errors += exc.problems
    if settings.trusted_clients and settings.trusted_clients.is_file() and \
            PLACEHOLDER in settings.trusted_clients.read_text(encoding="utf-8", errors="replace").upper():
        errors.append(f"CDS_SPINE_TRUSTED_CLIENTS={settings.trusted_clients} still holds the shipped placeholder "
                      f"{PLACEHOLDER}: list the EHRs you trust")
    knowledge_errors, knowledge = _knowledge_findings(settings)
    errors += knowledge_errors + _origin_problems(settings)
    store_errors, warnings, store = _store_findings(settings)
    errors += store_errors
    if settings.audit_hash_key is not None and len(settings.audit_hash_key.get_secret_value()) < MIN_AUDIT_HASH_KEY:
        errors.append(f"CDS_SPINE_AUDIT_HASH_KEY is too short: at least {MIN_AUDIT_HASH_KEY} random characters "
                      f"(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    typer.echo(f"version: {__version__}")
    for line in trust_summary(settings, issuers):
        typer.echo(line)
    typer.echo(f"public base URL: {settings.public_base_url or 'unset (needed when authentication is required)'}")
    typer.echo(f"CORS origins: {', '.join(settings.cors_origins)} (browsers at other origins cannot read the "
               f"answers: a sandbox in a browser must be listed, or *)")
    typer.echo(f"forwarded headers trusted from: {settings.forwarded_allow_ips}")
    typer.echo(knowledge)
    typer.echo(f"audit store: {store}")
    typer.echo(f"audit readers: {_audit_readers(settings)}")
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if errors or warnings:
        raise typer.Exit(2 if errors else 1)


By = Enum("By", {name.replace("-", "_"): name for name in orders.GROUPINGS}, type=str)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    measure_report = "measure-report"


PROGRESS_THRESHOLD = 5000


def _day(value: str | None, option: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


def _cell(key: str, value: object) -> str:
    if key.endswith("Rate") or key.endswith(" rate"):
        return "–" if value is None else f"{value * 100:.1f}%"
    return str(value)


def _table(rows: list[dict]) -> str:
    """The report as a text table: the overall measure, each component's rate, the overrides."""
    components = [cid for cid in rows[0]["components"]][1:]
    columns = [("label", "Group"), ("orders", "Orders"), ("excluded", "Excluded"), ("adherent", "Adherent"),
               ("adherenceRate", "Adherence"), *((f"{cid} rate", cid) for cid in components),
               ("cards", "Cards"), ("overridden", "Overridden"), ("overrideRate", "Override rate")]
    flat = [formats.flat(row) for row in rows]
    cells = [[title for _, title in columns]] + [[_cell(key, row[key]) for key, _ in columns] for row in flat]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(line, widths, strict=True))) for line in cells)


def _reading_engine(settings: Settings):
    """The audit store, to read: a store that does not exist or is not migrated is exit 3 (nothing created)."""
    engine = open_engine(settings.database_url)
    if sqlite_file_missing(engine):  # a report reads; it never creates or migrates a store
        problem = (f"no audit store at {shown_url(settings.database_url)} (the file does not exist; "
                   f"check CDS_SPINE_DATABASE_URL)")
    else:
        problem = schema_problem(engine)
    if problem:
        engine.dispose()
        raise _store_problem(StoreProblem(problem))
    return engine


@app.command()
def report(since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, UTC), included.")] = None,
           until: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD, UTC), included.")] = None,
           by: Annotated[By, typer.Option(help="Group orders by.")] = By.month,
           output: Annotated[Format, typer.Option("--format", help=(
               "Output format; measure-report: the FHIR MeasureReport of the period (needs --since and "
               "--until)."))] = Format.table) -> None:
    """Pathway adherence (the Measure's components) and overrides from the audit store (CDS_SPINE_DATABASE_URL)."""
    period = orders.Period(_day(since, "--since"), _day(until, "--until"))
    if period.since and period.until and period.since > period.until:
        raise typer.BadParameter(f"--since {period.since} is after --until {period.until}", param_hint="--since")
    if output is Format.measure_report and not (period.since and period.until):
        raise typer.BadParameter("a MeasureReport needs --since and --until", param_hint="--format")
    settings = _settings()
    measure = _measure(settings, _knowledge(settings))
    engine = _reading_engine(settings)
    if output is Format.measure_report:
        document = measure_report.measure_report(engine, measure, period.since, period.until, datetime.now(UTC))
        engine.dispose()
        typer.echo(json.dumps(document, indent=2))
        return
    services = orders.ORDER_SERVICES if by.value == "service" else (orders.ORDER_SIGN,)
    total = orders.count_orders(engine, period, services)
    if total >= PROGRESS_THRESHOLD:
        with typer.progressbar(length=total, label="Scanning decisions", file=sys.stderr) as bar:
            rows = scoring.grouped(orders.StoredOrders(engine), period, by.value, measure, progress=bar.update)
    else:
        rows = scoring.grouped(orders.StoredOrders(engine), period, by.value, measure)
    engine.dispose()
    if output is Format.json:
        typer.echo(json.dumps({"period": period.as_dict(), "by": by.value, "rows": rows}, indent=2))
    elif output is Format.csv:
        typer.echo(formats.rows_as_csv(rows), nl=False)
    else:
        typer.echo(_table(rows) if rows else "No orders evaluated in this period.")


@app.command("audit-key")
def audit_key(name: Annotated[str, typer.Argument(help="The user's name, as the access log will show it.")],
              role: Annotated[str, typer.Argument(help="viewer, or analyst (may see plain patient ids).")]) -> None:
    """Make an API key for a named audit user: the key to hand to the user (once), and the entry to add to
    CDS_SPINE_AUDIT_USERS (which keeps only its SHA-256)."""
    try:
        user = AuditUser(name=name, role=role, key_sha256="0" * 64)
    except ValidationError as exc:
        typer.echo(f"cds-spine: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    key = new_key()
    typer.echo(f"key (give it to {name}; it is not stored): {key}")
    entry = user.model_copy(update={"key_sha256": key_hash(key)}).model_dump()
    typer.echo(f"CDS_SPINE_AUDIT_USERS entry: {json.dumps(entry)}")


@app.command("test-token")
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


@app.command()
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
    if (test_issuer / TRUSTED_CLIENTS_FILE).is_file():
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
        raise typer.Exit(1)


class BulkEngine(str, Enum):
    local = "local"
    spark = "spark"


def _patient_keys(settings: Settings) -> tuple[bytes | None, str]:
    """How a bulk run shows patient ids: as the live audit does (the same keyed hash, so the two can be
    joined), plain when the audit keeps plain ids, else a keyed hash with a key of this run only."""
    if settings.audit_plain_patient_ids:
        return None, "plain patient ids (CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS)"
    if settings.audit_hash_key is not None:
        return settings.audit_hash_key.get_secret_value().encode(), "keyed hash (CDS_SPINE_AUDIT_HASH_KEY)"
    return os.urandom(32), ("keyed hash with a key of this run only (set CDS_SPINE_AUDIT_HASH_KEY to match the "
                            "live audit's keys)")


def _problem_lines(summary: dict) -> list[str]:
    read = summary["read"]
    lines = [f"problem: {count:,} {kind}" for kind, count in read["problems"].items()]
    lines += [f"  {p['file']} line {p['line']}: {p['kind']}: {p['detail']}" for p in read["problemExamples"]]
    return lines


@app.command("audit-bulk")
def audit_bulk(
        export: Annotated[Path, typer.Argument(help=(
            "A FHIR Bulk Data export: a folder of .ndjson or .ndjson.gz files, one such file, or the export's "
            "manifest (JSON with output[].url)."))],
        since: Annotated[str | None, typer.Option(help="First procedure day (YYYY-MM-DD), included.")] = None,
        until: Annotated[str | None, typer.Option(help="Last procedure day (YYYY-MM-DD), included.")] = None,
        out: Annotated[Path, typer.Option(help="Folder for rows.parquet, rows.csv, summary.json and "
                                               "measure-report.json.")] = Path("audit-bulk"),
        engine: Annotated[BulkEngine, typer.Option(help="local: every core of this machine; spark: "
                                                        "CDS_SPINE_SPARK_MASTER (default local[*]).")] = BulkEngine.local,
        workers: Annotated[int | None, typer.Option(min=1, help="local: processes (default: every core).")] = None,
        partitions: Annotated[int | None, typer.Option(min=1, help="Patient partitions (default: by size).")] = None,
        quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False) -> None:
    """Audit the past: every completed ESI and spine-surgery Procedure of a FHIR Bulk Data export, evaluated
    as of the day before it with the live service's pathway and cards/. Exit 0: done; 1: done, but some
    input could not be read (counted in summary.json, with file and line); 2: the export cannot be read."""
    import time

    from .bulk.audit import AuditContext, AuditSpec
    from .bulk.export import ExportError, export_files
    from .bulk.outputs import RunInfo, RunWriter

    period = orders.Period(_day(since, "--since"), _day(until, "--until"))
    if period.since and period.until and period.since > period.until:
        raise typer.BadParameter(f"--since {period.since} is after --until {period.until}", param_hint="--since")
    settings = _settings()
    knowledge = _knowledge(settings)
    measure = _measure(settings, knowledge)
    try:
        files = export_files(export)
    except ExportError as exc:
        typer.echo(f"cds-spine: {exc}", err=True)
        raise typer.Exit(2) from None
    hash_key, patient_keys = _patient_keys(settings)
    spec = AuditSpec.of(settings.knowledge_dir(), settings.local_code_systems, period.since, period.until, hash_key)
    progress = None if quiet else (lambda line: typer.echo(line, err=True))
    writer = RunWriter(out, measure)
    started = time.monotonic()
    if engine is BulkEngine.spark:
        from .bulk.spark import run_spark

        totals, patients = run_spark(files, spec, writer.add, settings.spark_master, partitions, progress)
    else:
        from .bulk.local import run_local

        context = AuditContext(knowledge, measure, period.since, period.until, spec.patient_key())  # loaded once
        totals, patients = run_local(files, context, writer.add, workers, progress, partitions)
    summary = writer.finish(RunInfo(engine.value if engine is BulkEngine.local else f"spark {settings.spark_master}",
                                    str(export), period.since, period.until, knowledge.version, patient_keys),
                            totals, patients, time.monotonic() - started)
    typer.echo(f"{len(files)} files, {totals.lines:,} resources read, {totals.kept:,} kept; {patients:,} patients; "
               f"{summary['procedures']:,} procedures audited ({summary['period']['since']} to "
               f"{summary['period']['until']}); written to {out}/")
    if summary["procedures"]:
        typer.echo(_table(summary["by"]["month"]))
    problems = _problem_lines(summary)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
