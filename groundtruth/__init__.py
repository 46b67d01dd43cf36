"""The ``groundtruth`` command: one entry point whose subcommands reach every part."""
