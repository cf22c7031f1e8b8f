"""The service under benchmark, as `make run` runs it (uvicorn, one worker, audit in SQLite; the body
limit raised to 16 MB for the 5,000-resource patient), plus two reference endpoints in the same process:

- POST /bench/floor: receive the body, decode the JSON with orjson (the fastest full decoder),
  answer {"cards": []} (the floor);
- POST /bench/parse: receive the body and parse it lazily as the service does (simdjson), nothing
  read: a reference for how much of the floor is building Python objects;
- POST /bench/naive: validate every prefetched resource with the fhir.resources R4B models, then
  evaluate as the service does (what a naive service would do), without the audit write.
"""
from __future__ import annotations

import argparse
from datetime import UTC, datetime

import orjson
import uvicorn
from fastapi import Request
from fhir.resources.R4B import get_fhir_model_class

from cds_spine import jsonio
from cds_spine.app import create_app, tune_gc_for_serving
from cds_spine.appstate import state_of
from cds_spine.cdshooks.calls import Caller, parse_call
from cds_spine.cdshooks.models import CdsResponse
from cds_spine.cdshooks.routes import HookState
from cds_spine.cdshooks.services import SERVICES
from cds_spine.jsonio import JsonResponse
from cds_spine.settings import Settings


def build(database_url: str):
    app = create_app(Settings(database_url=database_url, log_level="warning"))

    @app.post("/bench/floor")
    async def floor(request: Request) -> JsonResponse:
        orjson.loads(await request.body())
        return JsonResponse({"cards": []})

    @app.post("/bench/parse")
    async def parse(request: Request) -> JsonResponse:
        jsonio.parse(await request.body())
        return JsonResponse({"cards": []})

    @app.post("/bench/naive")
    async def naive(request: Request) -> JsonResponse:
        body = orjson.loads(await request.body())
        for value in (body.get("prefetch") or {}).values():
            for entry in (value or {}).get("entry", []):
                resource = entry["resource"]
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        state = state_of(request.app, HookState)
        call = parse_call(SERVICES["spine-pathway-order-sign"], body, state.limits.max_draft_orders)
        answer = await state.answerer.answer(call, datetime.now(UTC), Caller(), inline=False)
        return JsonResponse(CdsResponse(cards=answer.cards).wire())

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    app = build(args.database_url)
    tune_gc_for_serving()  # as `cds-spine serve` does
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
