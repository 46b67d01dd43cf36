"""Flags: the detector that follows the live event stream and raises FlagEvents by rule.

- ``rulebook``: the rules file (rule definitions, exceptions), validated with file and line;
- ``ancestry``: what the detector holds of each live process (parent, program, server), bounded;
- ``families``: the rules' logic, one module per family (exec, exit, connection);
- ``detector``: routes each decoded batch to the families, applies exceptions and repeats,
  builds the flags;
- ``metrics``: ``groundtruth_flags_total`` and the detector's own health;
- ``rule_tests`` and ``cli``: ``groundtruth flags test`` and ``groundtruth flags rules``.
"""
