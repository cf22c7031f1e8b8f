"""Issue 32, M6: the timeline's cookies are sealed with the deployment's secret (CDS_SPINE_SECRET_KEYS), never
with a key kept in the audit database; a rotation opens what the old secret sealed while the new one seals."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from cds_spine.settings import Settings
from cds_spine.smart.sessions import Launch, Sealer

OLD, NEW = b"o" * 32, b"n" * 32
LAUNCH = Launch(state="s", verifier="v", iss="https://ehr.example.org/fhir", token_endpoint="https://ehr.example.org/t")


def test_a_rotation_opens_the_old_secrets_cookies_and_seals_with_the_new():
    sealed_before = Sealer([OLD]).seal(LAUNCH)
    rotated = Sealer([NEW, OLD])
    assert rotated.open(sealed_before, Launch, 60) == LAUNCH
    assert Sealer([NEW]).open(rotated.seal(LAUNCH), Launch, 60) == LAUNCH
    assert Sealer([NEW]).open(sealed_before, Launch, 60) is None  # the old secret dropped: its cookies end


def test_without_a_secret_each_process_has_its_own():
    assert Sealer([]).open(Sealer([]).seal(LAUNCH), Launch, 60) is None


def test_the_timeline_in_production_needs_the_secret():
    production = {"smart_client_id": "spine-timeline", "public_base_url": "https://cds.example.org", "auth": "required"}
    with pytest.raises(ValidationError, match="CDS_SPINE_SECRET_KEYS"):
        Settings(**production)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(**production, secret_keys="short")
    settings = Settings(**production, secret_keys=f"{NEW.decode()},{OLD.decode()}")
    assert [key.get_secret_value() for key in settings.secret_keys] == [NEW.decode(), OLD.decode()]
    assert "n" * 32 not in repr(settings)
    assert Settings(smart_client_id="spine-timeline", public_base_url="http://127.0.0.1:8080").secret_keys == ()
