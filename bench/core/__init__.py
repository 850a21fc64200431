"""What every scenario shares: hardware probe and roofs, numerics (every tolerance), timing,
FLOP and byte counts, the environment fingerprint, report rows and metric declarations,
profiles and session settings."""
