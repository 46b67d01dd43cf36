"""``groundtruth postmortem``: registered once the report lands (incident/postmortem.py)."""


def add_postmortem_parser(sub, common, window_arguments, guarded) -> None:
    """Nothing yet: the postmortem command is added by the next change."""
