"""The command's name and its usage error, shared by every subcommand."""

__all__ = ["PROG", "UsageError"]

PROG = "advgrad"


class UsageError(Exception):
    """Bad command-line arguments or files: exit code 2, one line on stderr."""
