from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engines import InputError
from engines._inputs import as_batch

F32 = np.dtype(np.float32)


def test_fast_path_returns_the_same_array() -> None:
    X = np.zeros((3, 4), dtype=np.float32)
    assert as_batch(X, n_features=4, dtype=F32) is X


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.uint8, np.bool_])
def test_numeric_dtypes_are_cast_to_the_model_type(dtype: type) -> None:
    X = np.ones((2, 4), dtype=dtype)
    out = as_batch(X, n_features=4, dtype=F32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.ones((2, 4)))


def test_non_contiguous_and_fortran_arrays_become_c_contiguous() -> None:
    base = np.arange(40, dtype=np.float32).reshape(5, 8)
    for X in (base[:, ::2], np.asfortranarray(base[:, :4])):
        out = as_batch(X, n_features=4, dtype=F32)
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, X)


def test_none_dtype_keeps_floats_and_casts_ints_to_float64() -> None:
    assert as_batch(np.ones((1, 2), np.float32), n_features=2, dtype=None).dtype == np.float32
    assert as_batch(np.ones((1, 2), np.int8), n_features=2, dtype=None).dtype == np.float64


def test_lists_are_accepted() -> None:
    assert as_batch([[1, 2], [3, 4]], n_features=2, dtype=F32).shape == (2, 2)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros(4, np.float32), r"2-D array of shape \(n_rows, 4\), got shape \(4,\).*reshape"),
        (np.zeros((2, 2, 4), np.float32), r"got shape \(2, 2, 4\)"),
        (np.zeros((2, 5), np.float32), r"expected 4 features.*got shape \(2, 5\)"),
        (np.array([["a"] * 4]), "numeric array.*<U1"),
        (np.zeros((1, 4), dtype=object), "numeric array.*object"),
        (np.zeros((1, 4), dtype=np.complex64), "numeric array.*complex64"),
        ([[1, 2], [3]], "cannot be read"),
    ],
)
def test_bad_inputs_raise_input_error(X: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        as_batch(X, n_features=4, dtype=F32)


def test_empty_batch_is_valid() -> None:
    assert as_batch(np.zeros((0, 4)), n_features=4, dtype=F32).shape == (0, 4)


def test_dataframe_columns_are_checked_and_reordered() -> None:
    names = ["a", "b", "c"]
    frame = pd.DataFrame({"c": [3.0], "a": [1.0], "b": [2.0]})
    np.testing.assert_array_equal(
        as_batch(frame, n_features=3, dtype=F32, feature_names=names), [[1, 2, 3]]
    )
    with pytest.raises(InputError, match=r"missing \['c'\], unexpected \['z'\]"):
        as_batch(frame.rename(columns={"c": "z"}), n_features=3, dtype=F32, feature_names=names)


def test_dataframe_without_known_names_is_taken_by_position() -> None:
    frame = pd.DataFrame({"x": [1.0], "y": [2.0]})
    assert as_batch(frame, n_features=2, dtype=F32).tolist() == [[1.0, 2.0]]
