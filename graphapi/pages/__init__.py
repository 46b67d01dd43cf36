"""The investigation pages: what graphapi knows, as HTML, for a browser without Grafana.

``/`` (overview: hosts, traces, alerts), ``/graph`` (the causal graph of any focus),
``/process/<key>`` and ``/timeline`` (a host's timeline with the timeline command's filters),
``/alert`` (an alert notification's link: the alert's graph), ``/login`` when a token is
configured. Pages are rendered on the server from the same functions as the JSON API
(``graphapi.api``) and the incident commands (``incident``); the only script shows times in the
browser's time zone. See docs/graphapi.md.
"""

from graphapi.pages import alert_page, graph_page, login, overview, process_page, timeline_page
from graphapi.pages.blueprint import bp

__all__ = ["alert_page", "bp", "graph_page", "login", "overview", "process_page", "timeline_page"]
