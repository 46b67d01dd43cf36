"""Baseline policies as code: what each workload is allowed to do, and what departs from it.

``policy.model`` is a policy and the activity it is compared with; ``policy.files`` reads a
policy directory (every error with FILE:LINE) and writes policies deterministically;
``policy.check`` answers, per event, whether a workload's policy allows it (the exporter's
detector calls it on the hot path). Imports nothing of the project but the event schema.
"""
