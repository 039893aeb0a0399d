"""The application's typed state slots, in a module of their own so every part of the web layer
can import them at the top without importing ``web.app`` (which imports every part)."""

from aiohttp import web

from callcore.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
