"""FastAGI: the sans-I/O protocol, the server Asterisk's dialplan calls, and the session API."""
