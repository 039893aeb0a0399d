"""Asterisk configuration rendered from the database, installed as ``callcore.dialplan``.

``render`` holds the renderer behind ``callcore dialplan render``; ``templates/`` its Jinja2
templates (docs/dialplan.md).
"""
