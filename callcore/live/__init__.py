"""Live telephony state: channels, calls, queue members and devices of every Asterisk server.

``state`` is the pure model (AMI events and resync snapshots in, deltas out); ``tracker`` feeds
it from an :class:`~callcore.ami.manager.AMIManager` and publishes the deltas on the event bus;
``events`` declares the bus events. See docs/live.md.
"""
