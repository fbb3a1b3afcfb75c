"""How it is timed: benchmark points and profiles, prepared runners, A/B workers, cold start."""
