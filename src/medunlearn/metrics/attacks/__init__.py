"""Membership attacks and tests of unlearning, one registered file each (see `metrics.registry`)."""
