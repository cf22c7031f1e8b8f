#!/usr/bin/env python3
"""A small local FHIR R4 server holding the example patients, for trying the service with the CDS Hooks
sandbox on a machine without Docker (docs/deploy.md, "Trying it with the CDS Hooks sandbox"):

    make example-fhir            # http://localhost:8081/fhir, the examples loaded, dated today

It keeps resources in memory and answers what the sandbox and the service ask: the CapabilityStatement,
reads, searches by `_id`, `patient`/`subject` and (Patient) `name`, with the `_include`s the service's
prefetch templates use, and transaction Bundles POSTed to the base (to load more). Any origin may call it
(CORS), as a browser-based sandbox must. A test tool, not a FHIR server for real data.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
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


def build(bundles: list[dict]) -> Starlette:
    store = Store()
    for bundle in bundles:
        store.load(bundle)

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

    return Starlette(routes=[Route("/fhir/metadata", metadata), Route("/fhir", transaction, methods=["POST"]),
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
