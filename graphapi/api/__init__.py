"""graphapi's blueprints, one per module, registered by ``graphapi.create_app``."""

from graphapi.api import alerts, graph, nodegraph, openapi, processes

BLUEPRINTS = [graph.bp, nodegraph.bp, processes.bp, alerts.bp, openapi.bp]
