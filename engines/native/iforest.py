"""IsolationForest as ONE tree-ensemble node whose leaves carry each tree's path length.

score_samples = -2 ** (-sum_t(depth_t(x) + c(n_leaf) - 1) / (n_trees * c(max_samples))), so the
whole forest is a SUM over trees of a per-leaf constant followed by a few elementwise ops.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

from engines.errors import UnsupportedModelError
from engines.native._graph import GraphBuilder
from engines.native._preprocess import transform_graph
from engines.native._runtime import (
    TREE_ENSEMBLE_V5,
    RuntimeVersion,
    installed_runtime,
    tree_ensemble_opset,
)

__all__ = ["IForestVariant", "iforest_to_onnx"]

Threshold = Literal["float", "double"]
NanRouting = Literal["columns", "kernel"]


@dataclasses.dataclass(frozen=True)
class IForestVariant:
    """How the forest is laid out in ONNX (the benchmark compares these)."""

    #: 5: one ai.onnx.ml opset 5 TreeEnsemble (onnxruntime >= 1.21); 3: TreeEnsembleRegressor,
    #: whose output is float32, so scores are within ~2e-8 instead of ~1e-15 (float64 input
    #: alike). None: the form the target runtime loads (5 where it can).
    ml_opset: Literal[3, 5] | None = None
    #: "double": thresholds in float64 with X promoted (exactly scikit-learn's comparison);
    #: "float": float32 thresholds rounded down so float32 comparisons agree.
    thresholds: Threshold = "double"
    #: Split the forest into this many ensemble nodes whose sums are added.
    n_parts: int = 1
    #: How NaN follows scikit-learn's per-node missing-value direction. "kernel": the
    #: ensemble's nodes_missing_value_tracks_true (ONNX Runtime then checks for NaN at every
    #: node). "columns": the input is widened to [X, X with NaN -> -inf]; nodes that send NaN
    #: left read the second copy (-inf <= t), the others the first (NaN <= t is false: right),
    #: and the kernel runs its untracked path. Measured on W1 (paired, one process): "columns"
    #: is 6% faster at batch 1,000-10,000 and 15% slower at batch 1 (three more nodes), so the
    #: default stays "kernel": one node, and small batches are where ONNX wins most.
    nan_routing: NanRouting = "kernel"


@dataclasses.dataclass(frozen=True)
class _Tree:
    feature: npt.NDArray[np.int64]  # input column per node (-1 for leaves)
    threshold: npt.NDArray[np.float64]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    missing_left: npt.NDArray[np.bool_]
    leaf_value: npt.NDArray[np.float64]  # path length for leaves


def _trees(forest: IsolationForest) -> list[_Tree]:
    subsample = forest._max_features != forest.n_features_in_
    trees = []
    for index, (estimator, features) in enumerate(
        zip(forest.estimators_, forest.estimators_features_, strict=True)
    ):
        tree = estimator.tree_
        left = tree.children_left.astype(np.int64)
        is_leaf = left == -1
        local = tree.feature.astype(np.int64)
        columns = np.asarray(features, dtype=np.int64)[np.where(is_leaf, 0, local)]
        feature = np.where(is_leaf, -1, columns if subsample else local)
        missing = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
        value = (
            forest._decision_path_lengths[index] + forest._average_path_length_per_tree[index] - 1.0
        )
        trees.append(
            _Tree(
                feature=feature,
                threshold=tree.threshold.astype(np.float64),
                left=left,
                right=tree.children_right.astype(np.int64),
                missing_left=np.asarray(missing, dtype=bool),
                leaf_value=np.asarray(value, dtype=np.float64),
            )
        )
    return trees


def _route_nan_by_columns(
    builder: GraphBuilder, x: str, trees: list[_Tree], n: int, dtype: Any
) -> tuple[str, list[_Tree]]:
    """[X, X with NaN -> -inf]; left-routing nodes read column f + n (see IForestVariant)."""
    rerouted = [
        dataclasses.replace(
            t,
            feature=np.where(t.missing_left & (t.feature >= 0), t.feature + n, t.feature),
            missing_left=np.zeros_like(t.missing_left),
        )
        for t in trees
    ]
    if not any(np.any(t.feature >= n) for t in rerouted):
        return x, rerouted
    minus_inf = builder.const(-np.inf, dtype, "minus_inf")
    filled = builder.op("Where", [builder.op("IsNaN", [x]), minus_inf, x])
    return builder.op("Concat", [x, filled], axis=1), rerouted


def _float_thresholds(threshold: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Largest float32 not above each float64 threshold: float32(x) <= t32 iff x <= t64."""
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _ensemble_v5(builder: GraphBuilder, x: str, trees: list[_Tree], dtype: Any) -> str:
    """ai.onnx.ml opset 5 TreeEnsemble: interior nodes and leaves in separate arrays."""
    featureids: list[int] = []
    splits: list[float] = []
    truenode: list[int] = []
    trueleaf: list[int] = []
    falsenode: list[int] = []
    falseleaf: list[int] = []
    missing: list[int] = []
    roots: list[int] = []
    leaf_weights: list[float] = []
    for tree in trees:
        interior = np.flatnonzero(tree.left != -1)
        leaves = np.flatnonzero(tree.left == -1)
        base_node, base_leaf = len(featureids), len(leaf_weights)
        node_index = np.full(len(tree.left), -1, dtype=np.int64)
        leaf_index = np.full(len(tree.left), -1, dtype=np.int64)
        node_index[interior] = base_node + np.arange(len(interior))
        leaf_index[leaves] = base_leaf + np.arange(len(leaves))
        leaf_weights.extend(tree.leaf_value[leaves])
        roots.append(base_node)
        if len(interior) == 0:  # a single-leaf tree: a split whose branches meet in the leaf
            featureids.append(0)
            splits.append(0.0)
            for target, flag in ((truenode, trueleaf), (falsenode, falseleaf)):
                target.append(base_leaf)
                flag.append(1)
            missing.append(0)
            continue
        for child, target, flag in (
            (tree.left, truenode, trueleaf),
            (tree.right, falsenode, falseleaf),
        ):
            kids = child[interior]
            is_leaf = tree.left[kids] == -1
            target.extend(np.where(is_leaf, leaf_index[kids], node_index[kids]).tolist())
            flag.extend(is_leaf.astype(int).tolist())
        featureids.extend(tree.feature[interior].tolist())
        splits.extend(tree.threshold[interior].tolist())
        missing.extend(tree.missing_left[interior].astype(int).tolist())
    split_values: npt.NDArray[Any] = np.asarray(splits, dtype=np.float64)
    if dtype == np.float32:
        split_values = _float_thresholds(split_values)
    builder.ml_opset = 5
    return builder.op(
        "TreeEnsemble",
        [x],
        domain="ai.onnx.ml",
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE
        n_targets=1,
        tree_roots=roots,
        nodes_featureids=featureids,
        nodes_splits=onnx.numpy_helper.from_array(split_values.astype(dtype)),
        nodes_modes=onnx.numpy_helper.from_array(np.zeros(len(featureids), dtype=np.uint8)),
        nodes_truenodeids=truenode,
        nodes_trueleafs=trueleaf,
        nodes_falsenodeids=falsenode,
        nodes_falseleafs=falseleaf,
        nodes_missing_value_tracks_true=missing,
        leaf_targetids=[0] * len(leaf_weights),
        leaf_weights=onnx.numpy_helper.from_array(np.asarray(leaf_weights, dtype=dtype)),
    )


