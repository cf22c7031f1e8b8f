"""A local test issuer: a key pair of its own, its JWKS and a trusted-clients file, to call the service with
authentication on (curl, a test), as an EHR would. The service trusts it only when CDS_SPINE_TRUSTED_CLIENTS
names its file, so it is never enabled by default; its private key stays in its folder (mode 0600)."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://test-issuer.cds-spine.invalid"
KEY_ID = "cds-spine-test-issuer"
ALGORITHM = "ES384"
KEY_FILE = "test-issuer-key.pem"
JWKS_FILE = "test-issuer-jwks.json"
TRUSTED_CLIENTS_FILE = "trusted-clients.yaml"
EXAMPLE_FHIR_SERVERS = ("http://localhost:8081/fhir", "http://127.0.0.1:8081/fhir")


def ensure_issuer(folder: Path) -> bool:
    """Create the issuer's key, JWKS and trusted-clients file in `folder` unless there; True when created."""
    key_path = folder / KEY_FILE
    if key_path.exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    (folder / JWKS_FILE).write_text(json.dumps({"keys": [{**public, "kid": KEY_ID, "alg": ALGORITHM, "use": "sig"}]},
                                               indent=1))
    (folder / TRUSTED_CLIENTS_FILE).write_text(
        "# A local test issuer (cds-spine test-token): for trying the service, never for real patients.\n"
        "# fhir_servers: the example FHIR server (make example-fhir); list yours if it is elsewhere.\n"
        f"- iss: {ISSUER}\n  jwks_file: {JWKS_FILE}\n  algorithms: [{ALGORITHM}]\n"
        f"  fhir_servers: [{', '.join(EXAMPLE_FHIR_SERVERS)}]\n")
    return True


def mint(folder: Path, audience: str, lifetime_seconds: int = 300) -> str:
    """A JWT from the test issuer for calling `audience` (the full URL of the endpoint called)."""
    key = serialization.load_pem_private_key((folder / KEY_FILE).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # ensure_issuer writes one
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": ISSUER, "aud": audience, "iat": now, "exp": now + lifetime_seconds,
              "jti": str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": KEY_ID, "typ": "JWT"})
