"""A local FHIR server that adds a fixed delay to every search, for the fallback benchmark."""
from __future__ import annotations

import argparse
import asyncio

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.patients import KEYS, patient_record


def build(delay_seconds: float, size: int) -> Starlette:
    record = patient_record(size)
    bundles = {kind: orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(record[key]),
                                   "entry": [{"resource": r} for r in record[key]]}) for kind, key in KEYS.items()}

    async def search(request: Request) -> Response:
        await asyncio.sleep(delay_seconds)
        empty = b'{"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}'  # e.g. DiagnosticReport
        return Response(bundles.get(request.path_params["kind"], empty), media_type="application/fhir+json")

    return Starlette(routes=[Route("/fhir/{kind}", search)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    uvicorn.run(build(args.delay, args.size), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
