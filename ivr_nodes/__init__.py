"""Built-in IVR node plugins, one module per node type, installed as ``callcore.ivr_nodes``.

The IVR engine and its ``register_ivr_nodes`` hook arrive with the inbound work; until then
this package holds no node.
"""
