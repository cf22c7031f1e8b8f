"""What the commands share: settings, knowledge and measure loaded or the exit code that says why not."""
from __future__ import annotations

from datetime import date
from typing import Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from ..audit.db import StoreProblem
from ..audit.measure import MeasureDefinition, load_measure
from ..audit.orders import ReportPeriod, reportable
from ..pathway import Knowledge, KnowledgeError, load_knowledge
from ..settings import Settings


def store_exit(exc: StoreProblem) -> typer.Exit:
    typer.echo(f"cds-spine: {exc}", err=True)
    return typer.Exit(3)


def setting_problems(exc: ValidationError | SettingsError) -> dict[str | None, str]:
    """Setting name (None: several together) -> what is wrong with it, naming the environment variable."""
    if isinstance(exc, SettingsError):  # a value that should be JSON is not
        field = str(exc).split('"')[1] if '"' in str(exc) else ""
        return {field: f"CDS_SPINE_{field.upper()}: not valid JSON"}
    problems: dict[str | None, str] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else None
        message = str(error["msg"]).removeprefix("Value error, ")
        where = "".join(f"entry {part + 1}, " if isinstance(part, int) else f"{part}: " for part in error["loc"][1:])
        text = f"CDS_SPINE_{name.upper()}: {where}{message}" if name else message
        problems[name] = f"{problems[name]}; {text}" if name in problems else text
    return problems


def read_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except (ValidationError, SettingsError) as exc:
        typer.echo(f"cds-spine: invalid setting: {'; '.join(setting_problems(exc).values())}", err=True)
        raise typer.Exit(2) from None


def settings_to_check() -> tuple[Settings, list[str], frozenset[str]]:
    """The settings, every problem with them, and the settings that were wrong: each is reported and replaced by
    its default, so that every other check still runs (the checks that read a replaced one are not made: they
    would report what is not true of the real configuration). Problems of several settings together end the
    check."""
    errors: list[str] = []
    defaults: dict[str, Any] = {}
    while True:
        try:
            return Settings(**defaults), errors, frozenset(defaults)
        except (ValidationError, SettingsError) as exc:
            problems = setting_problems(exc)
            errors += problems.values()
            fields = [name for name in problems if name in Settings.model_fields and name not in defaults]
            if len(fields) < len(problems):
                for error in errors:
                    typer.echo(f"error: {error}", err=True)
                raise typer.Exit(2) from None
            defaults.update({name: Settings.model_fields[name].default for name in fields})


def read_knowledge(settings: Settings) -> Knowledge:
    try:
        return load_knowledge(settings.knowledge_dir(), settings.local_code_systems)
    except KnowledgeError as exc:
        typer.echo(f"cds-spine: invalid clinical knowledge: {exc}", err=True)
        raise typer.Exit(2) from None


def code_systems_line(knowledge: Knowledge, settings: Settings) -> str:
    systems = knowledge.code_systems
    standard = ", ".join(system.name for system in systems.config.systems.values())
    site = (f"{len(systems.site.local)} from {settings.local_code_systems}"
            if settings.local_code_systems else "none from the site: CDS_SPINE_LOCAL_CODE_SYSTEMS is unset")
    return (f"code systems: {standard}; {len(systems.local)} local systems mapped to them ({site}). Codes under "
            f"any other system are not read: /metrics counts them by system "
            f"(cds_spine_unplaced_code_systems_total) and the log names each system once; map one to a standard "
            f"system in the file CDS_SPINE_LOCAL_CODE_SYSTEMS names (docs/deploy.md, \"Local code systems\")")


def read_measure(settings: Settings, knowledge: Knowledge) -> MeasureDefinition:
    try:
        return load_measure(settings.knowledge_dir(), knowledge)
    except KnowledgeError as exc:
        typer.echo(f"cds-spine: invalid measure: {exc}", err=True)
        raise typer.Exit(2) from None


def read_period(since: str | None, until: str | None) -> ReportPeriod:
    """--since and --until as a period; a bad day or an inverted period is a usage error naming the option."""
    period = ReportPeriod(parse_day(since, "--since"), parse_day(until, "--until"))
    if period.since and period.until and period.since > period.until:
        raise typer.BadParameter(f"--since {period.since} is after --until {period.until}", param_hint="--since")
    return period


def parse_day(value: str | None, option: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None
    try:
        return reportable(day)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: {exc}", param_hint=option) from None