def _ensemble_v3(builder: GraphBuilder, x: str, trees: list[_Tree], thresholds: Threshold) -> str:
    """ai.onnx.ml opset 3 TreeEnsembleRegressor: one node array with LEAF entries."""
    treeids: list[int] = []
    nodeids: list[int] = []
    featureids: list[int] = []
    modes: list[str] = []
    values: list[float] = []
    true_ids: list[int] = []
    false_ids: list[int] = []
    missing: list[int] = []
    target_tree: list[int] = []
    target_node: list[int] = []
    weights: list[float] = []
    for t, tree in enumerate(trees):
        n = len(tree.left)
        is_leaf = tree.left == -1
        treeids.extend([t] * n)
        nodeids.extend(range(n))
        featureids.extend(np.where(is_leaf, 0, tree.feature).tolist())
        modes.extend(np.where(is_leaf, "LEAF", "BRANCH_LEQ").tolist())
        values.extend(np.where(is_leaf, 0.0, tree.threshold).tolist())
        true_ids.extend(np.where(is_leaf, 0, tree.left).tolist())
        false_ids.extend(np.where(is_leaf, 0, tree.right).tolist())
        missing.extend((tree.missing_left & ~is_leaf).astype(int).tolist())
        leaves = np.flatnonzero(is_leaf)
        target_tree.extend([t] * len(leaves))
        target_node.extend(leaves.tolist())
        weights.extend(tree.leaf_value[leaves].tolist())
    split_values = np.asarray(values, dtype=np.float64)
    attrs: dict[str, Any] = {}
    if thresholds == "double":
        attrs["nodes_values_as_tensor"] = onnx.numpy_helper.from_array(split_values)
        attrs["target_weights_as_tensor"] = onnx.numpy_helper.from_array(
            np.asarray(weights, dtype=np.float64)
        )
    else:
        attrs["nodes_values"] = _float_thresholds(split_values).tolist()
        attrs["target_weights"] = weights
    builder.ml_opset = 3
    return builder.op(
        "TreeEnsembleRegressor",
        [x],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=treeids,
        nodes_nodeids=nodeids,
        nodes_featureids=featureids,
        nodes_modes=modes,
        nodes_truenodeids=true_ids,
        nodes_falsenodeids=false_ids,
        nodes_missing_value_tracks_true=missing,
        target_ids=[0] * len(weights),
        target_treeids=target_tree,
        target_nodeids=target_node,
        **attrs,
    )


