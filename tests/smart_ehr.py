"""A small EHR the SMART app tests own (no EHR runs here): a SMART App Launch 2.0 authorization server and a
FHIR server, one ASGI app served on a real port. It checks what a strict EHR checks (the client, the redirect
URI, the audience, PKCE S256 on the token request), hands back the card's appContext with the token, serves
one patient's resources to the bearer of a token it issued, and records every request it received with the
Authorization header it carried."""
from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

CLIENT_ID = "cds-spine-timeline"


@dataclass
class Grant:
    patient: str
    app_context: str | None
    challenge: str
    redirect_uri: str
    scope: str


@dataclass
class OwnEhr:
    redirect_uri: str
    base: str = ""
    patients: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    launches: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    """Access token -> patient."""
    received: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Authorization header) of every request."""
    pkce_verified: int = 0
    scopes: list[str] = field(default_factory=list)
    refuse_authorization: bool = False
    v1_only: bool = False
    no_banner: bool = False
    """The EHR shows the patient beside the app (need_patient_banner false)."""
    token_seconds: int = 3600
    """The tokens' expires_in."""
    standalone_patient: str | None = None
    """The patient a user picks at the EHR in a standalone launch (no `launch` parameter)."""

    @property
    def fhir_base(self) -> str:
        return f"{self.base}/fhir"

    def launch(self, patient: str, resources: list[dict[str, Any]], app_context: str | None = None) -> str:
        """Register a launch of the app for this patient, holding these resources; the `launch` parameter."""
        self.patients[patient] = resources
        launch_id = secrets.token_urlsafe(8)
        self.launches[launch_id] = (patient, app_context)
        return launch_id

    def revoke_tokens(self) -> None:
        self.tokens.clear()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def ehr_app(ehr: OwnEhr) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):
        ehr.received.append((request.method, request.url.path, request.headers.get("authorization")))
        return await call_next(request)

    @app.get("/fhir/.well-known/smart-configuration")
    async def configuration() -> JSONResponse:
        scopes = ["launch", "launch/patient", "patient/*.read"] if ehr.v1_only else \
            ["launch", "launch/patient", "patient/*.rs"]
        return JSONResponse({
            "authorization_endpoint": f"{ehr.base}/auth/authorize", "token_endpoint": f"{ehr.base}/auth/token",
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                             *([] if ehr.v1_only else ["permission-v2"])],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": scopes})

    @app.get("/auth/authorize")
    async def authorize(request: Request) -> Response:
        q = request.query_params
        problems = [name for name, ok in (
            ("response_type", q.get("response_type") == "code"), ("client_id", q.get("client_id") == CLIENT_ID),
            ("redirect_uri", q.get("redirect_uri") == ehr.redirect_uri), ("aud", q.get("aud") == ehr.fhir_base),
            ("code_challenge_method", q.get("code_challenge_method") == "S256"),
            ("code_challenge", len(q.get("code_challenge", "")) == 43),
            ("launch", q.get("launch") in ehr.launches if "launch" in q else ehr.standalone_patient is not None))
            if not ok]
        if problems:
            return JSONResponse({"error": "invalid_request", "problems": problems}, status_code=400)
        ehr.scopes.append(q["scope"])
        if ehr.refuse_authorization:
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'error': 'access_denied', 'state': q['state']})}",
                                    status_code=302)
        patient, app_context = ehr.launches[q["launch"]] if "launch" in q else (ehr.standalone_patient, None)
        code = secrets.token_urlsafe(16)
        ehr.grants[code] = Grant(patient, app_context, q["code_challenge"], q["redirect_uri"], q["scope"])
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}",
                                status_code=302)

    @app.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        grant = ehr.grants.pop(str(form.get("code")), None)
        if (grant is None or form.get("grant_type") != "authorization_code" or form.get("client_id") != CLIENT_ID
                or form.get("redirect_uri") != grant.redirect_uri or "client_secret" in form):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if s256(str(form.get("code_verifier", ""))) != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        ehr.pkce_verified += 1
        access_token = secrets.token_urlsafe(24)
        ehr.tokens[access_token] = grant.patient
        body = {"access_token": access_token, "token_type": "Bearer", "expires_in": ehr.token_seconds, "scope": grant.scope,
                "patient": grant.patient}
        if grant.app_context is not None:
            body["appContext"] = grant.app_context
        if ehr.no_banner:
            body["need_patient_banner"] = False
        return JSONResponse(body)

    @app.get("/fhir/{resource_type}")
    async def search(resource_type: str, request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization", "")
        patient = ehr.tokens.get(authorization.removeprefix("Bearer "))
        if not authorization.startswith("Bearer ") or patient is None:
            return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "login", "diagnostics": "invalid token"}]}, status_code=401)
        mine = [r for r in ehr.patients.get(patient, []) if r["resourceType"] == resource_type]
        if "_id" in request.query_params:  # Medications and Encounters the record names
            found = [r for r in mine if r.get("id") in request.query_params["_id"].split(",")]
        else:
            found = mine if request.query_params.get("patient", "").removeprefix("Patient/") == patient else []
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(found),
                             "entry": [{"resource": r} for r in found]}, media_type="application/fhir+json")

    return app
