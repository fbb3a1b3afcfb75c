"""Where users arrive: options and [tool.harness], their data files, the dormant plugin, the
CLI's exit-code policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.cases.user import UserModel
from harness.cases.userdata import DataError, load_rows
from harness.cli import main
from harness.options import (
    OptionError,
    parse_known_gaps,
    project_settings,
    selection_from_options,
    to_pytest_args,
)


def _get(**values: object) -> object:
    defaults: dict[str, object] = {"profile": "quick", "providers": "cpu"}
    defaults.update(values)
    return lambda name: defaults.get(name)


# -- options ----------------------------------------------------------------------------------


def test_selection_round_trips_through_pytest_args(tmp_path: Path) -> None:
    selection = selection_from_options(
        _get(
            model=str(tmp_path / "m.onnx"),
            reference=str(tmp_path / "m.skops"),
            batch_sizes="1,100",
            threads="1,2",
            known_gap=["errors_match=NaN routing differs"],
            trusted=["sklearn.neighbors._kd_tree.KDTree"],
            trust_pickle=True,
            input_bound=10.0,
        )
    )
    args = to_pytest_args(selection)
    parsed: dict[str, object] = {}
    it = iter(args)
    for flag in it:
        name = flag.removeprefix("--harness-").replace("-", "_")
        if name == "trust_pickle":
            parsed[name] = True
            continue
        value = next(it)
        if name in ("known_gap", "trusted"):
            parsed.setdefault(name, [])
            parsed[name].append(value)  # type: ignore[attr-defined]
        else:
            parsed[name] = float(value) if name == "input_bound" else value
    assert selection_from_options(lambda n: parsed.get(n)) == selection
    user = selection.user_model
    assert user is not None
    assert user.label == "m"
    assert user.gaps == {"errors_match": "NaN routing differs"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_sizes": "0"}, "outside [1,"),
        ({"batch_sizes": "-5"}, "outside [1,"),
        ({"batch_sizes": "ten"}, "comma-separated integers"),
        ({"threads": "100000"}, "outside [1,"),
        ({"providers": "cpu,gpu"}, "unknown provider"),
        ({"cases": "iforest-100,nope"}, "unknown case(s) ['nope']"),
        ({"reference": "r.skops"}, "give --model too"),
        ({"model": "m.onnx", "cases": "iforest-100"}, "cannot be combined"),
        ({"model": "m.onnx", "input_bound": -1.0}, "--input-bound must be > 0"),
        ({"model": "m.onnx", "known_gap": ["no-reason"]}, "CHECK=REASON"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(OptionError, match=None) as info:
        selection_from_options(_get(**values))
    assert message in str(info.value)


def test_messages_name_the_options_as_the_plugin_spells_them() -> None:
    # the plugin renamed every "--word" of a message, the user's own values included
    def plugin(name: str) -> str:
        return f"--harness-{name}"

    with pytest.raises(OptionError) as info:
        selection_from_options(_get(model="m.onnx", known_gap=["--x"]), flag=plugin)
    assert str(info.value) == "--harness-known-gap expects CHECK=REASON, got '--x'"
    with pytest.raises(OptionError) as info:
        selection_from_options(_get(data="d.csv"), flag=plugin)
    assert "give --harness-model too" in str(info.value)


def test_known_gaps_parse() -> None:
    assert parse_known_gaps(["a=b = c", " x = y "]) == {"a": "b = c", "x": "y"}
    assert parse_known_gaps(None) == {}


def test_project_settings_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.harness]
            input-bound = 5
            trusted = ["mypkg.Thing"]
            [tool.harness.known-gaps]
            errors_match = "our NaN policy differs"
            """
        )
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    settings = project_settings(nested)
    assert settings["known-gaps"] == {"errors_match": "our NaN policy differs"}
    selection = selection_from_options(
        _get(model="m.onnx", known_gap=["score_close=upstream"]), settings
    )
    user = selection.user_model
    assert user is not None
    assert user.gaps == {"errors_match": "our NaN policy differs", "score_close": "upstream"}
    assert user.input_bound == 5.0
    assert user.trusted == ("mypkg.Thing",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[tool.harness]\nknown_gaps = {}\n", "unknown [tool.harness] key"),
        ("[tool.harness]\ninput-bound = -2\n", "input-bound must be"),
        ("[tool.harness]\ntrusted = 'x'\n", "trusted must be a list"),
        ("[tool.harness\n", "cannot read"),
    ],
)
def test_bad_project_settings(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(body)
    with pytest.raises(OptionError) as info:
        project_settings(tmp_path)
    assert message in str(info.value)


def test_no_pyproject_means_no_settings(tmp_path: Path) -> None:
    assert project_settings(tmp_path / "nowhere") in ({}, project_settings(Path("/")))


# -- data -------------------------------------------------------------------------------------


def test_csv_with_and_without_header(tmp_path: Path) -> None:
    X = np.arange(12, dtype=np.float64).reshape(4, 3) / 7
    np.savetxt(tmp_path / "plain.csv", X, delimiter=",")
    np.savetxt(tmp_path / "header.csv", X, delimiter=",", header="a,b,c", comments="")
    plain = load_rows(tmp_path / "plain.csv", n_features=3)
    assert plain.dtype == np.float32
    assert plain.shape == (4, 3)
    np.testing.assert_array_equal(load_rows(tmp_path / "header.csv", n_features=3), plain)
    reordered = load_rows(tmp_path / "header.csv", feature_names=["c", "a", "b"])
    np.testing.assert_array_equal(reordered, plain[:, [2, 0, 1]])
    with pytest.raises(DataError, match=r"missing \['d'\]"):
        load_rows(tmp_path / "header.csv", feature_names=["a", "b", "d"])


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"x": [1.0, 2.0], "y": [3, 4], "flag": [True, False]})
    pq.write_table(table, tmp_path / "rows.parquet")
    rows = load_rows(tmp_path / "rows.parquet", n_features=3, feature_names=["y", "x", "flag"])
    np.testing.assert_array_equal(rows, [[3, 1, 1], [4, 2, 0]])
    pq.write_table(pa.table({"name": ["a", "b"]}), tmp_path / "text.parquet")
    with pytest.raises(DataError, match="not numeric"):
        load_rows(tmp_path / "text.parquet")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.txt", b"1,2\n", "expected one of"),
        ("rows.csv", b"", "empty"),
        ("rows.csv", b"a,b\n1,x\n", "not a numeric table"),
        ("rows.csv", b"1,2\n3,4\n", "the model takes 3"),
        ("rows.csv", b"1,2\n3e39,4\n", "overflows float32"),
        ("rows.npy", b"not an array", "not a readable .npy"),
        ("rows.csv", b"a,b,c,d\n", "a header row (4 columns) and no data rows"),
        ("rows.csv", b"1.5;2;3\n4;5;6\n", "one column holding ';'"),
        ("rows.csv", b"a\tb\tc\n1\t2\t3\n", "one column holding '\\t'"),
    ],
)
def test_bad_data_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_rows(path, n_features=3 if message == "the model takes 3" else None)
    assert message in str(info.value)


