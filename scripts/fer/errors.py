"""User-facing errors: one clear line, no traceback."""


class FERError(Exception):
    """A problem the user must fix (bad data, missing weights, bad option); the message says what to do."""
