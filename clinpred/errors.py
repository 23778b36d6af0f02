"""Errors a user can cause. The CLI turns them into one clear message and exit code 2, no traceback."""


class InputError(Exception):
    """Bad input from the user: a path, a column, a row, a setting, a missing credential or model.

    The message names the file, column or row and says what to do. It must never contain note text.
    """
