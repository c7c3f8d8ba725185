"""The deletion service a hospital runs on a deployed model: requests by patient, one after
another, with a ledger, a validated protocol, a clinical release gate and an audit; and the
one-off request of `medunlearn unlearn` (`oneoff`)."""