def test_data_for_a_float64_model_stays_float64(tmp_path: Path) -> None:
    # every file was cast to float32: 1e39 was refused and rows were rounded for a double graph
    (tmp_path / "rows.csv").write_bytes(b"0.1,2\n3e39,4\n")
    rows = load_rows(tmp_path / "rows.csv", dtype=np.float64)
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(rows, [[0.1, 2.0], [3e39, 4.0]])
    with pytest.raises(DataError, match=r"3e\+39 \(row 1, column 0\) overflows float32"):
        load_rows(tmp_path / "rows.csv")


def test_missing_data_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_rows(tmp_path / "none.npy")
    with pytest.raises(DataError, match="is a directory"):
        load_rows(tmp_path)
    np.save(tmp_path / "one_d.npy", np.arange(3.0))
    with pytest.raises(DataError, match="2-D"):
        load_rows(tmp_path / "one_d.npy")
    np.save(tmp_path / "objects.npy", np.array(["a", "b"]).reshape(1, 2))
    with pytest.raises(DataError, match="expected numbers"):
        load_rows(tmp_path / "objects.npy")


# -- a user's model pair ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import skops.io as sio
    from sklearn.ensemble import IsolationForest
    from sklearn.svm import OneClassSVM

    from engines import export

    base = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    forest = IsolationForest(n_estimators=15, random_state=0).fit(X)
    export(forest, path=base / "forest.onnx")
    sio.dump(forest, base / "forest.skops")
    svm = OneClassSVM(nu=0.1).fit(rng.normal(size=(200, 5)))
    sio.dump(svm, base / "svm.skops")
    np.save(base / "rows.npy", X[:40])
    return {
        "onnx": base / "forest.onnx",
        "skops": base / "forest.skops",
        "other": base / "svm.skops",
        "rows": base / "rows.npy",
    }


