"""Suite-wide pytest configuration.

The database fixtures (``database_url``, ``db_pool``, ``empty_database_url``,
``callcore_settings``) come from the ``callcore.testing`` plugin, loaded through its ``pytest11``
entry point exactly as in a plugin author's project; see docs/database.md for how it picks its
server.
"""
