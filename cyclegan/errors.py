"""The one exception type the command line turns into a clean message instead of a traceback."""


class UserError(Exception):
    """A problem the user can fix (a missing folder, a bad option); the message says how."""