def test_user_model_identity_and_width(pair: dict[str, Path]) -> None:
    from harness.cases.usermodel import UserModelError, load_user_model
    from harness.timing.points import Selection
    from harness.timing.prepare import build_points, prepare

    user = UserModel(pair["onnx"], pair["skops"], pair["rows"])
    selection = Selection(batch_sizes=(1,), threads=(1,), user_model=user)
    points = build_points(selection)
    assert {p.id for p in points} == {"forest[onnx-user-cpu]-b1-t1", "forest[sklearn]-b1-t1"}
    infos = {p.engine: prepare(p, selection, pair["onnx"].parent).info for p in points}
    for info in infos.values():
        assert info["case"] == "forest"
        assert info["origin"] == "user"
        assert info["n_features"] == 4
        assert info["estimator"] == "IsolationForest"
        assert len(info["model_sha256"]) == 64
    assert infos["sklearn"]["model_sha256"] != infos["onnx-user"]["model_sha256"]
    with pytest.raises(UserModelError, match="not a pair"):
        load_user_model(UserModel(pair["onnx"], pair["other"]))
    with pytest.raises(UserModelError, match="rows have 4 columns, the model takes 5"):
        load_user_model(UserModel(pair["other"], data=pair["rows"]))
    with pytest.raises(UserModelError, match=r"--reference applies to an \.onnx"):
        load_user_model(UserModel(pair["skops"], pair["other"]))


def test_data_of_fewer_rows_than_a_batch_is_noted_and_recorded(
    pair: dict[str, Path], tmp_path: Path
) -> None:
    """`harness run --data single_row.npy` timed batches of 100 and 10,000 copies of one row
    without a word."""
    from harness.cases.usermodel import load_user_model
    from harness.timing.points import Selection
    from harness.timing.prepare import build_points, prepare

    np.save(tmp_path / "one.npy", np.load(pair["rows"])[:1])
    user = UserModel(pair["onnx"], pair["skops"], tmp_path / "one.npy")
    loaded = load_user_model(user)
    assert loaded.repeated_rows((1, 100, 10_000)) == (
        f"--data {tmp_path / 'one.npy'} has 1 distinct row, fewer than the largest batch "
        "(10,000): batches are its rows tiled, so larger ones repeat rows and may time "
        "differently from varied data"
    )
    assert loaded.repeated_rows((1,)) is None
    selection = Selection(batch_sizes=(1, 100), threads=(1,), user_model=user)
    recorded = {
        (p.engine, p.batch_size): prepare(p, selection, tmp_path).info.get("distinct_rows")
        for p in build_points(selection)
    }
    assert recorded == {
        ("onnx-user", 1): None,
        ("sklearn", 1): None,
        ("onnx-user", 100): 1,
        ("sklearn", 100): 1,
    }
    whole = load_user_model(UserModel(pair["onnx"], pair["skops"], pair["rows"]))  # 40 rows
    assert whole.repeated_rows((1, 40)) is None
    assert "has 40 distinct rows, fewer than the largest batch (100)" in str(
        whole.repeated_rows((1, 100))
    )


def test_run_says_the_cold_start_as_its_own_lines() -> None:
    """`harness run` printed the plugin's "harness: cold start ..." among "harness run:"."""
    from harness.run import _run_line

    assert _run_line("harness: cold start 1/1 m onnx-user cpu t1: session 7 ms") == (
        "harness run: cold start 1/1 m onnx-user cpu t1: session 7 ms"
    )
    assert _run_line("benchmarks 1/2") == "benchmarks 1/2"


def test_a_skops_model_is_a_scikit_learn_run(pair: dict[str, Path]) -> None:
    from harness.timing.points import Selection
    from harness.timing.prepare import build_points

    selection = Selection(batch_sizes=(1,), threads=(1,), user_model=UserModel(pair["skops"]))
    points = build_points(selection)
    assert [(p.case, p.engine, p.provider) for p in points] == [("forest", "sklearn", "-")]


