"""The one error type the incident commands show to the user as a single line."""

from __future__ import annotations


class IncidentError(Exception):
    """Something the user can act on (bad input, unknown host, empty window).

    ``exit_code`` is the command's exit status: 2 for bad input, 1 when the store has nothing
    to show, 3 when a pid is ambiguous and the candidates were listed.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class NothingFound(IncidentError):
    """An unknown host, pid or key, or a window without events."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=1)
