"""Verification: re-run recorded runs and compare (reproduce, check-determinism), and study bundles."""
