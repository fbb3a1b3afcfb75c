"""Interleaved A/B timing in live worker processes: ``gate --ab`` and ``calibrate``.

``gate --ab REF`` times what the repository it runs in holds at REF (side A, a temporary
detached worktree) against its working tree (side B): the user's model files (``--model``,
``--reference``, ``--data``, paths inside the repository), made by an optional export command
(``prepare_cmd``) run in each tree first, and, in this project's own repository, the tree's
``engines`` package. The measuring code is never the commit's: each side is a worker process
(``harness.worker``) of the installed harness, started outside the tree with the tree kept off
its path, so a timing loop changed at REF cannot make REF look faster.

The coordinator asks the workers for timed blocks alternately, in ABBA order per benchmark, so
machine drift hits both sides alike. Measured on the project's shared 2-core machine: fresh
processes run one after the other differed by up to 35% (ONNX) and 75% (scikit-learn) in
median latency, which no stored-baseline comparison at a 5% threshold survives; interleaving
is what works.

Two live processes of the SAME code, interleaved, still differ by a bias of their own (sd ~3%
at batch 1, once 12%), fixed for the process's life: rebuilding sessions and inputs inside it
does not move it, a new process draws a new one (its memory layout). So the rounds are spread
over several fresh worker pairs, the side started first alternating, and the pairs' samples
pooled: the biases average out instead of deciding the verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

import harness
from harness._signals import on_sigterm
from harness.cases.user import UserModel
from harness.results.gate import GateReport, gate
from harness.results.machine import git_info, machine_id
from harness.results.schema import add_speedups, harness_block, point_extra
from harness.results.store import ResultFile
from harness.timing.prepare import BenchPoint, Selection, build_points
from harness.timing.worker import selection_message

__all__ = [
    "ABError",
    "ABSamples",
    "Side",
    "Worker",
    "ab_gate",
    "calibrate",
    "interleave",
    "repo_root",
    "run_pairs",
]

_PROJECT = re.compile(r"""^name\s*=\s*["']onnx-anomaly-harness["']""", re.MULTILINE)


def _shared_cpu() -> int | None:
    """The core both workers are pinned to (the last one this process may use)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0))


class ABError(Exception):
    """The A/B run could not be set up (not a git checkout, unknown ref, missing model, crash)."""


class _Term:
    """SIGTERM state: while a child process is being started, a SIGTERM waits for it."""

    starting = 0
    pending: int | None = None


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
    if _Term.starting:
        _Term.pending = signum
        return
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) inside, so ``finally`` blocks remove what was made."""
    with on_sigterm(_on_sigterm):
        try:
            yield
        finally:
            _Term.pending = None


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """Hold SIGTERM while a child starts: raised inside Popen, it would orphan the child."""
    _Term.starting += 1
    try:
        yield
    finally:
        _Term.starting -= 1
    if not _Term.starting and _Term.pending is not None:
        signum, _Term.pending = _Term.pending, None
        raise SystemExit(128 + signum)


def _is_project_tree(tree: Path) -> bool:
    """Whether ``tree`` is this project's own repository (its ``engines`` is what is tested)."""
    pyproject = tree / "pyproject.toml"
    return (
        (tree / "engines" / "__init__.py").is_file()
        and pyproject.is_file()
        and _PROJECT.search(pyproject.read_text(errors="replace")) is not None
    )


@dataclasses.dataclass(frozen=True)
class Side:
    """What one side takes from a code tree: the user model's files and, maybe, ``engines``."""

    tree: Path
    selection: Selection = dataclasses.field(default_factory=Selection)  # paths in ``tree``
    engines: bool = False  # put the tree's engines package first on the worker's path
    label: str = ""

    @classmethod
    def of(cls, tree: Path, selection: Selection | None = None) -> Side:
        """A side for ``tree``, its engines tested when it is this project's repository."""
        return cls(tree, selection or Selection(), _is_project_tree(tree), str(tree))


def _installed_home() -> Path:
    """The folder the coordinator's ``harness`` package lies in."""
    return Path(harness.__file__).resolve().parent.parent


def _site_dirs() -> set[Path]:
    """Folders every interpreter of this environment has on its path (stdlib, site-packages)."""
    paths = sysconfig.get_paths()
    dirs = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    dirs += getattr(site, "getsitepackages", list)()
    dirs.append(site.getusersitepackages())
    return {Path(d).resolve() for d in dirs}


def _worker_pythonpath(first: Sequence[Path]) -> str:
    """``first``, the installed harness's folder unless it is a site folder, then $PYTHONPATH.

    Relative entries of $PYTHONPATH are made absolute: the worker runs in another folder.
    """
    home = _installed_home()
    inherited = [
        os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    # A site folder stays where it is (after the standard library); any other (a checkout run
    # with `python -m harness`, an editable install) goes first, so the worker finds the same.
    extra = [] if home in _site_dirs() else [str(home)]
    return os.pathsep.join([*map(str, first), *extra, *inherited])


def _as_side(side: Side | Path) -> Side:
    return side if isinstance(side, Side) else Side.of(side)


class Worker:
    """A ``harness.worker`` process of the installed harness, on ``side``'s files."""

    def __init__(
        self, side: Side | Path, points: Sequence[BenchPoint], workdir: Path, log: IO[str]
    ) -> None:
        self.side = _as_side(side)
        self.tree = self.side.tree
        # Started outside the tree, the tree off its path (-P: not even the current folder), so
        # the tree's own harness/ is never imported; only its engines/, when asked, via a link.
        home = Path(tempfile.mkdtemp(prefix="worker-", dir=workdir))
        if self.side.engines:
            (home / "engines").symlink_to(self.tree.resolve() / "engines", target_is_directory=True)
        env = dict(
            os.environ,
            PYTHONPATH=_worker_pythonpath([home] if self.side.engines else []),
            PYTHONHASHSEED="0",
        )
        safe = ["-P"] if sys.version_info >= (3, 11) else []
        with _starting():
            self._process = subprocess.Popen(
                [sys.executable, *safe, "-m", "harness.worker"],
                cwd=home,
                env=env,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        payload = {
            "points": [dataclasses.asdict(p) for p in points],
            "workdir": str(workdir),
            "cpu": _shared_cpu(),
            "selection": selection_message(self.side.selection),
        }
        self.git = git_info(self.tree)  # now: a temporary worktree is gone by the time we report
        try:
            ready = self._ask(payload)
            self._check_imports(ready)
        except BaseException:
            self.close(kill=True)
            raise
        self.points: dict[str, dict[str, Any]] = ready["points"]
        self.engines_path = Path(ready["engines"])

    def _check_imports(self, ready: dict[str, Any]) -> None:
        installed = Path(harness.__file__).resolve().parent
        if Path(ready.get("harness") or "").resolve().parent != installed:
            raise ABError(
                f"the benchmark worker for {self.side.label} imported harness from "
                f"{ready.get('harness')}, not the installed {installed}"
            )
        if self.side.engines:
            engines = Path(ready.get("engines") or "").resolve().parent
            if engines != (self.tree / "engines").resolve():
                raise ABError(
                    f"the benchmark worker for {self.side.label} imported engines from "
                    f"{engines}, not the tree's {self.tree / 'engines'}"
                )
            if ready.get("engines_elsewhere"):
                raise ABError(
                    f"the engines of {self.side.label} lack modules the installed harness needs "
                    f"({', '.join(ready['engines_elsewhere'])}): it cannot be A/B tested with "
                    "this harness"
                )

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        try:
            self._process.stdin.write(json.dumps(message) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            code = self._process.wait()
            why = (
                ": its engines cannot be A/B tested with the installed harness, or the worker "
                "failed"
                if self.side.engines
                else ""
            )
            raise ABError(
                f"the benchmark worker for {self.side.label} stopped (exit {code}){why}. "
                "Its error is at the end of the workers' log."
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def time(self, point_id: str, calls: int | None = None) -> float:
        """Per-call seconds of one timed block (of ``calls`` calls; default: the worker's)."""
        message: dict[str, Any] = {"time": point_id}
        if calls is not None:
            message["calls"] = calls
        return float(self._ask(message)["seconds"])

    def close(self, *, kill: bool = False) -> None:
        """Ask the worker to quit (kill it if it does not, or at once) and close the pipes."""
        if self._process.poll() is None:
            try:
                if kill:
                    raise subprocess.TimeoutExpired("harness.worker", 0)
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps({"quit": True}) + "\n")
                self._process.stdin.flush()
                self._process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a dead worker: flushing stdin breaks
                    pipe.close()


def interleave(
    a: Worker,
    b: Worker,
    points: Sequence[BenchPoint],
    rounds: int,
    calls: dict[str, int] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[dict[str, str]]]:
    """ABBA (then BAAB) blocks per benchmark; returns per-call samples per side and skips.

    ``calls`` fixes the calls per block of each benchmark on both sides (default: A's).
    """
    samples: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    skipped = []
    live = []
    for point in points:
        reasons = [w.points[point.id]["skip"] for w in (a, b) if w.points[point.id]["skip"]]
        if reasons:
            skipped.append({"id": point.id, "reason": reasons[0]})
        else:
            live.append(point)
    per_block = {p.id: (calls or {}).get(p.id) or int(a.points[p.id]["calls"]) for p in live}
    workers = {"A": a, "B": b}
    for r in range(rounds):
        order = "ABBA" if r % 2 == 0 else "BAAB"
        for point in live:
            for side in order:
                seconds = workers[side].time(point.id, per_block[point.id])
                samples[side].setdefault(point.id, []).append(seconds)
    return samples["A"], samples["B"], skipped


@dataclasses.dataclass
class ABSamples:
    """Pooled samples of both sides over all worker pairs (sample i of A pairs with B's)."""

    a: dict[str, list[float]]
    b: dict[str, list[float]]
    skipped: list[dict[str, str]]
    workers: tuple[Worker, Worker]  # the first pair (closed): what the points reported
    pairs: int
    rounds_per_pair: int


def run_pairs(
    side_a: Side | Path,
    side_b: Side | Path,
    points: Sequence[BenchPoint],
    *,
    rounds: int,
    pairs: int,
    workdir: Path,
    log: IO[str],
    what: str = "harness gate --ab",
) -> ABSamples:
    """``rounds`` ABBA rounds spread over ``pairs`` fresh worker pairs, samples pooled.

    The side started first alternates from pair to pair; every pair times the same number
    of calls per block (the first pair's A side decides), so blocks are alike on both sides.
    A bare path is a side with the zoo only (and its engines, in this project's repository).
    """
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    per_pair = max(2, -(-rounds // pairs))
    a_all: dict[str, list[float]] = {}
    b_all: dict[str, list[float]] = {}
    first: tuple[Worker, Worker] | None = None
    skipped: list[dict[str, str]] = []
    calls: dict[str, int] = {}
    for i in range(pairs):
        print(f"{what}: worker pair {i + 1}/{pairs}, {per_pair} ABBA rounds", flush=True)
        order = (side_a, side_b) if i % 2 == 0 else (side_b, side_a)
        started: list[Worker] = []
        try:
            for side in order:
                started.append(Worker(side, points, workdir, log))
            a, b = started if i % 2 == 0 else started[::-1]
            if first is None:
                first = (a, b)
                calls = {
                    p.id: int(a.points[p.id]["calls"]) for p in points if a.points[p.id]["calls"]
                }
            sa, sb, skipped = interleave(a, b, points, per_pair, calls)
        except BaseException:
            for worker in started:
                worker.close(kill=True)
            raise
        for worker in started:
            worker.close()
        for pooled, got in ((a_all, sa), (b_all, sb)):
            for key, values in got.items():
                pooled.setdefault(key, []).extend(values)
    assert first is not None
    return ABSamples(a_all, b_all, skipped, first, pairs, per_pair)


def _result(ab: ABSamples, side: Literal["A", "B"], points: Sequence[BenchPoint]) -> ResultFile:
    """One side of an A/B run as a result file (paired with the other side's)."""
    samples = ab.a if side == "A" else ab.b
    worker = ab.workers[0] if side == "A" else ab.workers[1]
    rows = []
    for point in points:
        data = samples.get(point.id)
        if not data:
            continue
        arr = np.asarray(data)
        info = dict(worker.points[point.id].get("info", {}))
        if "model" in info:  # a path in a temporary worktree says nothing: keep it repo-relative
            with contextlib.suppress(ValueError):
                info["model"] = str(Path(info["model"]).relative_to(worker.tree))
        extra: dict[str, Any] = {
            **info,
            **point_extra(point),
            "calls_per_sample": ab.workers[0].points[point.id]["calls"],
        }
        stats = {
            "median": float(np.median(arr)),
            "min": float(arr.min()),
            "max": float(arr.max()),
            "mean": float(arr.mean()),
            "rounds": len(arr),
            "iterations": 1,
            "data": data,
        }
        rows.append(
            {
                "name": f"test_score_samples[{point.id}]",
                "group": None,
                "stats": stats,
                "extra_info": extra,
            }
        )
    add_speedups(rows)
    harness = harness_block(
        git=worker.git,
        profile="ab",
        provider="cpu",
        skipped=ab.skipped,
        paired=True,
        worker_pairs=ab.pairs,
        rounds_per_pair=ab.rounds_per_pair,
    )
    return ResultFile(Path(f"{side}.json"), {"benchmarks": rows, "harness": harness})


def _git(root: Path, *args: str) -> str:
    try:
        with _starting():  # a SIGTERM waits for git: no half-made worktree left behind
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, check=False
            )
    except OSError as exc:  # no git, or no such folder
        raise ABError(f"git {' '.join(args)} could not run in {root}: {exc}") from None
    if done.returncode != 0:
        why = done.stderr.strip() or done.stdout.strip()
        raise ABError(f"git {' '.join(args)} failed in {root}: {why}")
    return done.stdout.strip()


def repo_root(cwd: Path | None = None) -> Path:
    """The top of the git working tree that ``cwd`` (default: the current folder) lies in."""
    where = Path(cwd) if cwd is not None else Path.cwd()
    try:
        return Path(_git(where, "rev-parse", "--show-toplevel")).resolve()
    except ABError:
        raise ABError(
            f"{where} is not inside a git repository: --ab compares a commit of the repository "
            "you run it in with that repository's working tree"
        ) from None


def _repo_relative(path: Path, root: Path, cwd: Path) -> Path:
    """``path`` (relative to ``cwd``) relative to ``root``; absolute when it lies outside."""
    full = Path(os.path.abspath(cwd / path))
    for candidate in (full, full.resolve()):
        with contextlib.suppress(ValueError):
            return candidate.relative_to(root)
    return full


def _user_relative(user: UserModel, root: Path, cwd: Path) -> UserModel:
    """The user model with its paths relative to the repository root (outside it: absolute)."""
    return dataclasses.replace(
        user,
        model=_repo_relative(user.model, root, cwd),
        reference=None if user.reference is None else _repo_relative(user.reference, root, cwd),
        data=None if user.data is None else _repo_relative(user.data, root, cwd),
    )


def _user_in_tree(user: UserModel, tree: Path, label: str, hint: str = "") -> UserModel:
    """``user`` (repository-relative paths) resolved in ``tree``; a missing file is refused."""
    found: dict[str, Any] = {}
    for name in ("model", "reference", "data"):
        path: Path | None = getattr(user, name)
        if path is None:
            continue
        full = path if path.is_absolute() else tree / path
        if not full.exists():
            raise ABError(f"{path} is not in {label}{hint}")
        found[name] = full
    return dataclasses.replace(user, **found)


def _remove_worktree(root: Path, path: Path) -> None:
    done = subprocess.run(
        ["git", "worktree", "remove", "--force", str(path)],
        cwd=root,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0 or path.exists():  # half made, or holding submodules
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)


@contextlib.contextmanager
def _worktree(root: Path, sha: str, path: Path) -> Iterator[Path]:
    """A detached worktree of ``sha`` at ``path``, removed afterwards whatever happens."""
    try:
        # The user's hooks (post-checkout) have no business in a throwaway checkout.
        _git(root, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", str(path), sha)
        yield path
    finally:
        _remove_worktree(root, path)


def _run_prepare(command: str, tree: Path, label: str, log: IO[str]) -> None:
    """Run the export step ``command`` in ``tree`` (shell, output to the log)."""
    print(f"harness gate --ab: preparing {label}: {command}", flush=True)
    log.write(f"--- {label}: $ {command}\n")
    log.flush()
    process: subprocess.Popen[bytes] | None = None
    try:
        with _starting():
            process = subprocess.Popen(
                command,
                shell=True,
                cwd=tree,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with all it started
            )
        code = process.wait()
    except BaseException:
        if process is not None:
            _stop_group(process)
        raise
    if code != 0:
        raise ABError(f"--ab-prepare {command!r} failed in {label} (exit {code})")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of ``process``, SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 5.0), (getattr(signal, "SIGKILL", signal.SIGTERM), None)):
        with contextlib.suppress(ProcessLookupError):
            if hasattr(os, "killpg"):
                os.killpg(process.pid, sig)
            else:  # no process groups (Windows): the shell only
                process.send_signal(sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _with_log(exc: ABError, log_path: Path) -> ABError:
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    return ABError(f"{exc}\n{tail}") if tail.strip() else exc


def ab_gate(
    ref: str,
    selection: Selection,
    *,
    rounds: int = 100,
    pairs: int = 10,
    prepare_cmd: str | None = None,
    cwd: Path | None = None,
    **gate_options: Any,
) -> tuple[GateReport, float, tuple[ResultFile, ResultFile]]:
    """Time the repository at ``ref`` (A) and its working tree (B) interleaved, gate B against A.

    The repository is the one ``cwd`` (default: the current folder) lies in. What differs
    between the sides is what the trees hold: the user model's files (paths relative to
    ``cwd``, inside the repository), after ``prepare_cmd`` (a shell command, e.g. an export
    script) has run in each tree; in this project's repository also ``engines``. The timing is
    the installed harness's on both sides. ``rounds`` ABBA rounds in all, spread over ``pairs``
    fresh worker pairs (see the module). Both workers are pinned to one shared core, so the
    profile's thread settings give way to 1 thread unless ``selection.threads`` says otherwise.

    Example:
        >>> report, seconds, (a, b) = ab_gate(  # doctest: +SKIP
        ...     "main",
        ...     Selection(user_model=UserModel(Path("model.onnx")), batch_sizes=(1, 100)),
        ...     prepare_cmd="python train.py",
        ... )
        >>> [row.verdict for row in report.rows]  # doctest: +SKIP
        ['unchanged']
    """
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2, got {rounds}")
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    start = time.perf_counter()
    here = Path(cwd) if cwd is not None else Path.cwd()
    root = repo_root(here)
    try:
        sha = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ABError:
        raise ABError(
            f"unknown ref {ref!r}: git rev-parse finds no such commit in {root}"
        ) from None
    project = _is_project_tree(root)
    user = selection.user_model and _user_relative(selection.user_model, root, here)
    if user is None and not project:
        raise ABError(
            f"nothing in {root} is under test: give --model (and --reference, --data), "
            "paths inside the repository, to time your model at the ref against the working tree"
        )
    if user is not None and user.model.is_absolute():
        raise ABError(f"--model {user.model} lies outside the repository {root}")
    if not selection.threads:  # both workers share one pinned core: more threads only contend
        selection = dataclasses.replace(selection, threads=(1,))
    points = build_points(selection)
    label_a = sha[:12] if sha.startswith(ref) else f"{ref} ({sha[:12]})"
    hint = (
        f" (after --ab-prepare {prepare_cmd!r})"
        if prepare_cmd
        else " (not committed there? an export step that makes it can run in each tree first: "
        "--ab-prepare CMD)"
    )
    with _terminate_as_exit(), tempfile.TemporaryDirectory(prefix="harness-ab-") as tmp:
        base = Path(tmp)
        log_path = base / "workers.log"
        with open(log_path, "w") as log:
            try:
                with _worktree(root, sha, base / "ref") as tree_a:
                    sides = []
                    for tree, label in ((tree_a, label_a), (root, "the working tree")):
                        if project and not (tree / "engines" / "__init__.py").is_file():
                            raise ABError(f"{label} has no engines package to A/B test")
                        if prepare_cmd:
                            _run_prepare(prepare_cmd, tree, label, log)
                        chosen = selection
                        if user is not None:
                            in_tree = _user_in_tree(user, tree, label, hint)
                            chosen = dataclasses.replace(selection, user_model=in_tree)
                        sides.append(Side(tree, chosen, project, label))
                    what = f"{len(points)} benchmarks on {label_a} and the working tree"
                    print(f"harness gate --ab: {what}, {rounds} ABBA rounds", flush=True)
                    ab = run_pairs(
                        sides[0],
                        sides[1],
                        points,
                        rounds=rounds,
                        pairs=pairs,
                        workdir=base,
                        log=log,
                    )
            except ABError as exc:
                log.flush()
                raise _with_log(exc, log_path) from None
        results = (
            _result(ab, "A", points),
            _result(ab, "B", points),
        )
    gate_options.setdefault("model_change", "compare")  # a changed model is what is compared
    report = gate([results[0]], [results[1]], **gate_options)
    return report, time.perf_counter() - start, results


def calibrate(
    selection: Selection,
    *,
    runs: int = 3,
    rounds: int = 100,
    pairs: int = 10,
    alpha: float = 0.01,
    results_dir: Path | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """A/A: the working tree on both sides, interleaved exactly like ``--ab``, ``runs`` times.

    The tree is the git working tree ``cwd`` (default: the current folder) lies in, or ``cwd``
    itself outside git. Returns the noise per benchmark and the recommended threshold: the
    smallest (in 1% steps, plus one step of margin) at which no A/A comparison is called
    regressed or improved.
    """
    if runs < 1:
        raise ValueError(f"calibration needs at least 1 run, got {runs}")
    here = Path(cwd) if cwd is not None else Path.cwd()
    try:
        root = repo_root(here)
    except ABError:
        root = here.resolve()
    if not selection.threads:  # the workers are pinned to one core, as in ab_gate
        selection = dataclasses.replace(selection, threads=(1,))
    chosen = selection
    if selection.user_model is not None:
        user = _user_relative(selection.user_model, root, here)
        chosen = dataclasses.replace(
            selection, user_model=_user_in_tree(user, root, "the working tree")
        )
    side = Side(root, chosen, _is_project_tree(root), "the working tree")
    points = build_points(selection)
    noise: dict[str, list[float]] = {}
    recommended = 0.01
    with _terminate_as_exit(), tempfile.TemporaryDirectory(prefix="harness-calibrate-") as tmp:
        log_path = Path(tmp) / "log"
        with open(log_path, "w") as log:
            for i in range(runs):
                try:
                    ab = run_pairs(
                        side,
                        side,
                        points,
                        rounds=rounds,
                        pairs=pairs,
                        workdir=Path(tmp),
                        log=log,
                        what=f"harness calibrate: A/A run {i + 1}/{runs}",
                    )
                except ABError as exc:
                    log.flush()
                    raise _with_log(exc, log_path) from None
                report = gate(
                    [_result(ab, "A", points)],
                    [_result(ab, "B", points)],
                    threshold=0.01,
                    alpha=alpha,
                )
                for row in report.rows:
                    if np.isfinite(row.ratio):
                        noise.setdefault(row.name, []).append(abs(float(np.log(row.ratio))))
                    if row.p_adjusted < alpha and np.isfinite(row.ci_low):
                        needed = max(row.ci_low - 1.0, 1.0 / row.ci_high - 1.0, 0.0)
                        recommended = max(recommended, float(np.ceil(needed * 100) / 100) + 0.01)
    machine = machine_id()
    summary: dict[str, Any] = {
        "machine_id": machine,
        "runs": runs,
        "rounds": rounds,
        "pairs": pairs,
        "alpha": alpha,
        "recommended_threshold": round(recommended, 2),
        "noise": {
            name: {"median_abs_log_ratio": float(np.median(v)), "max_abs_log_ratio": float(max(v))}
            for name, v in sorted(noise.items())
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if results_dir is not None:
        from engines._io import atomic_write_bytes

        path = Path(results_dir) / machine / "calibration.json"
        atomic_write_bytes(path, json.dumps(summary, indent=2).encode())
        summary["path"] = str(path)
    return summary
