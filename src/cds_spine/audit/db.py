"""The audit database: SQLite in a file by default (WAL mode), PostgreSQL in production; its schema
is migrated with Alembic, once, under a lock, and its state can be checked without changing it."""
from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x0C_D5_5B_1E  # pg_advisory_xact_lock key: one migration at a time across replicas


class StoreProblem(Exception):
    """The audit store cannot be used: unreachable, or its schema is not the one this version needs.
    The message is one line and safe to print (no password)."""


def normalized_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (SQLAlchemy's default driver is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


SECRET_QUERY_PARAMETERS = ("password", "sslpassword")


def shown_url(url: str) -> str:
    """The store's URL with its password hidden (in the user part and as a query parameter), for messages and
    logs an operator reads; never for an unauthenticated answer (public_problem)."""
    try:
        parsed = make_url(normalized_url(url))
        hidden = {name: "***" for name in parsed.query if name.lower() in SECRET_QUERY_PARAMETERS}
        return parsed.update_query_dict(hidden).render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing rather than leaked
        return "(an invalid database URL)"


SQLITE_CACHE_KIB = 256
"""Page cache of each SQLite connection. SQLite's default (2 MiB) refills after every commit in WAL mode, in each
pooled connection, and glibc keeps what each worker thread freed: the service's memory grew with the calls it
had answered (12.7 MB over 14,500 calls, still rising). At 256 KiB it levels off (bench/results.md); the audit's
writes append and its reads touch a few index pages."""


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def open_engine(url: str) -> Engine:
    url = normalized_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


HEAD = ScriptDirectory.from_config(_config()).get_current_head()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on a file beside a SQLite database (SQLite's own DDL is not transactional here)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent). Safe to run from several processes at once:
    they take turns, on a PostgreSQL advisory lock or on a lock file beside a SQLite database, and each
    finds the schema as the one before left it. Raises StoreProblem."""
    config = _config()
    try:
        with _sqlite_file_lock(engine), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            if MigrationContext.configure(connection).get_current_revision() == HEAD:
                return  # current: nothing to run (Alembic's environment is not loaded for nothing at each start)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except (SQLAlchemyError, OSError) as exc:
        raise StoreProblem(_unreachable(engine, exc)) from None


UNUSABLE = "cannot be used"


def _unreachable(engine: Engine, exc: Exception) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    return (f"the audit store {shown_url(str(engine.url))} {UNUSABLE} "
            f"({type(exc).__name__}: {reason})")


def public_problem(problem: str) -> str:
    """What an unauthenticated answer (/readyz) may say of a store problem: never its URL, host, user or the
    driver's message (those go to the log)."""
    return f"the audit store {UNUSABLE} (the service log names the cause)" if UNUSABLE in problem else problem


def sqlite_file_missing(engine: Engine) -> bool:
    """A SQLite store whose file does not exist (connecting would create an empty one)."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:" and not Path(str(database)).exists()


def schema_problem(engine: Engine) -> str | None:
    """None when the store is reachable and its schema is the latest migration; else why not (one line)."""
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        return _unreachable(engine, exc)
    if current != HEAD:
        return (f"the audit store's schema is at {current or 'nothing (empty database)'}, this version needs "
                f"{HEAD}: run `cds-spine migrate`")
    return None
