"""The core error ladder: every error callcore raises on purpose derives from CallcoreError.

Messages always name the offending value so an operator can act on them without a debugger.
"""


class CallcoreError(Exception):
    """Base of every deliberate callcore error."""


class ConfigError(CallcoreError):
    """A setting is missing, malformed or inconsistent with another one."""


class ValidationError(CallcoreError):
    """Input data does not match what is expected."""


class DatabaseError(CallcoreError):
    """The database cannot be reached, started or brought to the expected schema."""


class MigrationError(DatabaseError):
    """A migration cannot be applied, or an applied one was edited afterwards."""


class PluginError(CallcoreError):
    """A plugin is broken or conflicts with another one."""


class DuplicateNameError(PluginError):
    """Two plugins claim the same name in one registry."""
