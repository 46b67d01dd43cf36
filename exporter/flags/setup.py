"""The exporter's detector from its config: the rules file, the thresholds file's numbers."""

from __future__ import annotations

from exporter.config import ConfigError
from exporter.flags.rulebook import RulebookError


def flag_detector(config):
    """The detector the config asks for, or None (``flags: false``); a bad rules file is a
    ConfigError naming its file and line, a bad mixin config one saying what is wrong."""
    if not config.flags:
        return None
    from exporter.flags.detector import load_detector
    from mixin.config import MixinConfigError, load_config

    try:
        thresholds = load_config(config.mixin_config or None).raw["thresholds"]
        detector = load_detector(config.flag_rules or None, thresholds)
    except (RulebookError, MixinConfigError) as e:
        raise ConfigError(str(e)) from e
    if config.policies:
        # Kept on the detector for the runner, which registers its metrics.
        detector.policy_family = policy_family(config.policies, detector)
        detector.add_family(detector.policy_family)
    return detector


def policy_family(directory: str, detector):
    """The baseline policies of a directory as the detector's family; a bad policy file is a
    ConfigError naming its file and line."""
    from exporter.flags.policies import PolicyFamily
    from policy.files import PolicyError, load_policies

    try:
        return PolicyFamily(load_policies(directory), detector)
    except PolicyError as e:
        raise ConfigError(str(e)) from e


def reload_policies(detector, directory: str) -> str:
    """Reads the policy directory again into the detector's policy family; a bad file leaves
    the policies as they were. Returns what happened, in one line."""
    from policy.files import PolicyError, load_policies

    try:
        policies = load_policies(directory)
    except PolicyError as e:
        return f"policies not reloaded, the previous ones stay: {e}"
    detector.policy_family.reload(policies)
    return f"policies reloaded from {directory}: {len(detector.policy_family.policies)}"
