"""Running it as an operator does: the version, liveness and readiness (with the database going away and
coming back), `cds-spine migrate` run concurrently, a managed schema, and one-line start-up errors."""
from __future__ import annotations

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from cli import CDS_SPINE, PATIENCE, ROOT, clean_env, run_cli
from sqlalchemy import text
from support import audit_store

from cds_spine import __version__
from cds_spine.audit.db import HEAD, open_engine, schema_problem


def test_version_in_the_cli_healthz_and_readyz(client):
    assert run_cli("--version").stdout.strip() == f"cds-spine {__version__}"
    for path in ("/healthz", "/readyz"):
        body = client.get(path).json()
        assert body["version"] == __version__ and body["knowledgeVersion"]


@pytest.fixture
def login_role(postgres):
    """A PostgreSQL role of its own, which a test can forbid to log in (the database gone, for this service)."""
    role = f"cds_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
    yield role
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        connection.execute(f"REASSIGN OWNED BY {role} TO postgres")
        connection.execute(f"DROP ROLE {role}")


def set_login(postgres: str, role: str, allowed: bool) -> None:
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"ALTER ROLE {role} {'LOGIN' if allowed else 'NOLOGIN'}")
        if not allowed:
            connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))


def test_readiness_follows_the_database_down_and_back(make_client, postgres_schema, postgres, login_role, caplog):
    """Issue 32, M4 too: /readyz needs no login, so it names no host, user or password (a password given as a
    query parameter included); the log names the store for the operator, the password hidden."""
    url = postgres_schema.replace("postgresql://postgres@", f"postgresql://{login_role}@") + "&password=s3cret"
    client = make_client(database_url=url)
    assert client.get("/readyz").status_code == 200
    set_login(postgres, login_role, False)
    with caplog.at_level("WARNING", logger="cds_spine"):
        down = client.get("/readyz")
    assert (down.status_code, down.json()["status"]) == (503, "unready")
    assert f"{login_role}@127.0.0.1" in caplog.text and "password=***" in caplog.text
    assert "s3cret" not in caplog.text + down.text
    assert down.json()["reason"] == "the audit store cannot be used (the service log names the cause)"
    assert login_role not in down.text and "127.0.0.1" not in down.text  # no connection detail without a login
    assert client.get("/healthz").status_code == 200  # alive: no restart needed
    set_login(postgres, login_role, True)
    assert client.get("/readyz").status_code == 200


def test_readiness_says_when_the_schema_is_behind(client):
    with audit_store(client).engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "run `cds-spine migrate`" in response.json()["reason"]


def migrate_at_once(url: str, count: int) -> list[subprocess.CompletedProcess]:
    def one(_):
        return subprocess.run([CDS_SPINE, "migrate"], capture_output=True, text=True, timeout=PATIENCE, cwd=ROOT,
                              env=clean_env(CDS_SPINE_DATABASE_URL=url))
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_migrate_run_by_several_replicas_at_once_on_a_fresh_store(database_url):
    results = migrate_at_once(database_url, 4)
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-500:] for r in results]
    assert all(f"schema at {HEAD}" in r.stdout for r in results)
    assert all("Traceback" not in r.stderr for r in results)
    engine = open_engine(database_url)
    assert schema_problem(engine) is None
    engine.dispose()


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["migrate"], ["report"]])
def test_an_unreachable_store_is_one_line_naming_it_without_the_password(command):
    result = subprocess.run([CDS_SPINE, *command], capture_output=True, text=True, timeout=PATIENCE, cwd=ROOT,
                            env=clean_env(CDS_SPINE_DATABASE_URL="postgresql://svc:s3cret@127.0.0.1:1/audit"))
    assert result.returncode == 3
    [line] = [line for line in result.stderr.splitlines() if line.startswith("cds-spine:")]
    assert line.startswith("cds-spine: the audit store postgresql+psycopg://svc:***@127.0.0.1:1/audit cannot be used")
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


def test_a_managed_schema_is_not_migrated_by_serve_and_must_be_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    refused = run_cli("serve", "--port", "1", CDS_SPINE_DATABASE_URL=url, CDS_SPINE_SCHEMA_MANAGED="true")
    assert refused.returncode == 3
    assert "schema is at nothing (empty database)" in refused.stderr and "run `cds-spine migrate`" in refused.stderr
    assert run_cli("migrate", CDS_SPINE_DATABASE_URL=url).returncode == 0
    engine = open_engine(url)
    assert schema_problem(engine) is None
    engine.dispose()
