"""The errors rftlab raises for bad input: each message names the problem and the fix.

Every class is also a builtin exception (``ValueError``, ``FileNotFoundError``), so code that
catches those keeps working. :class:`RftlabError` marks them all: the command line prints
their message as one ``rftlab COMMAND: error: ...`` line, without a traceback, and exits
with :data:`EXIT_USER_ERROR`. Any other exception is a bug in rftlab and keeps its traceback.
"""
from __future__ import annotations

EXIT_USER_ERROR = 2     # a bad flag value, name, file or setting (argparse uses 2 for its errors too)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): what was learned is kept
TRACEBACK_ENV = "RFTLAB_TRACEBACK"  # set to 1 to see the traceback of a user error too


class RftlabError(Exception):
    """Base of every error that reports bad input (not a bug)."""


class BadFileError(RftlabError, ValueError):
    """A file that exists but is damaged, of the wrong kind, or holds more than tensors and
    plain containers (rftlab never unpickles code). ``path`` is the file."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


class MissingFileError(RftlabError, FileNotFoundError):
    """A file or folder that should be there is not."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path

    def __str__(self):  # FileNotFoundError would print "[Errno ...]" forms when given more arguments
        return self.args[0]


class WeightsNotFoundError(MissingFileError):
    """Pretrained weights are neither on disk nor downloadable from here."""


class DatasetLayoutError(RftlabError, ValueError):
    """A dataset root that is missing or not laid out as its loader expects; the message
    draws the expected layout."""


class ImageReadError(BadFileError):
    """An image of a dataset that cannot be read (truncated, not an image, gone)."""


class ResumeError(RftlabError, ValueError):
    """A run that cannot be continued as asked (another method, architecture or config)."""


def is_user_error(err: BaseException) -> bool:
    """Whether the command line reports ``err`` as a one-line message (bad input) rather than
    with a traceback (a bug): rftlab's own errors, the ``ValueError`` and ``FileNotFoundError``
    of argument checks, and operating-system errors about a named file (permission denied,
    a folder where a file was expected)."""
    if isinstance(err, (RftlabError, ValueError, FileNotFoundError)):
        return True
    return isinstance(err, OSError) and getattr(err, "filename", None) is not None
