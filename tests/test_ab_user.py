"""``gate --ab`` in a user's repository: the model at a ref against the working tree.

The measuring code is the installed harness on both sides; the repository only lends its model
files (committed, or made by an export step run in each tree).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

import harness.timing.ab
from engines import export
from harness.cases.user import UserModel
from harness.timing.ab import ABError, Side, ab_gate, calibrate
from harness.timing.points import Selection
from harness.timing.worker import selection_from_message, selection_message

# A harness/ in the user's tree that must never be imported: the worker runs the installed one.
TRAP = "raise ImportError('the harness of the tree under test was imported')\n"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def _init(repo: Path) -> None:
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "commit.gpgsign", "false")
    (repo / "harness").mkdir()
    (repo / "harness" / "__init__.py").write_text(TRAP)


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _export(path: Path, trees: int) -> None:
    X = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    export(IsolationForest(n_estimators=trees, random_state=0).fit(X), 5, path, validate=False)


def _worktrees(repo: Path) -> int:
    return _git(repo, "worktree", "list", "--porcelain").count("worktree ")


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose HEAD has a 10-tree model.onnx, the working tree a 100-tree one."""
    repo = tmp_path_factory.mktemp("user") / "repo"
    _init(repo)
    (repo / "README").write_text("before the model\n")
    _commit(repo, "no model yet")
    _export(repo / "model.onnx", 10)
    _commit(repo, "model")
    _export(repo / "model.onnx", 100)  # the change under test, not committed
    return repo


def _user(model: str = "model.onnx") -> Selection:
    return Selection(batch_sizes=(100,), threads=(1,), user_model=UserModel(Path(model)))


@pytest.mark.slow
def test_ab_gate_times_the_model_at_the_ref_against_the_working_tree(user_repo: Path) -> None:
    sub = user_repo / "sub"
    sub.mkdir(exist_ok=True)  # paths are relative to where the user runs, inside the repo
    report, seconds, (a, b) = ab_gate("HEAD", _user("../model.onnx"), rounds=4, pairs=1, cwd=sub)
    assert len(report.rows) == 1
    row_a, row_b = a.benchmarks[0], b.benchmarks[0]
    assert row_a["extra_info"]["model"] == row_b["extra_info"]["model"] == "model.onnx"
    assert row_a["extra_info"]["model_sha256"] != row_b["extra_info"]["model_sha256"]
    assert len(row_a["stats"]["data"]) == len(row_b["stats"]["data"]) == 4 * 2
    assert report.rows[0].ratio > 1  # 100 trees against 10, 100 rows a call
    assert a.harness["git"]["commit"] == _git(user_repo, "rev-parse", "HEAD")
    assert _worktrees(user_repo) == 1  # the temporary worktree is gone
    assert seconds > 0


def test_a_ref_without_the_model_is_refused_and_its_worktree_removed(user_repo: Path) -> None:
    with pytest.raises(ABError, match=r"model\.onnx is not in HEAD~1 .*--ab-prepare"):
        ab_gate("HEAD~1", _user(), rounds=2, pairs=1, cwd=user_repo)
    assert _worktrees(user_repo) == 1


def test_a_failing_export_step_is_an_error_with_its_output(user_repo: Path) -> None:
    with pytest.raises(ABError, match=r"(?s)failed in HEAD .*exit 3.*no training data"):
        ab_gate(
            "HEAD",
            _user(),
            rounds=2,
            pairs=1,
            cwd=user_repo,
            prepare_cmd="echo no training data >&2; exit 3",
        )
    assert _worktrees(user_repo) == 1


def test_outside_a_git_repository_or_with_an_unknown_ref_is_an_error(
    tmp_path: Path, user_repo: Path
) -> None:
    with pytest.raises(ABError, match="not inside a git repository"):
        ab_gate("HEAD", _user(), cwd=tmp_path)
    with pytest.raises(ABError, match="unknown ref 'no-such-ref'"):
        ab_gate("no-such-ref", _user(), cwd=user_repo)
    with pytest.raises(ABError, match="give --model"):
        ab_gate("HEAD", Selection(), cwd=user_repo)
    with pytest.raises(ABError, match="outside the repository"):
        ab_gate("HEAD", _user(str(tmp_path / "model.onnx")), cwd=user_repo)
    with pytest.raises(ABError, match=r"missing\.onnx is not in the working tree"):
        calibrate(_user("missing.onnx"), cwd=user_repo)


def test_an_export_step_makes_the_model_in_each_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    _init(repo)
    (repo / ".gitignore").write_text("model.onnx\n")
    (repo / "models").mkdir()
    _export(repo / "models" / "forest.onnx", 10)
    ref = _commit(repo, "export step")
    committed = (repo / "models" / "forest.onnx").read_bytes()
    _export(repo / "models" / "forest.onnx", 20)
    seen: list[tuple[Side, bytes]] = []

    def timed(*sides: Side, **_: object) -> None:  # what the workers would be given
        for side in sides[:2]:
            assert side.selection.user_model is not None
            seen.append((side, side.selection.user_model.model.read_bytes()))
        raise ABError("stop before timing")

    monkeypatch.setattr(harness.timing.ab, "run_pairs", timed)
    with pytest.raises(ABError, match="stop before timing"):
        ab_gate(ref, _user(), cwd=repo, prepare_cmd="cp models/forest.onnx model.onnx")
    (side_a, model_a), (side_b, model_b) = seen
    assert side_a.label == ref[:12]
    assert side_a.selection.user_model == UserModel(side_a.tree / "model.onnx")
    assert model_a == committed
    assert side_b.tree == repo.resolve()
    assert model_b == (repo / "models" / "forest.onnx").read_bytes() != committed
    assert not side_a.engines  # a user's repository: the installed engines on both sides
    assert not side_b.engines
    assert _worktrees(repo) == 1


def test_sigterm_still_removes_the_worktree_and_stops_the_export(
    user_repo: Path, tmp_path: Path
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    pid_file = tmp_path / "pid"
    # The export step of the ref's tree terminates the coordinator (this process) midway.
    with pytest.raises(SystemExit) as stopped:
        ab_gate(
            "HEAD",
            _user(),
            rounds=2,
            pairs=1,
            cwd=user_repo,
            prepare_cmd=f"echo $$ > {pid_file}; kill -TERM {os.getpid()}; sleep 30",
        )
    assert stopped.value.code == 128 + signal.SIGTERM
    assert _worktrees(user_repo) == 1
    assert signal.getsignal(signal.SIGTERM) == before
    group = int(pid_file.read_text())
    for _ in range(50):  # the orphaned `sleep` is reaped by init
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the export step's processes outlived the coordinator")


def test_the_selection_message_round_trips() -> None:
    user = UserModel(
        Path("/t/model.onnx"),
        Path("/t/ref.skops"),
        None,
        5,
        name="m",
        trusted=("a.B",),
        known_gaps=(("label_exact", "why"),),
    )
    selection = Selection(profile="full", user_model=user)
    assert selection_from_message(selection_message(selection)) == selection
    assert selection_from_message({"profile": "quick", "user_model": None}) == Selection()
