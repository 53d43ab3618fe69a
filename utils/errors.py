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


class InputProblems:
    """Runs independent input checks and reports all their problems together, so that one run names
    everything to fix (a missing weights file, direction and embeddings file at once)."""

    def __init__(self):
        self.errors: list[UserError] = []

    def check(self, load):
        """`load()`'s result, or None after recording its `UserError`."""
        try:
            return load()
        except UserError as error:
            self.errors.append(error)
            return None

    def raise_any(self) -> None:
        """Re-raise a single problem as it is; several as one `InputError`, one problem per line."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise InputError("\n".join(str(error) for error in self.errors))
