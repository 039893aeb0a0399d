"""Jinja2 templates that render Asterisk configuration, installed as ``callcore.dialplan``.

``callcore dialplan render`` and its templates arrive with the telephony core.
"""
