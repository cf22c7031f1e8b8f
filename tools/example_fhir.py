#!/usr/bin/env python3
"""A small local example EHR: a FHIR R4 server holding the example patients, and a SMART App Launch
authorization server, for trying the service with the CDS Hooks sandbox and the pathway timeline on a
machine without Docker (docs/deploy.md, "Trying it with the CDS Hooks sandbox" and "The pathway timeline on a
laptop"):

    make example-fhir            # http://localhost:8081/fhir, the examples loaded, dated today

It keeps resources in memory and answers what the sandbox and the service ask: the CapabilityStatement,
reads, searches by `_id`, `patient`/`subject` and (Patient) `name`, with the `_include`s the service's
prefetch templates use, and transaction Bundles POSTed to the base (to load more). Any origin may call it
(CORS), as a browser-based sandbox must. For the timeline it offers a SMART configuration, an authorization
endpoint where a person picks the patient (or an EHR launch from /launch, with a card's appContext), and a
token endpoint that checks PKCE (S256). A test tool, not a FHIR server for real data: any client id is
accepted and the FHIR data is readable without a token.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import importlib.util
import json
import secrets
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

FHIR_JSON = "application/fhir+json"
# _include values the service's prefetch templates use: (source type, element) -> what it points to.
INCLUDES = {("Condition", "encounter"): "encounter", ("MedicationRequest", "medication"): "medicationReference",
            ("MedicationStatement", "medication"): "medicationReference", ("Encounter", "service-provider"):
            "serviceProvider"}
SEARCHED = ("Patient", "Condition", "Procedure", "MedicationRequest", "MedicationStatement", "ServiceRequest",
            "Encounter", "Medication", "Observation", "Practitioner", "Organization")


class Store:
    def __init__(self) -> None:
        self.resources: dict[str, dict[str, dict]] = defaultdict(dict)

    def load(self, bundle: dict) -> list[dict]:
        """Every entry's resource, kept by type and id (PUT and POST alike); the transaction-response entries."""
        answers = []
        for index, entry in enumerate(bundle.get("entry", [])):
            resource = entry.get("resource") or {}
            kind = resource.get("resourceType")
            if not kind:
                continue
            resource.setdefault("id", f"{kind.lower()}-{len(self.resources[kind]) + index + 1}")
            self.resources[kind][resource["id"]] = resource
            answers.append({"response": {"status": "200 OK", "location": f"{kind}/{resource['id']}"}})
        return answers

    def search(self, kind: str, params: dict[str, list[str]]) -> list[dict]:
        found = list(self.resources[kind].values())
        for name, values in params.items():
            wanted = {v for value in values for v in value.split(",")}
            if name == "_id":
                found = [r for r in found if r["id"] in wanted]
            elif name in ("patient", "subject"):
                targets = {w.split("/")[-1] for w in wanted}
                found = [r for r in found if _reference_id(r.get("subject") or r.get("patient")) in targets]
            elif name == "name" and kind == "Patient":
                found = [r for r in found if any(w.lower() in json.dumps(r.get("name", [])).lower() for w in wanted)]
        return found

    def included(self, matches: list[dict], includes: list[str]) -> list[dict]:
        extra = {}
        for include in includes:
            source, _, element = include.partition(":")
            path = INCLUDES.get((source, element))
            for resource in matches if path else ():
                reference = resource.get(path)
                target = reference.get("reference", "") if isinstance(reference, dict) else ""
                kind, _, rid = target.partition("/")
                if rid in self.resources.get(kind, {}):
                    extra[target] = self.resources[kind][rid]
        return list(extra.values())


def _reference_id(reference: object) -> str | None:
    return reference.get("reference", "").split("/")[-1] if isinstance(reference, dict) else None


def _outcome(status: int, text: str) -> JSONResponse:
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "not-found" if status == 404 else "invalid", "diagnostics": text}]},
        status_code=status, media_type=FHIR_JSON)


