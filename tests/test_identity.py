"""What identifies a benchmark: harness.results.store.benchmark_key and match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.results.store import (
    ResultFile,
    benchmark_key,
    describe_identity,
    group_rows,
    identity_labels,
    keyed_rows,
    match,
)
from tests._results import bench_row, plain_payload, plain_row, result_payload, user_row

SHA_A = "3fa2" + "0" * 60
SHA_B = "9bc1" + "0" * 60
FAST = [1e-3] * 10


def _keyed(rows: list[dict[str, Any]], provider: str = "cpu") -> list[Any]:
    return keyed_rows([ResultFile(Path("r.json"), result_payload(rows, provider=provider))])


def _plain(rows: list[dict[str, Any]]) -> list[Any]:
    return keyed_rows([ResultFile(Path("p.json"), plain_payload(rows))])


def test_harness_key_names_case_engine_provider_batch_threads() -> None:
    key = benchmark_key(bench_row("iforest-100", "onnx-native", 100, FAST, threads=2))
    assert key.id == "iforest-100[onnx-native-cpu]-b100-t2"
    assert key.name == "iforest-100[onnx-native]-b100-t2"
    assert (key.provider, key.case, key.engine, key.batch_size, key.threads) == (
        "cpu",
        "iforest-100",
        "onnx-native",
        100,
        2,
    )
    assert not key.plain
    sklearn = benchmark_key(bench_row("iforest-100", "sklearn", 1, FAST))
    assert (sklearn.id, sklearn.provider) == ("iforest-100[sklearn]-b1-t1", "-")


def test_zoo_sha256_is_not_identity_but_a_user_models_is() -> None:
    zoo = benchmark_key(
        bench_row("iforest-100", "onnx-native", 1, FAST, extra={"model_sha256": SHA_A})
    )
    assert "model_sha256" not in zoo.identity
    assert zoo.identity["origin"] == "zoo"
    user = benchmark_key(user_row("mymodel", "onnx-user", FAST, sha=SHA_A))
    assert user.identity["model_sha256"] == SHA_A
    assert user.identity["n_features"] == 25
    assert user.identity["estimator"] == "IsolationForest"
    assert describe_identity(user.identity) == (
        "user model, IsolationForest, 25 features, sha256 3fa20000…, on CPUExecutionProvider"
    )
    assert describe_identity({}) == "-"


def test_identity_labels_name_only_what_varies() -> None:
    a = {"origin": "user", "model_sha256": SHA_A, "n_features": 25, "estimator": "IsolationForest"}
    b = {**a, "model_sha256": SHA_B, "n_features": 30}
    assert identity_labels([a, b]) == [
        "25 features, sha256 3fa20000…",
        "30 features, sha256 9bc10000…",
    ]
    assert identity_labels([a, {**a, "estimator": None}]) == ["IsolationForest", "-"]


def test_plain_row_is_keyed_by_fullname_without_provider() -> None:
    key = benchmark_key(plain_row("test_parse[big]", FAST), plain=True)
    assert key.id == key.name == "tests/test_speed.py::test_parse[big]"
    assert key.provider == "-"
    assert key.plain
    assert key.identity == {}
    no_fullname = {**plain_row("test_x", FAST), "fullname": None}
    assert benchmark_key(no_fullname, plain=True).id == "test_x"


def test_same_name_different_sha_is_not_comparable() -> None:
    found = match(
        _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_A)]),
        _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_B)]),
    )
    assert found.matched == []
    assert found.only_a == found.only_b == []
    assert found.not_comparable == [
        ("mymodel[onnx-user-cpu]-b1-t1", "model sha256 differs: 3fa20000…→9bc10000…")
    ]


def test_model_change_compare_pairs_and_notes_it() -> None:
    found = match(
        _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_A, n_features=25)]),
        _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_B, n_features=30)]),
        model_change="compare",
    )
    (pair,) = found.matched
    assert pair.note == (
        "model changed: model sha256 differs: 3fa20000…→9bc10000…; input width 25 vs 30"
    )
    assert found.not_comparable == []


def test_model_change_never_pairs_providers_or_origins() -> None:
    zoo = bench_row("mymodel", "onnx-native", 1, FAST)
    found = match(
        _keyed([zoo]),
        _keyed([user_row("mymodel", "onnx-native", FAST)]),
        model_change="compare",
    )
    assert found.matched == []
    assert found.not_comparable == [("mymodel[onnx-native-cpu]-b1-t1", "origin zoo vs user")]
    with pytest.raises(ValueError, match="model_change"):
        match([], [], model_change="maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ({"n_features": 25}, {"n_features": 30}, "input width 25 vs 30"),
        (
            {"estimator": "IsolationForest"},
            {"estimator": "LocalOutlierFactor"},
            "estimator IsolationForest vs LocalOutlierFactor",
        ),
        (
            {"sha": SHA_A, "n_features": 25},
            {"sha": SHA_B, "n_features": 30},
            "model sha256 differs: 3fa20000…→9bc10000…; input width 25 vs 30",
        ),
    ],
)
def test_identity_differences_are_named(a: dict[str, Any], b: dict[str, Any], reason: str) -> None:
    found = match(
        _keyed([user_row("mymodel", "onnx-user", FAST, **a)]),
        _keyed([user_row("mymodel", "onnx-user", FAST, **b)]),
    )
    assert found.not_comparable == [("mymodel[onnx-user-cpu]-b1-t1", reason)]


def test_identity_is_compared_only_where_both_sides_have_it() -> None:
    found = match(
        _keyed([user_row("mymodel", "onnx-user", FAST, sha=None, estimator=None)]),
        _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_B, n_features=None)]),
    )
    assert [p.key.id for p in found.matched] == ["mymodel[onnx-user-cpu]-b1-t1"]
    assert found.matched[0].note == ""


def test_zoo_cases_pair_across_an_exporter_change() -> None:
    found = match(
        _keyed([bench_row("iforest-100", "onnx-native", 1, FAST, extra={"model_sha256": SHA_A})]),
        _keyed([bench_row("iforest-100", "onnx-native", 1, FAST, extra={"model_sha256": SHA_B})]),
    )
    assert len(found.matched) == 1
    assert found.not_comparable == []


def test_two_user_models_with_different_names_are_different_benchmarks() -> None:
    found = match(
        _keyed([user_row("fraud", "onnx-user", FAST)]),
        _keyed([user_row("churn", "onnx-user", FAST)]),
    )
    assert found.matched == []
    assert found.not_comparable == []
    assert found.only_a == ["fraud[onnx-user-cpu]-b1-t1"]
    assert found.only_b == ["churn[onnx-user-cpu]-b1-t1"]


def test_providers_are_never_pooled() -> None:
    cpu = [
        bench_row("iforest-100", "sklearn", 1, FAST),
        bench_row("iforest-100", "onnx-native", 1, FAST),
    ]
    cuda = [
        bench_row("iforest-100", "sklearn", 1, FAST),
        bench_row("iforest-100", "onnx-native", 1, FAST, provider="cuda"),
    ]
    found = match(_keyed(cpu), _keyed(cuda, provider="cuda"))
    assert [p.key.id for p in found.matched] == ["iforest-100[sklearn]-b1-t1"]
    assert found.not_comparable == [("iforest-100[onnx-native]-b1-t1", "provider cpu vs cuda")]
    assert found.only_a == found.only_b == []
    # a provider present on both sides pairs; the extra one is on one side only
    both = match(_keyed(cpu), _keyed([*cpu, cuda[1]]))
    assert len(both.matched) == 2
    assert both.only_b == ["iforest-100[onnx-native-cuda]-b1-t1"]
    assert both.not_comparable == []


def test_active_provider_fallback_is_not_comparable() -> None:
    real = bench_row("iforest-100", "onnx-native", 1, FAST, provider="cuda")
    real["extra_info"]["provider_active"] = "CUDAExecutionProvider"
    fell_back = bench_row("iforest-100", "onnx-native", 1, FAST, provider="cuda")
    fell_back["extra_info"]["provider_active"] = "CPUExecutionProvider"
    found = match(_keyed([real]), _keyed([fell_back]))
    assert found.not_comparable == [
        (
            "iforest-100[onnx-native-cuda]-b1-t1",
            "active provider CUDAExecutionProvider vs CPUExecutionProvider",
        )
    ]


def test_a_side_mixing_two_models_under_one_name_is_refused() -> None:
    a = _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_A)]) + _keyed(
        [user_row("mymodel", "onnx-user", [2e-3] * 10, sha=SHA_B)]
    )
    found = match(a, _keyed([user_row("mymodel", "onnx-user", FAST, sha=SHA_A)]))
    assert found.matched == []
    ((name, reason),) = found.not_comparable
    assert name == "mymodel[onnx-user-cpu]-b1-t1"
    assert reason == "the A holds runs that differ (model sha256 differs: 3fa20000…→9bc10000…)"


def test_runs_pool_and_duplicates_count_once() -> None:
    row = bench_row("iforest-100", "sklearn", 1, FAST)
    other_run = bench_row("iforest-100", "sklearn", 1, [2e-3] * 10)
    # the same scikit-learn row stored in the cpu and the cuda file of one run
    (group,) = group_rows(_keyed([row]) + _keyed([row], provider="cuda") + _keyed([other_run]))
    assert len(group.rows) == 2


def test_harness_and_plain_rows_never_pair() -> None:
    harness = bench_row("iforest-100", "onnx-native", 1, FAST)
    twin = plain_row(harness["name"], FAST, module="suites/bench/test_inference.py")
    twin["fullname"] = "iforest-100[onnx-native-cpu]-b1-t1"  # even an id that looks the same
    found = match(_keyed([harness]), _plain([twin]))
    assert found.matched == []
    assert found.only_a == found.only_b == ["iforest-100[onnx-native-cpu]-b1-t1"]
    assert found.not_comparable == []


def test_plain_rows_pair_by_fullname() -> None:
    a = _plain([plain_row("test_a", FAST), plain_row("test_b", FAST)])
    b = _plain([plain_row("test_b", FAST), plain_row("test_c", FAST)])
    found = match(a, b)
    assert [p.key.id for p in found.matched] == ["tests/test_speed.py::test_b"]
    assert found.only_a == ["tests/test_speed.py::test_a"]
    assert found.only_b == ["tests/test_speed.py::test_c"]


def test_plain_rows_that_name_a_provider_never_pool_across_it() -> None:
    """A user's own test timing with ``harness_benchmark`` under plain --benchmark-json."""
    extra = {"case": "mymodel", "origin": "user", "model_sha256": SHA_A}
    cpu = plain_row("test_speed", FAST, extra_info={**extra, "provider_requested": "cpu"})
    cuda = plain_row("test_speed", FAST, extra_info={**extra, "provider_requested": "cuda"})
    assert benchmark_key(cpu, plain=True).id == "tests/test_speed.py::test_speed@cpu"
    found = match(_plain([cpu]), _plain([cuda]))
    assert found.matched == []
    assert found.not_comparable == [("tests/test_speed.py::test_speed", "provider cpu vs cuda")]
    other_model = plain_row(
        "test_speed", FAST, extra_info={**extra, "provider_requested": "cpu", "model_sha256": SHA_B}
    )
    assert match(_plain([cpu]), _plain([other_model])).not_comparable == [
        ("tests/test_speed.py::test_speed@cpu", "model sha256 differs: 3fa20000…→9bc10000…")
    ]
