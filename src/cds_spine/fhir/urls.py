"""URLs the FHIR access token may be sent to: normalised first, then compared with fhirServer.

A `next` link or a fallback query is compared only after normalising both sides as RFC 3986 §6
does (scheme and host in lower case, default port dropped, percent-encoding decoded, dot segments
removed), so `http://host/fhir/../outside` or `http://HOST:80/fhir/%2e%2e/outside` cannot pass as
being under `http://host/fhir`. The normalised URL is the one requested.
"""
from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
PATH_SAFE = "/:@!$&'()*+,;=-._~"


class UnsafeUrl(ValueError):
    """Not an absolute http(s) URL that can be compared safely."""


def _without_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on a decoded path (a `..` above the root stays at the root)."""
    kept: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(kept) > 1:
                kept.pop()
            if last:
                kept.append("")
        elif segment == ".":
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/".join(kept) or "/"


def normalized(url: str) -> str:
    """The URL in normal form; UnsafeUrl when it is not absolute http(s), carries credentials or a
    fragment, or its host cannot be read."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        raise UnsafeUrl("not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None or "\\" in url:
        raise UnsafeUrl("a URL with credentials or a backslash")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = _without_dot_segments(unquote(parts.path) or "/")
    return urlunsplit((scheme, netloc, quote(path, safe=PATH_SAFE), parts.query, ""))


def base_key(url: str) -> str:
    """A FHIR base URL as two that name the same server compare equal (normalised, no trailing slash)."""
    return normalized(url).split("?", 1)[0].rstrip("/")


def is_under(base: str, url: str) -> bool:
    """Whether `url` (normalised) is inside the FHIR base URL `base` (normalised)."""
    root = base_key(base) + "/"
    return normalized(url).startswith(root)