def test_run_refuses_bad_inputs_before_any_work(
    pair: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "out"), "--no-store"]
    assert main(["run", "--model", str(pair["onnx"]), "--reference", str(pair["other"]), *out]) == 2
    assert "not a pair" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d\n1,2,3,oops\n")
    assert main(["run", "--model", str(pair["onnx"]), "--data", str(bad), *out]) == 2
    err = capsys.readouterr().err
    assert "not a numeric table" in err
    assert "Traceback" not in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["run", "--model", str(pair["onnx"]), "--out", str(blocker / "out"), "--no-store"])
    assert code == 2
    assert "not writable" in capsys.readouterr().err


def test_pickle_reference_needs_the_flag(pair: dict[str, Path], tmp_path: Path) -> None:
    import pickle

    from harness.cases.usermodel import UserModelError, load_user_model

    path = tmp_path / "forest.pkl"
    path.write_bytes(pickle.dumps(load_user_model(UserModel(pair["skops"])).estimator))
    with pytest.raises(UserModelError, match="--trust-pickle"):
        load_user_model(UserModel(pair["onnx"], path))
    with pytest.warns(UserWarning, match="pickle"):
        loaded = load_user_model(UserModel(pair["onnx"], path, trust_pickle=True))
    assert loaded.estimator_name == "IsolationForest"


# -- exit codes -------------------------------------------------------------------------------


def test_a_fault_of_the_harness_exits_4_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import harness.cli as cli

    def broken(args: object) -> int:
        raise RuntimeError("boom")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["providers"].set_defaults(handler=broken)  # type: ignore[union-attr]
    assert main(["providers"]) == 4
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: boom)" in err
    assert "Traceback" not in err
    log = Path(err.split("traceback in ")[1].split(";")[0])
    assert "RuntimeError: boom" in log.read_text()
    log.unlink()
    assert main(["providers", "--verbose"]) == 4
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        main(["run", "--profile", "huge"])
    assert info.value.code == 2


# -- the plugin stays dormant -----------------------------------------------------------------


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest, harness.plugin, harness.cli; "
        "print([m for m in ('numpy', 'onnxruntime', 'sklearn', 'hypothesis', 'engines') "
        "if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _pytest_in(folder: Path, *args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_plain_pytest_run_is_untouched(tmp_path: Path) -> None:
    """No git, no temp folders, no harness block in a pytest-benchmark user's JSON."""
    (tmp_path / "test_plain.py").write_text("def test_sum():\n    assert sum(range(10)) == 45\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "git-calls"
    (bin_dir / "git").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 1\n')
    (bin_dir / "git").chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", TMPDIR=str(tmp))
    _pytest_in(tmp_path, "test_plain.py", "-p", "no:harness", env=env)
    without = log.read_text() if log.exists() else ""  # other plugins may ask git things
    log.unlink(missing_ok=True)
    _pytest_in(tmp_path, "test_plain.py", env=env)
    assert (log.read_text() if log.exists() else "") == without
    assert not any(p.name.startswith("harness-") for p in tmp.iterdir())

    (tmp_path / "test_bench.py").write_text(
        "def test_sum(benchmark):\n    assert benchmark(sum, range(10)) == 45\n"
    )
    _pytest_in(tmp_path, "test_bench.py", "--benchmark-json", "bench.json", env=env)
    assert "harness" not in json.loads((tmp_path / "bench.json").read_text())


def test_thread_options_are_bounded_like_the_engines() -> None:
    from engines.config import MAX_THREADS as ENGINE_MAX_THREADS
    from harness.options import MAX_THREADS

    assert MAX_THREADS == ENGINE_MAX_THREADS
    with pytest.raises(OptionError, match="threads"):
        selection_from_options(_get(threads=str(MAX_THREADS + 1)))


def test_a_named_case_whose_extra_is_missing_is_refused_with_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a one-case `harness run --cases autoencoder` from a wheel without [torch] ran, failed
    # every benchmark and exited 4, "a fault of the harness itself"
    import importlib.util

    from harness.cases.zoo import available, cases

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(OptionError) as info:
        selection_from_options(_get(cases="autoencoder"))
    assert "case autoencoder needs torch" in str(info.value)
    assert 'pip install "onnx-anomaly-harness[torch]"' in str(info.value)
    left_out = available(cases("large"))[1]
    assert [c.name for c in left_out] == ["autoencoder"]
    assert selection_from_options(_get(cases="iforest-100")).cases == ("iforest-100",)
