"""The harness suites, shipped in the wheel as ``harness.suites``."""
