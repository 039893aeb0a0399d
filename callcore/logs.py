"""Logging set-up: one line per record, key=value context, nothing secret."""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit


def configure_logging(level: str) -> None:
    """Send callcore's logs to stderr; aiohttp's access log stays at WARNING unless debugging."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if level != "DEBUG":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def url_for_log(url: str) -> str:
    """``url`` without what may hold a secret: a user name and password, the query string."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(not a URL)"
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"
