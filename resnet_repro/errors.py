"""The error a bad setting raises: found before any work starts, its message one line naming the fix.

run.py and the other entry points print it alone (no traceback) and exit with status 2. Bad data
raises data.DataError, its sibling. Kept apart from spec.py and config.py so that every module that
checks a setting can raise it without importing the config machinery.
"""


class ConfigError(ValueError):
    """A bad setting, found before any work starts; the message names the fix."""
