"""The one rule for an API root a credential is sent to: http(s), no `user:password@` (it would be stored
and shown wherever the URL is), and plain http only to this machine (a local emulator or stand-in), so
that no credential travels in clear."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def api_root_problem(url: str, name: str) -> str | None:
    """Why `url` (named `name` in the message) must not be used, or None. A URL carrying credentials is
    not repeated."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return f"{name} carries credentials (user:password@): give the API root only (the URL is not shown here)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name} {url!r} is not an http(s) URL"
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return (f"{name} {url!r}: plain http is only allowed to 127.0.0.1/localhost (a local emulator or "
                "stand-in); the credentials would travel in clear")
    return None


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