def todays_examples() -> list[dict]:
    """The example patients' Bundles, dated today (as `make examples` writes them)."""
    spec = importlib.util.spec_from_file_location("build_examples", Path(__file__).with_name("build_examples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.build(datetime.now(UTC).date())
    return [json.loads(text) for name, text in sorted(files.items()) if name.startswith("bundles/")]


class Authorizations:
    """The SMART side: launches (launch id -> patient and appContext), codes waiting for their token request,
    and the tokens issued (for the record only: the FHIR data is open)."""

    def __init__(self) -> None:
        self.launches: dict[str, tuple[str, str | None]] = {}
        self.codes: dict[str, dict[str, str | None]] = {}


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _patient_name(patient: dict) -> str:
    name = (patient.get("name") or [{}])[0]
    return " ".join([*name.get("given", []), name.get("family", "")]).strip() or patient["id"]


def _pick_page(request: Request, patients: list[dict]) -> HTMLResponse:
    """The standalone launch: the person at the keyboard picks the patient."""
    query = dict(request.query_params)
    items = "".join(f'<li><a href="?{html.escape(urlencode({**query, "patient": p["id"]}))}">'
                    f'{html.escape(_patient_name(p))}</a> ({html.escape(p["id"])})</li>' for p in patients)
    return HTMLResponse(f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Example EHR: pick "
                        f"a patient</title></head><body><main id=\"pick\"><h1>Example EHR: pick a patient</h1>"
                        f"<p>The app asks to open a patient's record. Pick one:</p><ul>{items}</ul></main></body>"
                        f"</html>")


def build(bundles: list[dict]) -> Starlette:
    store = Store()
    for bundle in bundles:
        store.load(bundle)
    grants = Authorizations()

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def smart_configuration(request: Request) -> JSONResponse:
        return JSONResponse({
            "authorization_endpoint": f"{base(request)}/auth/authorize", "token_endpoint": f"{base(request)}/auth/token",
            "capabilities": ["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                             "context-standalone-patient", "permission-v2"],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": ["launch", "launch/patient",
                                                                               "patient/*.rs"]})

    async def launch(request: Request) -> Response:
        """An EHR launch, as a chart or a card's link starts one: /launch?app=<the app's launch URL>&patient=<id>
        (&appContext=<the card's>); without a patient, a page to pick one."""
        query = request.query_params
        app_url, patient = query.get("app"), query.get("patient")
        if not app_url:
            return _outcome(400, "name the app's launch URL: /launch?app=http://localhost:8080/app/launch")
        if patient not in store.resources["Patient"]:
            return _pick_page(request, list(store.resources["Patient"].values()))
        launch_id = secrets.token_urlsafe(12)
        grants.launches[launch_id] = (patient, query.get("appContext"))
        return RedirectResponse(f"{app_url}?{urlencode({'iss': base(request) + '/fhir', 'launch': launch_id})}",
                                status_code=302)

    async def authorize(request: Request) -> Response:
        query = request.query_params
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256" \
                or not query.get("code_challenge") or not query.get("redirect_uri"):
            return _outcome(400, "a SMART authorization request needs response_type=code, redirect_uri and a PKCE "
                                 "S256 code_challenge")
        if query.get("launch") in grants.launches:
            patient, app_context = grants.launches[query["launch"]]
        elif query.get("patient") in store.resources["Patient"]:
            patient, app_context = query["patient"], None
        else:
            return _pick_page(request, list(store.resources["Patient"].values()))
        code = secrets.token_urlsafe(16)
        grants.codes[code] = {"patient": patient, "appContext": app_context, "challenge": query["code_challenge"],
                              "redirect_uri": query["redirect_uri"], "scope": query.get("scope", "")}
        return RedirectResponse(f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}",
                                status_code=302)

    async def token(request: Request) -> JSONResponse:
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        grant = grants.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code" or \
                form.get("redirect_uri") != grant["redirect_uri"] or \
                _s256(form.get("code_verifier", "")) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        body = {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 3600,
                "scope": grant["scope"], "patient": grant["patient"], "need_patient_banner": True}
        if grant["appContext"]:
            body["appContext"] = grant["appContext"]
        return JSONResponse(body)

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse({
            "resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
            "date": "2026-12-02", "format": ["json"], "rest": [{"mode": "server", "resource": [
                {"type": kind, "interaction": [{"code": "read"}, {"code": "search-type"}]} for kind in SEARCHED]}]},
            media_type=FHIR_JSON)

    async def search(request: Request) -> JSONResponse:
        kind = request.path_params["kind"]
        params: dict[str, list[str]] = defaultdict(list)
        for name, value in request.query_params.multi_items():
            params[name].append(value)
        includes = params.pop("_include", [])
        count = int(params.pop("_count", ["1000"])[0])
        matches = store.search(kind, params)[:count]
        entries = [{"fullUrl": f"{request.base_url}fhir/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                   for r in matches]
        entries += [{"resource": r, "search": {"mode": "include"}} for r in store.included(matches, includes)]
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries},
                            media_type=FHIR_JSON)

    async def read(request: Request) -> JSONResponse:
        kind, rid = request.path_params["kind"], request.path_params["rid"]
        found = store.resources.get(kind, {}).get(rid)
        return JSONResponse(found, media_type=FHIR_JSON) if found else _outcome(404, f"{kind}/{rid} is not here")

    async def transaction(request: Request) -> JSONResponse:
        bundle = await request.json()
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            return _outcome(400, "POST a transaction Bundle")
        return JSONResponse({"resourceType": "Bundle", "type": "transaction-response", "entry": store.load(bundle)},
                            media_type=FHIR_JSON)

    return Starlette(routes=[Route("/fhir/metadata", metadata),
                             Route("/fhir/.well-known/smart-configuration", smart_configuration),
                             Route("/launch", launch), Route("/auth/authorize", authorize),
                             Route("/auth/token", token, methods=["POST"]),
                             Route("/fhir", transaction, methods=["POST"]),
                             Route("/fhir/{kind}", search), Route("/fhir/{kind}/{rid}", read)],
                     middleware=[Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"],
                                            allow_headers=["*"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--bundles", type=Path, action="append", help="folders of transaction Bundles to load "
                        "(default: the examples, dated today)")
    args = parser.parse_args()
    bundles = [json.loads(path.read_text()) for folder in args.bundles for path in sorted(folder.glob("*.json"))] \
        if args.bundles else todays_examples()
    host = "localhost" if args.host == "127.0.0.1" else args.host  # as the docs and the test issuer name it
    print(f"example FHIR server: http://{host}:{args.port}/fhir ({len(bundles)} patients; "
          f"EXAMPLE_FHIR_PORT=... make example-fhir to move it)", flush=True)
    uvicorn.run(build(bundles), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
