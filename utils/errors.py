"""The one exception type the command-line scripts report as a plain message, without a traceback."""


class UserError(Exception):
    """A problem the user can fix from the message alone: a bad flag, file or folder.

    Subclasses also derive from the built-in type that fits (ValueError, FileNotFoundError,
    RuntimeError), so library callers can catch them as usual.
    """


class InputError(UserError, ValueError):
    """A flag value, or the content of a file or folder, is unusable."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder named by a flag does not exist."""
