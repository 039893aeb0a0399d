"""Asterisk Manager Interface: the sans-I/O codec, typed events, and the asyncio client.

See docs/ami.md. ``protocol`` is shared with the simulator's AMI server, so there is one parser.
"""
