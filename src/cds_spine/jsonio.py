"""The one JSON codec of the service (orjson), and the JSON response built on it."""
from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