def _ml_opset(variant: IForestVariant, target: RuntimeVersion) -> Literal[3, 5]:
    """The variant's tree-ensemble opset, or the target's; refused if the target lacks it."""
    if variant.ml_opset is None:
        return tree_ensemble_opset(target)
    if variant.ml_opset == 5 and target < TREE_ENSEMBLE_V5:
        raise UnsupportedModelError(
            f"IForestVariant(ml_opset=5) needs onnxruntime >= {TREE_ENSEMBLE_V5} (TreeEnsemble), "
            f"the target is {target}: use ml_opset=3 or None"
        )
    return variant.ml_opset


def iforest_to_onnx(
    forest: IsolationForest,
    *,
    dtype: Any = np.float32,
    steps: list[Any] | None = None,
    variant: IForestVariant | None = None,
    target_runtime: RuntimeVersion | None = None,
) -> onnx.ModelProto:
    """Export a fitted IsolationForest (optionally behind scalers) as one tree-ensemble graph.

    ``target_runtime`` (default: the installed onnxruntime) picks the form: ai.onnx.ml 5
    ``TreeEnsemble`` from onnxruntime 1.21 on, opset 3 ``TreeEnsembleRegressor`` below.

    Example:
        >>> model = iforest_to_onnx(IsolationForest(random_state=0).fit(X))  # doctest: +SKIP
    """
    variant = variant or IForestVariant()
    ml_opset = _ml_opset(variant, target_runtime or installed_runtime())
    dtype = np.dtype(dtype)
    builder = GraphBuilder("isolation_forest", dtype, forest.n_features_in_)
    x = transform_graph(builder, "X", steps or [])
    if dtype == np.float64:
        x = builder.cast(x, np.float32)  # scikit-learn scores float32(X), whatever X's dtype
    tree_dtype = np.float64 if variant.thresholds == "double" else np.float32
    if tree_dtype == np.float64:  # promote like scikit-learn: float32(x) compared in float64
        x = builder.cast(x, np.float64)
    denominator = len(forest.estimators_) * float(_average_path_length([forest._max_samples])[0])
    # Leaves carry -path_length / denominator, so the ensemble's sum is the exponent itself.
    # (One training sample: scikit-learn sets the ratio to 1, i.e. the exponent to -1.)
    scale = -1.0 / denominator if denominator != 0 else 0.0
    trees = [dataclasses.replace(t, leaf_value=t.leaf_value * scale) for t in _trees(forest)]
    if variant.nan_routing == "columns":
        x, trees = _route_nan_by_columns(builder, x, trees, forest.n_features_in_, tree_dtype)
    parts = np.array_split(np.arange(len(trees)), max(1, min(variant.n_parts, len(trees))))
    sums = []
    for part in parts:
        chosen = [trees[i] for i in part]
        if ml_opset == 5:
            sums.append(_ensemble_v5(builder, x, chosen, tree_dtype))
        else:
            sums.append(_ensemble_v3(builder, x, chosen, variant.thresholds))
    exponent = sums[0]
    for other in sums[1:]:
        exponent = builder.op("Add", [exponent, other])
    exponent = builder.op("Reshape", [exponent, builder.const([-1], np.int64, "flat")])
    if builder.dtype_of_scores != np.dtype(tree_dtype) or ml_opset == 3:
        exponent = builder.cast(exponent, np.float64)
    if denominator == 0:
        exponent = builder.op("Sub", [exponent, builder.const(1.0, np.float64)])
    power = builder.op("Pow", [builder.const(2.0, np.float64, "two"), exponent])
    score = builder.op("Neg", [power])
    outputs = builder.anomaly_outputs(score, float(forest.offset_))
    return builder.finish(outputs, np.dtype(np.float64), doc="native IsolationForest")
