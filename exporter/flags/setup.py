"""The exporter's detector from its config: the rules file, the thresholds file's numbers."""

from __future__ import annotations

from exporter.config import ConfigError
from exporter.flags.rulebook import RulebookError


def flag_detector(config):
    """The detector the config asks for, or None (``flags: false``); a bad rules file is a
    ConfigError naming its file and line."""
    if not config.flags:
        return None
    from exporter.flags.detector import load_detector
    from mixin.config import MixinConfigError

    try:
        return load_detector(config.flag_rules or None)
    except (RulebookError, MixinConfigError) as e:
        raise ConfigError(str(e)) from e
