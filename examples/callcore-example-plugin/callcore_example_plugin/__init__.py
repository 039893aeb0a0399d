"""An example third-party callcore plugin, shipped as its own distribution.

It is what a telephony engineer's package looks like: a module per plugin kind, advertised in
``[project.entry-points.callcore]``, using only callcore's public API.
"""
