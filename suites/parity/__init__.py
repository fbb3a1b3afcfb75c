"""Parity of every zoo engine against its reference, case x engine x check (Hypothesis)."""
