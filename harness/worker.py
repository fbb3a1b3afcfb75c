"""``python -m harness.worker``: the A/B worker's entry point, kept under this name for good.

``harness gate --ab`` starts ``python -m harness.worker``, and refs from before the regrouping
have their own ``harness/worker.py``; the worker itself lives in :mod:`harness.timing.worker`.
"""

import sys

from harness.timing.worker import main, selection_from_message, selection_message

__all__ = ["main", "selection_from_message", "selection_message"]

if __name__ == "__main__":
    sys.exit(main())
