"""Built-in IVR node plugins, one module per node type, installed as ``callcore.ivr_nodes``.

Each module is a plugin of its own, registered through ``register_ivr_nodes`` exactly as a
third-party node would be, and uses only the public API (:mod:`callcore.ivr`).
"""
