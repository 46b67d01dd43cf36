"""What the graph cannot do for a request, said without HTTP (graphapi maps these to 404 / 400;
the incident CLI prints them)."""

from __future__ import annotations


class GraphError(Exception):
    """A request the graph cannot answer; the message says why, for the person who asked."""


class FocusNotFound(GraphError):
    """The focus (a process, a connection, an alert) is not in the store for this window."""


class BadScope(GraphError):
    """The window, scope or node limit asked for cannot be drawn."""
