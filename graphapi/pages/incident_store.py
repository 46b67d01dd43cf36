"""The incident commands' store reader (``incident.store_access.Reader``) on this request's
store: the pages show the same ancestry and timeline as ``groundtruth ancestry`` and
``groundtruth timeline``, from the same code."""

from __future__ import annotations

from graphapi.storage import get_store
from incident.store_access import Reader


def incident_reader() -> Reader:
    """A Reader of the request's store; its failures are ``IncidentError`` (the pages' error
    handler answers 503 for them)."""
    return Reader(get_store().store)
