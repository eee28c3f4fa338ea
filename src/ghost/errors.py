"""The one exception type for bad input from users.

Anything a user can get wrong (a malformed file, an unknown dataset, a bad flag value, a
corrupt checkpoint) raises `GhostInputError` with one line saying what and where. The CLI
prints that line and exits with code 2; everything else is an internal failure (exit 1).
"""


class GhostInputError(ValueError):
    """Bad input from a user: the message names what is wrong and where."""
