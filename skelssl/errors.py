"""Errors that the command line reports as one plain line (no traceback): the user can fix them."""


class UserError(Exception):
    """Something the user asked for or gave is wrong; the message says what and what to do."""


class NonFiniteError(UserError):
    """Training produced a non-finite loss or gradient; the message names epoch, step and the loss terms."""
