"""A benchmark worker: prepares engines from its own code tree, then times blocks on request.

``harness gate --ab`` starts one worker per side (the ref's tree and the working tree) and
drives them alternately, block by block in ABBA order, so both sides see the same moment of
the machine while each runs its own code. Protocol: JSON lines on stdin/stdout.

    -> {"points": [{"case", "engine", "provider", "batch_size", "threads"}, ...]}
    <- {"ready": true, "points": {id: {"calls": m, "skip": reason-or-null}}}
    -> {"time": id}            <- {"seconds": per-call mean over m calls}
    -> {"time": id, "calls": k} <- {"seconds": per-call mean over k calls}
    -> {"quit": true}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

#: A timed block lasts at least this long: one sample averages m calls (less per-call noise).
BLOCK_SECONDS = 0.004


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    from harness.bench import BenchPoint, Selection, prepare

    request = json.loads(sys.stdin.readline())
    cpu = request.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        # Both sides on one core: on a VM each vCPU has its own steal time and neighbours.
        os.sched_setaffinity(0, {int(cpu)})
    selection = Selection(profile=request.get("profile", "quick"))
    workdir = Path(request.get("workdir", "."))
    runners: dict[str, tuple[Any, Any, int]] = {}
    summary: dict[str, dict[str, Any]] = {}
    for raw in request["points"]:
        point = BenchPoint(**raw)
        runner = prepare(point, selection, workdir)
        if runner.skip_reason or runner.fn is None:
            summary[point.id] = {"calls": 0, "skip": runner.skip_reason or "nothing to run"}
            continue
        X = runner.batch(point.batch_size)
        runner.fn(X)
        start = time.perf_counter()
        runner.fn(X)
        once = max(time.perf_counter() - start, 1e-7)
        calls = max(1, int(BLOCK_SECONDS / once))
        runners[point.id] = (runner.fn, X, calls)
        summary[point.id] = {"calls": calls, "skip": None, "info": runner.info}
    _reply({"ready": True, "points": summary})
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("quit"):
            break
        fn, X, calls = runners[message["time"]]
        calls = int(message.get("calls") or calls)
        start = time.perf_counter()
        for _ in range(calls):
            fn(X)
        _reply({"seconds": (time.perf_counter() - start) / calls})
    return 0


if __name__ == "__main__":
    sys.exit(main())
