"""`cds-spine check-config`: the pre-flight check of everything the service would start with."""
from __future__ import annotations

import os
import re
from pathlib import Path

import typer

from .. import __version__
from ..audit.db import HEAD, open_engine, schema_problem, shown_url, sqlite_file_missing
from ..audit.measure import load_measure
from ..pathway import KnowledgeError, load_knowledge
from ..security.policy import ConfigurationError, trust_summary, trusted_issuers
from ..security.test_issuer import ISSUER as TEST_ISSUER
from ..security.trusted_clients import TrustedIssuer
from ..settings import PLACEHOLDER, Settings
from .common import (
    code_systems_line,
    settings_to_check,
)

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
                f"{code_systems_line(knowledge, settings)}")


def _profile_warnings(settings: Settings, issuers: list[TrustedIssuer] | None) -> list[str]:
    """The epic profile without the site's referral preference-list item: its cards cannot suggest the referral."""
    epic = [issuer.client.iss for issuer in issuers or () if issuer.client.profile == "epic"]
    defaulted = issuers is None or any(issuer.client.profile is None for issuer in issuers)
    if settings.ehr_profile == "epic" and defaulted:
        epic.append("CDS_SPINE_EHR_PROFILE")
    if not epic or settings.epic_referral_preference_item:
        return []
    return [f"the epic profile ({', '.join(epic)}) without CDS_SPINE_EPIC_REFERRAL_PREFERENCE_ITEM: its cards "
            f"cannot suggest the physical-therapy referral (set it to the site's preference-list item)"]


def _testing_trust(settings: Settings, issuers: list[TrustedIssuer] | None) -> list[str]:
    """Trust meant for a test machine: the local test issuer (its key sits in a folder on disk) or the public
    sandbox (its private key is published) on an address others can reach."""
    warnings = []
    if any(issuer.client.iss == TEST_ISSUER for issuer in issuers or ()):
        warnings.append(f"the local test issuer ({TEST_ISSUER}, `cds-spine test-token`) is trusted: anyone with its "
                        f"key folder can call as an EHR; never with real patients")
    if settings.sandbox and not settings.binds_loopback():
        warnings.append(f"CDS_SPINE_SANDBOX=true on {settings.host}: the sandbox's private key is public, so anyone "
                        f"who can reach this address can call as the sandbox; use it on a loopback address only")
    return warnings


def _timeline(settings: Settings, issuers: list[TrustedIssuer] | None) -> tuple[str, list[str]]:
    """What the pathway timeline (the SMART app) runs with, and a warning when it is on but nothing may launch it."""
    launch_url = settings.smart_launch_url()
    if launch_url is None:
        return "pathway timeline: off (CDS_SPINE_SMART_CLIENT_ID is unset; cards carry no link to it)", []
    servers = [*settings.smart_fhir_servers, *(s for issuer in issuers or () for s in issuer.client.fhir_servers)]
    link = "cards link to it" if settings.smart_link else "cards do not link to it (CDS_SPINE_SMART_LINK=false)"
    line = (f"pathway timeline: on, client id {settings.smart_client_id}, launch URL {launch_url}, redirect URI "
            f"{launch_url.removesuffix('/launch')}/callback; {link}; launched from: {', '.join(servers) or 'no FHIR server'}")
    if servers:
        return line, []
    return line, ["the pathway timeline is on but no FHIR server may launch it: list them in "
                  "CDS_SPINE_SMART_FHIR_SERVERS or as fhir_servers in the trusted clients"]


def check_config() -> None:
    """A pre-flight check: validate the settings, the trusted clients, the knowledge and the audit store, say
    what the service would run with, and list every error and warning at once.
    Exit code 0: fine; 1: warnings (it runs, but look); 2: errors (it does not start, or must not)."""
    settings, errors, wrong = settings_to_check()
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
    warnings: list[str] = []
    if wrong & {"database_url", "schema_managed"}:
        store = "not checked (its setting is wrong: see the error)"
    else:
        store_errors, warnings, store = _store_findings(settings)
        errors += store_errors
    warnings += _profile_warnings(settings, issuers) + _testing_trust(settings, issuers)
    timeline, timeline_warnings = _timeline(settings, issuers)
    warnings += timeline_warnings
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
    typer.echo(timeline)
    typer.echo(knowledge)
    typer.echo(f"audit store: {store}")
    readers = "not checked (CDS_SPINE_AUDIT_USERS is wrong: see the error)" if "audit_users" in wrong \
        else _audit_readers(settings)
    typer.echo(f"audit readers: {readers}")
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if errors or warnings:
        raise typer.Exit(2 if errors else 1)
