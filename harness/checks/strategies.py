"""Hypothesis strategies for parity testing: inputs that find real discrepancies.

Rows are drawn around a dataset (in-distribution, far outliers, duplicated rows, constant
columns), at / just above / just below a tree model's split thresholds (np.nextafter), on
either side of the reference's decision boundary, with NaN and +-inf where the estimator
accepts them, subnormals, huge magnitudes, float64 vs float32, optionally within a bound
around the data. Model hyperparameters for the estimators the zoo covers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st

__all__ = [
    "boundary_rows",
    "hyperparameters",
    "input_box",
    "input_rows",
    "split_rows",
    "split_thresholds",
    "training_data",
]

_TINY = float(np.finfo(np.float32).tiny)

#: How near the cut, as a fraction of the decision's scale, boundary rows need to come on
#: either side before the search for nearer ones stops: a label threshold moved by more flips
#: one of them.
_NEAR_ENOUGH = 1e-5


def _as_strategy(value: Any) -> st.SearchStrategy[Any]:
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def _trees(model: Any) -> list[tuple[Any, npt.NDArray[np.intp]]]:
    """(scikit-learn tree, the input column of each of its features) of a bagged tree ensemble
    on the input itself (IsolationForest, PyOD's IForest); none behind a pipeline's scalers
    (its thresholds live in scaled space) or for other models."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(model, "steps") and len(model.steps) > 1:
        return []
    return [
        (estimator.tree_, np.asarray(features))
        for estimator, features in zip(
            getattr(final, "estimators_", []),
            getattr(final, "estimators_features_", []),
            strict=False,
        )
    ]


def split_thresholds(model: Any) -> list[tuple[int, float]]:
    """(input column, float64 threshold) of every split of a tree ensemble (pipelines: none)."""
    out: list[tuple[int, float]] = []
    for tree, features in _trees(model):
        inner = np.flatnonzero(tree.children_left != -1)
        columns = features[tree.feature[inner]]
        out.extend(zip(columns.tolist(), tree.threshold[inner].tolist(), strict=True))
    return out


def _below32(t: float) -> np.float32:
    """The largest float32 not above ``t``: scikit-learn sends float32(x) <= t left."""
    t32: np.float32 = np.float32(t)
    if float(t32) <= t:
        return t32
    down: np.float32 = np.nextafter(t32, np.float32(-np.inf))
    return down


def split_rows(
    model: Any, base: npt.ArrayLike, *, limit: int = 512, seed: int = 0
) -> npt.NDArray[np.float32]:
    """Rows that reach a split of a tree ensemble's tree and sit on it: for up to ``limit``
    splits (drawn evenly over the trees' inner nodes, seeded), a base row with every feature
    the path to the node tests moved inside the node's box (kept where it already is), and
    the split's feature at the largest float32 not above the float64 threshold (left, as
    scikit-learn compares float32(x) <= threshold) and at the next float32 (right). Two rows
    a split, float32 (what the trees compare). A histogram detector (PyOD's HBOS) splits each
    feature at its bin edges, which every row reaches: a base row with one feature on either
    side of an edge. None for other models.

    A value merely set to a threshold rarely reaches the node that tests it: another split
    on the path sends the row elsewhere, and a graph whose thresholds are rounded to the
    nearest float32 (half of them up, onto the right-hand row) goes unseen. A bin edge
    moved by a little moves only the rows in the sliver between the two edges.

    Example:
        >>> import numpy as np
        >>> from sklearn.ensemble import IsolationForest
        >>> X = np.random.default_rng(0).normal(size=(64, 3))
        >>> forest = IsolationForest(n_estimators=4, random_state=0).fit(X)
        >>> rows = split_rows(forest, X, limit=8)
        >>> rows.shape, rows.dtype
        ((16, 3), dtype('float32'))
    """
    trees = _trees(model)
    rows_in = np.asarray(base, dtype=np.float64)
    width = rows_in.shape[1] if rows_in.ndim == 2 else 0
    rows_in = rows_in[np.isfinite(rows_in).all(axis=1)] if width else rows_in
    nodes = [
        (t, int(n))
        for t, (tree, _) in enumerate(trees)
        for n in np.flatnonzero(tree.children_left != -1)
    ]
    if not len(rows_in) or not (nodes or (edges := _bin_edges(model))):
        return np.zeros((0, width), dtype=np.float32)
    rng = np.random.default_rng(seed)
    if not nodes:  # every row reaches a bin edge: no path to walk
        picked = rng.choice(len(edges), size=min(limit, len(edges)), replace=False)
        on_edges: list[npt.NDArray[np.float32]] = []
        for column, edge in (edges[i] for i in sorted(picked)):
            left = _below32(edge)
            for value in (left, np.nextafter(left, np.float32(np.inf))):
                row = rows_in[rng.integers(len(rows_in))].astype(np.float32)
                row[column] = value
                on_edges.append(row)
        return np.asarray(on_edges, dtype=np.float32).reshape(-1, width)
    chosen = sorted(rng.choice(len(nodes), size=min(limit, len(nodes)), replace=False))
    parents = [_parents(tree) for tree, _ in trees]
    out: list[npt.NDArray[np.float32]] = []
    for i in chosen:
        t, node = nodes[i]
        tree, features = trees[t]
        low = np.full(width, -np.inf)  # float32(x) > low ...
        high = np.full(width, np.inf)  # ... and <= high on the way to the node
        child = node
        while (up := parents[t][child]) >= 0:
            column, threshold = int(features[tree.feature[up]]), float(tree.threshold[up])
            if tree.children_left[up] == child:
                high[column] = min(high[column], threshold)
            else:
                low[column] = max(low[column], threshold)
            child = up
        row = rows_in[rng.integers(len(rows_in))].astype(np.float32)
        inside = _inside(row, low, high)
        if inside is None:
            continue  # no float32 reaches this node
        column, threshold = int(features[tree.feature[node]]), float(tree.threshold[node])
        left = _below32(threshold)
        for value in (left, np.nextafter(left, np.float32(np.inf))):
            if low[column] < float(value) <= high[column]:
                on_split = inside.copy()
                on_split[column] = value
                out.append(on_split)
    return np.asarray(out, dtype=np.float32).reshape(-1, width)


def _bin_edges(model: Any) -> list[tuple[int, float]]:
    """(input column, edge) of every bin edge of a histogram detector on the input
    (PyOD's HBOS: ``bin_edges_``, one column of edges per feature, or a list of them with
    n_bins='auto'); none behind a pipeline's scalers or for other models."""
    if hasattr(model, "steps") or not hasattr(model, "hist_"):
        return []
    edges = getattr(model, "bin_edges_", None)
    if edges is None:
        return []
    columns = list(edges) if isinstance(edges, list) else list(np.asarray(edges).T)
    return [
        (j, float(edge))
        for j, column in enumerate(columns)
        for edge in np.asarray(column, dtype=np.float64)
        if np.isfinite(edge)
    ]


def _parents(tree: Any) -> npt.NDArray[np.intp]:
    """Each node's parent in a scikit-learn tree (-1 for the root)."""
    parent = np.full(tree.node_count, -1, dtype=np.intp)
    inner = np.flatnonzero(tree.children_left != -1)
    parent[tree.children_left[inner]] = inner
    parent[tree.children_right[inner]] = inner
    return parent


def _inside(
    row: npt.NDArray[np.float32], low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32] | None:
    """``row`` with each value outside (low, high] moved inside (the middle of the box, or
    next to its finite side), as float32; None where no float32 lies inside."""
    out: npt.NDArray[np.float32] = row.copy()
    for column in np.flatnonzero(~((low < row) & (row <= high))):
        lo, hi = low[column], high[column]
        if np.isfinite(lo) and np.isfinite(hi):
            value = np.float32((lo + hi) / 2)
        elif np.isfinite(hi):
            value = _below32(hi)
        else:  # the next float32 above lo
            value = np.nextafter(_below32(lo), np.float32(np.inf))
        if not lo < float(value) <= hi:
            value = _below32(hi)
        if not lo < float(value) <= hi:
            return None
        out[column] = value
    return out


def input_box(
    base: npt.ArrayLike, input_bound: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-column (low, high): the base rows' min / max widened by ``input_bound`` x their range
    (a constant column's range counts as max(|value|, 1))."""
    rows = np.asarray(base, dtype=np.float64)
    if not input_bound >= 0:
        raise ValueError(
            f"input_bound must be >= 0 (a multiple of the data's range), got {input_bound}"
        )
    finite = np.isfinite(rows)
    low = np.where(finite, rows, np.inf).min(axis=0, initial=np.inf)
    high = np.where(finite, rows, -np.inf).max(axis=0, initial=-np.inf)
    low, high = np.where(np.isfinite(low), low, 0.0), np.where(np.isfinite(high), high, 0.0)
    span = high - low
    span = np.where(span > 0, span, np.maximum(np.abs(high), 1.0))
    return low - input_bound * span, high + input_bound * span


def boundary_rows(
    decision: Callable[[npt.NDArray[Any]], npt.ArrayLike],
    base: npt.ArrayLike,
    *,
    pairs: int = 24,
    steps: int = 24,
    near: tuple[float, float] = (1e-7, 1e-2),
    dtype: Any = np.float32,
    seed: int = 0,
    recombine: int = 2,
    moves: int = 1024,
    walk: bool = False,
) -> npt.NDArray[Any]:
    """Rows at and near the decision boundary, found by bisecting segments from rows
    ``decision`` calls normal to rows it calls anomalous.

    The rows come nearest the boundary first (|decision| ascending): the last pair of every
    segment, one row on either side of the boundary, and the points probed on the way whose
    |decision| lies within ``near`` times the decision's scale
    on the base rows (its median |decision|, which a few far outliers do not inflate): close
    enough to the boundary for a label threshold moved by a little to flip them, far enough to
    be above float noise. Where
    no base row is anomalous, rows scaled away from the centre stand in. No rows when the
    decision never changes sign.

    A decision made of steps (trees, histograms, empirical CDFs) jumps over the cut, so
    bisection stops a jump away from it: there, up to ``recombine`` rounds of
    ``recombined_rows`` (``moves`` single-feature moves a row) move features of the nearest
    rows to values the base rows take, to land nearer the cut on either side. With ``walk``,
    where every row still lies on one side, ``walked_rows`` walks the nearest towards the
    other, one feature at a time.
    """
    rows = np.asarray(base, dtype=np.float64)
    rows = rows[np.isfinite(rows).all(axis=1)]
    if not len(rows):
        return np.zeros((0, np.shape(base)[1]), dtype=dtype)
    rng = np.random.default_rng(seed)

    def value(X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        with np.errstate(all="ignore"):
            return np.asarray(decision(X.astype(dtype)), dtype=np.float64).reshape(-1)

    d = value(rows)
    inside = d >= 0
    finite = np.abs(d[np.isfinite(d)])
    scale = float(np.median(finite)) if len(finite) else 1.0
    normal, anomalous = rows[inside], rows[~inside]
    d_normal, d_anomalous = d[inside], d[~inside]
    if not len(anomalous) and len(normal):  # push rows outwards until the decision turns
        centre = normal.mean(axis=0)
        for factor in (3.0, 10.0, 100.0):
            far = centre + (normal - centre) * factor
            d_far = value(far)
            anomalous, d_anomalous = far[~(d_far >= 0)], d_far[~(d_far >= 0)]
            if len(anomalous):
                break
    if walk and len(rows) and (not len(normal) or not len(anomalous)):
        walked, walked_d = walked_rows(value, rows, d, moves=moves)
        normal = np.concatenate([normal, walked[walked_d >= 0]])
        anomalous = np.concatenate([anomalous, walked[~(walked_d >= 0)]])
        d_normal = np.concatenate([d_normal, walked_d[walked_d >= 0]])
        d_anomalous = np.concatenate([d_anomalous, walked_d[~(walked_d >= 0)]])
    if not len(normal) or not len(anomalous):
        return np.zeros((0, rows.shape[1]), dtype=dtype)
    ia, ib = rng.integers(0, len(normal), pairs), rng.integers(0, len(anomalous), pairs)
    a, b, da, db = normal[ia], anomalous[ib], d_normal[ia], d_anomalous[ib]
    probed, probed_d = [], []
    low, high = near[0] * scale, near[1] * scale
    for _ in range(steps):  # a stays normal, b stays anomalous; they close in on the boundary
        middle = ((a + b) / 2).astype(dtype).astype(np.float64)
        d = value(middle)
        ok = d >= 0
        kept = (np.abs(d) >= low) & (np.abs(d) <= high)
        probed.append(middle[kept])
        probed_d.append(d[kept])
        a, da = np.where(ok[:, None], middle, a), np.where(ok, d, da)
        b, db = np.where(ok[:, None], b, middle), np.where(ok, db, d)
    found = np.concatenate([a, b, *probed])
    margins = np.concatenate([da, db, *probed_d])
    if recombine:
        nearer, nearer_d = recombined_rows(
            value,
            found,
            margins,
            rows,
            target=_NEAR_ENOUGH * scale,
            rounds=recombine,
            moves=moves,
        )
        found, margins = np.concatenate([found, nearer]), np.concatenate([margins, nearer_d])
    nearness = np.nan_to_num(np.abs(margins), nan=np.inf)
    return found[np.argsort(nearness, kind="stable")].astype(dtype)


def walked_rows(
    value: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    rows: npt.NDArray[np.float64],
    margins: npt.NDArray[np.float64],
    *,
    moves: int = 1024,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Where every row lies on one side of the cut (a user's data of outliers only, and a model
    that keeps no rows to stand in for normal ones): the row nearest the cut, with its
    features moved one after another, each to the value of ``rows`` in that column that moves
    it furthest towards the other side (the biggest moves first), every step of the walk
    with its ``value``. Exact for a decision that adds up per feature (HBOS); a guess
    otherwise. None past the cut when no step crosses it."""
    finite = np.flatnonzero(np.isfinite(margins))
    if not len(finite):
        return np.zeros((0, rows.shape[1])), np.zeros(0)
    start = finite[np.argmin(np.abs(margins[finite]))]
    x, towards = rows[start], -np.sign(margins[start]) or 1.0
    column, moved_to = _grid(rows, moves)
    gain = towards * (_moved_alone(value, x, column, moved_to) - margins[start])
    best: dict[int, int] = {}
    for i in np.argsort(-np.nan_to_num(gain, nan=-np.inf), kind="stable"):
        if gain[i] > 0 and int(column[i]) not in best:
            best[int(column[i])] = int(i)
    steps = []
    row = x.copy()
    for i in best.values():  # biggest gain first
        row[column[i]] = moved_to[i]
        steps.append(row.copy())
    walked = np.array(steps).reshape(-1, rows.shape[1])
    return walked, value(walked) if len(walked) else np.zeros(0)


def _moved_alone(
    value: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    x: npt.NDArray[np.float64],
    column: npt.NDArray[np.int_],
    moved_to: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """``value`` of ``x`` with each single move applied: ``column[i]`` set to ``moved_to[i]``."""
    singles = np.repeat(x[None], len(moved_to), axis=0)
    singles[np.arange(len(moved_to)), column] = moved_to
    return value(singles)


def _grid(
    base: npt.NDArray[np.float64], moves: int, values: int = 64
) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.float64]]:
    """(column, value) of up to ``moves`` single-feature moves: up to ``values`` of the values
    ``base`` takes in each column, spread by rank."""
    grids = [np.unique(column[np.isfinite(column)]) for column in base.T]
    per_column = max(2, min(values, moves // max(len(grids), 1)))
    grids = [
        g[np.unique(np.linspace(0, len(g) - 1, per_column).round().astype(int))]
        if len(g) > per_column
        else g
        for g in grids
    ]
    column = np.concatenate([np.full(len(g), j) for j, g in enumerate(grids)]).astype(int)
    return column, np.concatenate(grids) if grids else np.zeros(0)


def recombined_rows(
    value: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    rows: npt.NDArray[np.float64],
    margins: npt.NDArray[np.float64],
    base: npt.NDArray[np.float64],
    *,
    target: float,
    rounds: int = 2,
    values: int = 64,
    moves: int = 1024,
    keep: int = 16,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rows nearer the cut (``value`` = 0) than ``rows``, where the nearest on a side lies
    further than ``target`` from it, with their ``value``.

    Each round starts from the nearest row on each side not started from yet. Every feature
    of it moved alone to one of up to ``values`` of the values ``base`` takes in that column
    (spread by rank; ``moves`` in all) gives that move's effect; moves of two to four distinct
    features are predicted as the sum of their effects (a meet in the middle over the sorted
    sums), exact where the decision adds up per feature (HBOS, ECOD, COPOD), a guess for
    trees, and of each kind the ``keep`` predicted nearest the cut on either side are
    evaluated. Deterministic, and within the data's own values column by column.
    """
    column, moved_to = _grid(base, moves, values)
    pool, pool_m = [rows], [margins]
    started: set[bytes] = set()
    for _ in range(rounds):
        every, every_m = np.concatenate(pool), np.concatenate(pool_m)
        fresh = []
        for side in (every_m >= 0, every_m < 0):
            order = np.flatnonzero(side & np.isfinite(every_m))
            order = order[np.argsort(np.abs(every_m[order]), kind="stable")]
            if not len(order) or abs(every_m[order[0]]) <= target:
                continue
            start = next((i for i in order if every[i].tobytes() not in started), None)
            if start is not None:
                fresh.append(int(start))
        if not fresh:
            break
        for i in fresh:
            started.add(every[i].tobytes())
            found, found_m = _moves(value, every[i], every_m[i], column, moved_to, keep)
            pool.append(found)
            pool_m.append(found_m)
    if len(pool) == 1:
        return np.zeros((0, rows.shape[1])), np.zeros(0)
    return np.concatenate(pool[1:]), np.concatenate(pool_m[1:])


def _moves(
    value: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    x: npt.NDArray[np.float64],
    margin: float,
    column: npt.NDArray[np.int_],
    moved_to: npt.NDArray[np.float64],
    keep: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``x`` with one to four of its features moved, the ``keep`` nearest the cut on either
    side of each kind, by prediction past one move, with their ``value``."""
    effect = _moved_alone(value, x, column, moved_to) - margin
    useful = np.flatnonzero(np.isfinite(effect) & (effect != 0))
    # one move per distinct (column, effect): an additive decision repeats effects per bin
    _, first = np.unique(np.stack([column[useful], effect[useful]]), axis=1, return_index=True)
    useful = useful[np.sort(first)]
    one = (effect[useful], useful[:, None])
    i, j = np.triu_indices(len(useful), 1)
    apart = column[useful[i]] != column[useful[j]]
    i, j = i[apart], j[apart]
    two = (effect[useful[i]] + effect[useful[j]], np.stack([useful[i], useful[j]], axis=1))
    kinds = [one, two, _joined(one, two, -margin, column), _joined(two, two, -margin, column)]
    picked = []
    for total, members in kinds:
        predicted = margin + total
        for side in (predicted >= 0, predicted < 0):
            chosen = np.flatnonzero(side)
            for moves in members[chosen[np.argsort(np.abs(predicted[chosen]))[:keep]]]:
                row = x.copy()
                row[column[moves]] = moved_to[moves]
                picked.append(row)
    combined = np.array(picked).reshape(-1, len(x))
    return combined, value(combined) if len(combined) else np.zeros(0)


def _joined(
    a: tuple[npt.NDArray[np.float64], npt.NDArray[np.int_]],
    b: tuple[npt.NDArray[np.float64], npt.NDArray[np.int_]],
    wanted: float,
    column: npt.NDArray[np.int_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int_]]:
    """Each set of moves in ``a`` with the sets in ``b`` whose summed effect comes nearest to
    ``wanted`` with it (two either side), where all their columns differ."""
    (a_sum, a_moves), (b_sum, b_moves) = a, b
    if not len(a_sum) or not len(b_sum):
        return np.zeros(0), np.zeros((0, a_moves.shape[1] + b_moves.shape[1]), dtype=int)
    order = np.argsort(b_sum, kind="stable")
    at = np.searchsorted(b_sum[order], wanted - a_sum)
    near = order[np.clip(at[:, None] + np.arange(-2, 2)[None, :], 0, len(order) - 1)]
    ia = np.repeat(np.arange(len(a_sum)), near.shape[1])
    moves = np.concatenate([a_moves[ia], b_moves[near.reshape(-1)]], axis=1)
    columns = np.sort(column[moves], axis=1)
    distinct = (np.diff(columns, axis=1) != 0).all(axis=1)
    return (a_sum[ia] + b_sum[near.reshape(-1)])[distinct], moves[distinct]


@st.composite
def input_rows(
    draw: st.DrawFn,
    *,
    base: npt.NDArray[Any],
    max_rows: int | st.SearchStrategy[int] = 16,
    thresholds: Sequence[tuple[int, float]] = (),
    allow_nan: bool = False,
    allow_inf: bool = False,
    dtype: Any = np.float32,
    boundary: npt.NDArray[Any] | None = None,
    input_bound: float | None = None,
) -> npt.NDArray[Any]:
    """A batch of rows built from ``base`` rows with the edits real discrepancies hide in.

    ``base`` is a 2-D array of representative rows (a dataset's test rows). Each row is a base
    row, possibly with: a feature set at / just below / just above a split threshold, a far
    outlier scaling, a duplicated row, a subnormal or huge value, and NaN / inf when allowed;
    or one of the ``boundary`` rows (either side of the reference's decision boundary).
    With ``input_bound`` finite values stay within ``input_box(base, input_bound)``.
    """
    base = np.asarray(base)
    if base.ndim != 2 or len(base) == 0:
        raise ValueError(f"base must be a non-empty 2-D array, got shape {base.shape}")
    if boundary is not None and (np.ndim(boundary) != 2 or np.shape(boundary)[1] != base.shape[1]):
        raise ValueError(
            f"boundary rows must have {base.shape[1]} columns, got {np.shape(boundary)}"
        )
    box = None if input_bound is None else input_box(base, input_bound)
    edits = ["none", "threshold", "threshold", "outlier", "duplicate", "subnormal", "huge"]
    edits += ["nan", "inf"]
    if boundary is not None and len(boundary):
        edits += ["boundary", "boundary"]
    n = draw(_as_strategy(max_rows).flatmap(lambda m: st.integers(1, max(1, int(m)))))
    width = base.shape[1]
    rows: list[npt.NDArray[np.float64]] = []
    for _ in range(n):
        row = base[draw(st.integers(0, len(base) - 1))].astype(np.float64)
        edit = draw(st.sampled_from(edits))
        column = draw(st.integers(0, width - 1))
        if edit == "threshold" and thresholds:
            column, t64 = thresholds[draw(st.integers(0, len(thresholds) - 1))]
            below = _below32(t64)
            row[column] = draw(
                st.sampled_from(
                    [below, np.nextafter(below, np.float32(np.inf)), np.float32(t64), t64]
                )
            )
        elif edit == "outlier":
            row = row * draw(st.sampled_from([5.0, 50.0, 1e3, -1e3]))
        elif edit == "duplicate" and rows:
            row = rows[-1].copy()
        elif edit == "subnormal":
            row[column] = draw(st.sampled_from([_TINY / 4, -_TINY / 8, 0.0, -0.0]))
        elif edit == "huge":
            row[column] = draw(st.sampled_from([1e30, -1e30, 3e38, -3e38]))
        elif edit == "nan" and allow_nan:
            row[column] = np.nan
        elif edit == "inf" and allow_inf:
            row[column] = draw(st.sampled_from([np.inf, -np.inf]))
        elif edit == "boundary" and boundary is not None:
            row = np.asarray(boundary[draw(st.integers(0, len(boundary) - 1))], dtype=np.float64)
        if box is not None:
            row = np.where(np.isfinite(row), np.clip(row, *box), row)
        rows.append(row)
    with np.errstate(over="ignore"):
        return np.asarray(rows).astype(dtype)


@st.composite
def training_data(
    draw: st.DrawFn,
    *,
    min_rows: int = 20,
    max_rows: int = 300,
    min_features: int = 1,
    max_features: int = 8,
) -> npt.NDArray[np.float32]:
    """Training sets: scale, correlation, duplicated rows and constant columns vary."""
    if not 1 <= min_rows <= max_rows:
        raise ValueError(f"need 1 <= min_rows <= max_rows, got {min_rows}, {max_rows}")
    if not 1 <= min_features <= max_features:
        raise ValueError(
            f"need 1 <= min_features <= max_features, got {min_features}, {max_features}"
        )
    n = draw(st.integers(min_rows, max_rows))
    f = draw(st.integers(min_features, max_features))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    if draw(st.booleans()) and f > 1:  # correlated features
        X = X @ rng.normal(size=(f, f))
    X *= draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()) and f > 1:  # a constant column
        X[:, draw(st.integers(0, f - 1))] = draw(st.sampled_from([0.0, 1.0, -7.5]))
    if draw(st.booleans()):  # duplicated rows
        X[n // 2 :] = X[: n - n // 2]
    return X.astype(np.float32)


def hyperparameters(estimator: str) -> st.SearchStrategy[dict[str, Any]]:
    """Hyperparameters for ``estimator`` (a class name from the zoo)."""
    contamination = st.one_of(st.just("auto"), st.floats(0.01, 0.2))
    table: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "IsolationForest": st.fixed_dictionaries(
            {
                "n_estimators": st.integers(1, 60),
                "max_samples": st.sampled_from(["auto", 16, 0.5]),
                "max_features": st.sampled_from([1.0, 0.5, 1]),
                "bootstrap": st.booleans(),
                "contamination": contamination,
                "random_state": st.integers(0, 1000),
            }
        ),
        "OneClassSVM": st.fixed_dictionaries(
            {
                "nu": st.floats(0.05, 0.5),
                "kernel": st.sampled_from(["rbf", "linear", "sigmoid"]),
                "gamma": st.sampled_from(["scale", "auto", 0.1]),
            }
        ),
        "GaussianMixture": st.fixed_dictionaries(
            {
                "n_components": st.integers(1, 4),
                "covariance_type": st.sampled_from(["full", "tied", "diag", "spherical"]),
                "random_state": st.integers(0, 1000),
            }
        ),
        "LocalOutlierFactor": st.fixed_dictionaries(
            {
                "n_neighbors": st.integers(2, 30),
                "novelty": st.just(True),
            }
        ),
        "PCAReconstructionDetector": st.fixed_dictionaries(
            {
                "n_components": st.integers(1, 3),
                "contamination": st.floats(0.01, 0.2),
            }
        ),
    }
    if estimator not in table:
        raise ValueError(f"no hyperparameter strategy for {estimator!r}; known: {sorted(table)}")
    return table[estimator]
