"""Reading the YAML files people review as code (flag rules, baseline policies): the file's
text and its node tree, or one error line naming the file and, where YAML knows it, the line."""

from __future__ import annotations

from pathlib import Path

import yaml


def compose_yaml_file(path: str, what: str, error: type[Exception]) -> tuple[str, yaml.Node]:
    """``path``'s text and its YAML node tree (nodes keep their line numbers, for FILE:LINE
    errors); an unreadable, malformed or empty file raises ``error`` naming it as ``what``."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror}") from e
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise error(not_valid_yaml(path, e)) from e
    if root is None:
        raise error(f"{path}:1: the {what} is empty")
    return text, root


def not_valid_yaml(path, e: yaml.YAMLError) -> str:
    """The one-line error for a YAML syntax error in path: FILE:LINE: where YAML knows it."""
    mark = getattr(e, "problem_mark", None)
    line = f"{mark.line + 1}:" if mark else ""
    return f"{path}:{line} not valid YAML: {getattr(e, 'problem', e)}"
