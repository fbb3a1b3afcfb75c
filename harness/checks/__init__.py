"""How it is checked: Hypothesis strategies, parity checks, parity targets, ``harness check``."""
