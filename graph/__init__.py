"""The temporal causal graph, without HTTP: what to ask for (``graph.request``), the SQL it runs
(``graph.queries``), how it is built (``graph.causal``) and the Node Graph fields it is written
in (``graph.nodegraph_fields``). graphapi serves it; the incident CLI draws it as SVG.
"""
