"""Real keys and real signed JWTs for the security tests."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

BASE = "https://cds.example.org"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: object

    @classmethod
    def ec(cls, kid: str, alg: str = "ES384") -> SigningKey:
        return cls(kid, alg, ec.generate_private_key(ec.SECP384R1()))

    @classmethod
    def rsa(cls, kid: str, alg: str) -> SigningKey:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def public_jwk(self) -> dict:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def jwks(*keys: SigningKey) -> dict:
    return {"keys": [key.public_jwk() for key in keys]}


def claims(iss: str, aud, lifetime: int = 300, **extra) -> dict:
    now = int(time.time())
    return {"iss": iss, "aud": aud, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4()), **extra}


def mint(key: SigningKey, payload: dict, **header) -> str:
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT", **header})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_unsigned(payload: dict, kid: str) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def mint_hs256_with_public_key(key: SigningKey, payload: dict) -> str:
    """The key-confusion attack: HMAC-signed with the public key's PEM bytes as the secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["tenant"] = "someone-else"
    return f"{header}.{_b64(json.dumps(data).encode())}.{signature}"
