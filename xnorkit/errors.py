"""The one error type users see: a single line naming what is wrong and how to fix it (exit code 2)."""


class XnorkitError(Exception):
    """A user-facing problem (bad input, unsupported model, missing tool). The CLI prints it and exits 2."""
