"""Built-in plugins (dispositions, later dial strategies and alert channels), installed as
``callcore.plugins``. They use only the public API a third-party plugin would."""
