from __future__ import annotations

import inspect
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from cds_spine.app import create_app
from cds_spine.audit import tables
from cds_spine.audit.db import migrate, open_engine
from cds_spine.pathway import load_knowledge
from cds_spine.settings import Settings

POSTGRES = os.environ.get("CDS_SPINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def knowledge():
    return load_knowledge(Settings().knowledge_dir())


@pytest.fixture(scope="session")
def postgres() -> str:
    """The project's PostgreSQL server; the tests that need it fail, saying so, when it is down."""
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES} ({exc}). Start it: "
                    f"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start", pytrace=False)
    return POSTGRES


@pytest.fixture
def postgres_schema(postgres):
    """A fresh schema per test, dropped afterwards: tests never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each store test runs against SQLite and against PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("postgres_schema")


@pytest.fixture(scope="session")
def migrated_postgres(postgres) -> Iterator[str]:
    """A PostgreSQL schema at the current migration, once per session (per xdist worker); `store_url` empties it
    for each test."""
    schema = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    url = f"{postgres}?options=-csearch_path%3D{schema}"
    engine = open_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, migrated_store) -> str:
    """An empty audit store at the current schema, on SQLite and on PostgreSQL, for the tests of what is stored
    (not of the migrations, which take `database_url`): a copy of the migrated SQLite file, or the session's
    migrated PostgreSQL schema with every table emptied (a fresh schema migrated per test cost about 0.3 s)."""
    if request.param == "sqlite":
        store = tmp_path / "audit.db"
        shutil.copyfile(migrated_store, store)
        return f"sqlite:///{store}"
    url = request.getfixturevalue("migrated_postgres")
    names = ", ".join(table.name for table in tables.metadata.sorted_tables)
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")  # a connection a test left open fails loudly, never hangs
        connection.execute(f"SET search_path TO {url.rsplit('%3D', 1)[1]}")
        connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return url


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty SQLite audit store at the current schema, migrated once per session: each test's store is a
    copy of it (create_app finds it current and migrates nothing)."""
    path = tmp_path_factory.mktemp("store") / "audit.db"
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def make_client(knowledge, tmp_path, migrated_store):
    """A TestClient on an app built with the given settings (lifespan running), audit in a temporary SQLite
    (a copy of the migrated store) unless the settings name one."""
    clients = []

    def make(**settings) -> TestClient:
        if "database_url" not in settings:
            store = tmp_path / f"audit-{len(clients)}.db"
            shutil.copyfile(migrated_store, store)
            settings["database_url"] = f"sqlite:///{store}"
        client = TestClient(create_app(Settings(**settings), knowledge))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def chromium() -> str:
    """Debian's chromium, for the page tests (Playwright cannot download its own browser here)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed; `make test` installs it (apt-get install chromium)",
                    pytrace=False)
    return path


SLOW_MODULES = {"test_fuzz", "test_load", "test_bulk", "test_dashboard", "test_dockerfile", "test_walkthrough",
                "test_operations", "test_logs", "test_cli", "test_kubernetes", "test_compare_knowledge"}
"""Suites that start real servers, browsers, Spark or many processes: marked `slow`, so that
`pytest -m "not slow"` is the fast inner loop; `make test` runs them all."""


IN_PROCESSES = re.compile(r"\brun_cli\(|\bsubprocess\.|\bserving\(")
"""A test whose own code runs the command line, a subprocess or the service in a process of its own."""


def pytest_collection_modifyitems(items):
    """`slow`: the slow suites, and elsewhere every test that drives a browser or runs processes of its own
    (each such process imports the service and loads cards/, 1.5-2 s), so the inner loop stays in process."""
    for item in items:
        if (item.module.__name__ in SLOW_MODULES or "chromium" in getattr(item, "fixturenames", ())
                or IN_PROCESSES.search(inspect.getsource(item.function))):
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path, config):
    """The fast loop (`-m "not slow"`) does not import the slow suites at all: their imports and generated
    cases (Playwright, pyarrow, Spark, schemathesis's operations) cost seconds in every worker."""
    if config.getoption("markexpr") == "not slow" and collection_path.suffix == ".py" and \
            collection_path.stem in SLOW_MODULES:
        return True
    return None
