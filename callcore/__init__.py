"""callcore: an open-source contact-center framework for Asterisk.

Plugins import the pluggy markers from here::

    import callcore

    @callcore.hookimpl
    def register_dispositions(registry): ...
"""

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "callcore"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
