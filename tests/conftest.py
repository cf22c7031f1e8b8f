from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cds_spine.app import create_app
from cds_spine.pathway import load_knowledge
from cds_spine.settings import Settings


@pytest.fixture(scope="session")
def knowledge():
    return load_knowledge(Settings().knowledge_dir())


@pytest.fixture
def make_client(knowledge):
    """A TestClient on an app built with the given settings (lifespan running)."""
    clients = []

    def make(**settings) -> TestClient:
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
