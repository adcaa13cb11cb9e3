"""The one base class for errors a user can act on.

Its message names the problem and the fix (a command to run, a setting to change), so the
command line prints it as one clean message with exit status 1 instead of a traceback
(``amsgrad_repro.cli.main``), and a failed job's log says what to do.
"""

from __future__ import annotations


class ReportedError(RuntimeError):
    """An error whose message says what is wrong and how to fix it."""
