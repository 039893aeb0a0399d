"""Logging set-up: one line per record, key=value context, nothing secret."""

from __future__ import annotations

import logging
import sys


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
