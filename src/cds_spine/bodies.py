"""Reading a request body within bounds: its size (413) and the time it takes to arrive (408); a
client that goes away mid-body is ClientGone."""
from __future__ import annotations

import asyncio

from fastapi import Request
from starlette.requests import ClientDisconnect

from .errors import ClientGone, Issue, PayloadTooLarge, RequestTimeout


async def read_body(request: Request, max_bytes: int, limit_name: str, timeout_seconds: float) -> bytes:
    """The whole body, or PayloadTooLarge (naming the setting `limit_name`), RequestTimeout (not all of it within
    `timeout_seconds`: CDS_SPINE_BODY_TIMEOUT_SECONDS), ClientGone."""
    too_large = PayloadTooLarge(Issue("too-long", f"the body exceeds {max_bytes} bytes ({limit_name})"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_bytes:
                    raise too_large
    except TimeoutError:
        raise RequestTimeout(Issue("timeout", f"the body was not received within {timeout_seconds:g} s "
                                              f"(CDS_SPINE_BODY_TIMEOUT_SECONDS)")) from None
    except ClientDisconnect:
        raise ClientGone() from None
    return bytes(body)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
