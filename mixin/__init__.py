"""The mixin: the one config (thresholds, selectors, data sources, ownership) and the recording
rules, imported by both ``dashboards`` and ``alerts`` so nothing is written twice."""
