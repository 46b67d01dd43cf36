"""What every part of groundtruth agrees on: the event schema and the pipeline's event counts.

This package imports nothing else of the project, so the exporter (which produces events),
the store (which keeps them) and everything that reads them can all depend on it.
"""
