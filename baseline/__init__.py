"""``groundtruth baseline``: learn each workload's policy from the store, diff what happened
against the policies, merge it in, and test policies on recorded events (docs/baselines.md)."""
