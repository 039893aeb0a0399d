"""The aiohttp web layer, installed as ``callcore.web``. The core never imports it."""
