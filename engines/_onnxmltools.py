"""Supervised anomaly scorers (LightGBM / XGBoost binary classifiers) to ONNX via onnxmltools.

onnxmltools converts the classifier to a ``TreeEnsembleClassifier`` (LOGISTIC post-transform).
Its trees are moved, unchanged, into a ``TreeEnsembleRegressor`` that outputs the raw margin
``s``; the graph then computes ``p = sigmoid(s)`` in float64 and the project's three outputs:
``score_samples = -p(anomaly)``, ``decision_function = threshold - p(anomaly)`` and ``label``
(-1 where the decision is < 0). The graph holds no classifier operator: it is a scorer, and the
ONNX engine reads it like any other detector.

Comparisons follow each library: LightGBM compares float64 ``x <= t`` with float64 thresholds
(the graph casts float32 input up and takes the exact thresholds from the booster's dump, as
onnxmltools rounds them to float32); XGBoost compares float32 ``x < t`` (float64 input is cast
down, as XGBoost does).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper

from engines.errors import UnsupportedModelError
from engines.native._graph import GraphBuilder

__all__ = [
    "ONNXMLTOOLS_OPSET",
    "SCORER_CLASSIFIERS",
    "scorer_metadata",
    "scorer_to_onnx",
    "split_thresholds",
    "threshold_cloud",
]

#: The highest ai.onnx opset onnxmltools 1.16 converts to; the graph is rebuilt at the project's.
ONNXMLTOOLS_OPSET = 15
#: Classifier classes the exporter converts, by module and name.
SCORER_CLASSIFIERS: dict[str, str] = {
    "LGBMClassifier": "lightgbm",
    "XGBClassifier": "xgboost",
}
# onnxmltools wraps the ensemble's outputs in these (renames, a cast of the label, x 1.0).
_WRAPPING_OPS = frozenset({"Identity", "Cast", "Mul"})
_INSTALL = "pip install 'onnx-anomaly-harness[boost]' (onnxmltools, lightgbm, xgboost-cpu)"


def _library(classifier: Any) -> str:
    name = type(classifier).__name__
    library = SCORER_CLASSIFIERS.get(name)
    if library is None or not type(classifier).__module__.startswith(library):
        raise UnsupportedModelError(
            f"cannot export SupervisedScorer({name}): onnxmltools converts "
            f"{sorted(SCORER_CLASSIFIERS)} (binary) as anomaly scorers"
        )
    return library


def _check_scorer(scorer: Any) -> tuple[Any, str]:
    classifier = getattr(scorer, "classifier_", None)
    if classifier is None:
        raise UnsupportedModelError("SupervisedScorer is not fitted; call fit() before exporting")
    library = _library(classifier)
    if len(scorer.classes_) != 2:
        raise UnsupportedModelError(
            f"SupervisedScorer needs a binary classifier, got classes {list(scorer.classes_)}"
        )
    if library == "lightgbm":
        if classifier.boosting_type == "rf":
            raise UnsupportedModelError(
                "LGBMClassifier(boosting_type='rf') averages its trees; onnxmltools' graph for it "
                "is not a plain sum of trees and is not converted here: use gbdt, dart or goss"
            )
        objective = classifier.objective_
        if objective != "binary":
            raise UnsupportedModelError(
                f"LGBMClassifier objective {objective!r}: only 'binary' "
                "gives probabilities as sigmoid(margin)"
            )
    else:
        objective = str(classifier.get_xgb_params().get("objective"))
        if objective != "binary:logistic":
            raise UnsupportedModelError(
                f"XGBClassifier objective {objective!r}: only 'binary:logistic' gives "
                "probabilities as sigmoid(margin)"
            )
    return classifier, library


def _convert(classifier: Any, library: str, n_features: int) -> onnx.ModelProto:
    try:
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import (
            FloatTensorType,
        )
    except ImportError as exc:
        raise UnsupportedModelError(f"onnxmltools is not installed: {_INSTALL}") from exc
    types = [("X", FloatTensorType([None, n_features]))]
    try:
        if library == "lightgbm":
            proto = convert_lightgbm(
                classifier, initial_types=types, target_opset=ONNXMLTOOLS_OPSET, zipmap=False
            )
        else:
            proto = convert_xgboost(
                _unnamed(classifier), initial_types=types, target_opset=ONNXMLTOOLS_OPSET
            )
    except Exception as exc:  # onnxmltools raises many types: report the classifier and its words
        raise UnsupportedModelError(
            f"onnxmltools cannot convert {type(classifier).__name__}: {exc}"
        ) from exc
    if not isinstance(proto, onnx.ModelProto):
        raise UnsupportedModelError(f"onnxmltools gave {type(proto).__name__}, not an ONNX model")
    return proto


def _unnamed(classifier: Any) -> Any:
    """The XGBClassifier with a booster copy that has no feature names: onnxmltools reads
    splits as 'f<column>' and fails on names ("feature names should follow pattern 'f%d'")."""
    booster = classifier.get_booster()
    if not booster.feature_names:
        return classifier
    twin = copy.copy(classifier)
    twin._Booster = booster.copy()
    twin._Booster.feature_names = None
    twin._Booster.feature_types = None
    return twin


def _ensemble(proto: onnx.ModelProto, name: str) -> dict[str, Any]:
    """The attributes of the graph's one TreeEnsembleClassifier, after checking the graph."""
    ensembles = [n for n in proto.graph.node if n.op_type == "TreeEnsembleClassifier"]
    others = sorted({n.op_type for n in proto.graph.node} - {"TreeEnsembleClassifier"})
    if len(ensembles) != 1 or set(others) - _WRAPPING_OPS:
        raise UnsupportedModelError(
            f"onnxmltools' graph for {name} is not one TreeEnsembleClassifier (it has "
            f"{len(ensembles)}, and ops {others}): not converted to a scorer"
        )
    attrs = {a.name: helper.get_attribute_value(a) for a in ensembles[0].attribute}
    transform = attrs.get("post_transform", b"NONE")
    labels = attrs.get("classlabels_int64s") or attrs.get("classlabels_strings") or []
    if transform != b"LOGISTIC" or len(labels) != 2 or set(attrs["class_ids"]) != {0}:
        raise UnsupportedModelError(
            f"onnxmltools' ensemble for {name} is not a binary logistic one (post_transform "
            f"{transform!r}, {len(labels)} classes, class ids {sorted(set(attrs['class_ids']))})"
        )
    if len(attrs.get("base_values", [])) > 1:
        raise UnsupportedModelError(f"onnxmltools' ensemble for {name} has several base values")
    return attrs


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        current = stack.pop()
        if "left_child" in current:
            yield current
            stack.extend([current["left_child"], current["right_child"]])


def _exact_thresholds(dump: dict[str, Any], attrs: dict[str, Any]) -> tuple[list[float], int]:
    """LightGBM's float64 thresholds for onnxmltools' float32 ones, matched per (tree, feature,
    value); (thresholds, how many stayed float32 because two float64 ones round alike)."""
    found: dict[tuple[int, int, float], set[float]] = {}
    for tree, info in enumerate(dump["tree_info"]):
        for split in _walk(info["tree_structure"]):
            if split["decision_type"] != "<=":
                continue
            value = float(split["threshold"])
            key = (tree, int(split["split_feature"]), float(np.float32(value)))
            found.setdefault(key, set()).add(value)
    out, inexact = [], 0
    for tree, feature, mode, value in zip(
        attrs["nodes_treeids"],
        attrs["nodes_featureids"],
        attrs["nodes_modes"],
        attrs["nodes_values"],
        strict=True,
    ):
        candidates = found.get((tree, feature, float(np.float32(value))), set())
        if mode == b"BRANCH_LEQ" and len(candidates) == 1:
            out.append(next(iter(candidates)))
        else:
            inexact += mode == b"BRANCH_LEQ"
            out.append(float(value))
    return out, inexact


def scorer_to_onnx(scorer: Any, *, dtype: Any = np.float32) -> onnx.ModelProto:
    """Convert a fitted ``SupervisedScorer`` over LightGBM / XGBoost into a scorer graph."""
    classifier, library = _check_scorer(scorer)
    n_features = int(scorer.n_features_in_)
    name = type(classifier).__name__
    attrs = _ensemble(_convert(classifier, library, n_features), name)
    regressor: dict[str, Any] = {k: v for k, v in attrs.items() if k.startswith("nodes_")}
    regressor.update(
        target_ids=attrs["class_ids"],
        target_nodeids=attrs["class_nodeids"],
        target_treeids=attrs["class_treeids"],
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
    )
    if attrs.get("base_values"):
        regressor["base_values"] = attrs["base_values"]
    builder = GraphBuilder("supervised_scorer", np.dtype(dtype), n_features)
    builder.ml_opset = 3
    x = "X"
    inexact = 0
    scale = 1.0
    if library == "lightgbm":  # float64 x <= float64 t, leaves summed in float64
        dump = classifier.booster_.dump_model()  # the trees onnxmltools converted
        found = re.search(r"sigmoid:([0-9.eE+-]+)", str(dump.get("objective", "")))
        scale = float(found.group(1)) if found else 1.0  # p = 1 / (1 + exp(-sigmoid * raw))
        thresholds, inexact = _exact_thresholds(dump, attrs)
        del regressor["nodes_values"]
        regressor["nodes_values_as_tensor"] = onnx.numpy_helper.from_array(
            np.asarray(thresholds, dtype=np.float64)
        )
        regressor["target_weights_as_tensor"] = onnx.numpy_helper.from_array(
            np.asarray(attrs["class_weights"], dtype=np.float64)
        )
        x = builder.cast(x, np.float64) if builder.dtype != np.float64 else x
    else:  # XGBoost compares float32(x) < float32 t
        regressor["target_weights"] = attrs["class_weights"]
        x = builder.cast(x, np.float32) if builder.dtype != np.float32 else x
    margin = builder.op("TreeEnsembleRegressor", [x], domain="ai.onnx.ml", **regressor)
    margin = builder.cast(margin, np.float64)
    margin = builder.op("Reshape", [margin, builder.const([-1], np.int64, "flat")])
    if scale != 1.0:
        margin = builder.op("Mul", [margin, builder.const(scale, np.float64, "sigmoid")])
    if scorer.anomaly_index_ == 0:  # sigmoid(margin) is the probability of classes_[1]
        margin = builder.op("Neg", [margin])
    score = builder.op("Neg", [builder.op("Sigmoid", [margin])])
    outputs = builder.anomaly_outputs(score, float(scorer.offset_))
    doc = f"SupervisedScorer({name}) via onnxmltools, threshold {-scorer.offset_}"
    if inexact:
        doc += f"; {inexact} split(s) kept onnxmltools' float32 threshold (ambiguous match)"
    return builder.finish(outputs, np.dtype(np.float64), doc=doc)


def split_thresholds(scorer: Any) -> list[tuple[int, float]]:
    """(input column, float64 threshold) of every numeric split of the scorer's trees."""
    classifier, library = _check_scorer(scorer)
    out: list[tuple[int, float]] = []
    if library == "lightgbm":
        for info in classifier.booster_.dump_model()["tree_info"]:
            for split in _walk(info["tree_structure"]):
                if split["decision_type"] == "<=":
                    out.append((int(split["split_feature"]), float(split["threshold"])))
        return out
    booster = classifier.get_booster()
    names = list(booster.feature_names or [])
    for text in booster.get_dump(dump_format="json"):
        stack = [json.loads(text)]
        while stack:
            node = stack.pop()
            if "children" not in node:
                continue
            feature = str(node["split"])
            column = names.index(feature) if feature in names else int(feature.lstrip("f"))
            out.append((column, float(node["split_condition"])))
            stack.extend(node["children"])
    return out


def threshold_cloud(
    scorer: Any, n_features: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(center, spread) per column from the split thresholds, for export's validation rows."""
    lo = np.full(n_features, np.inf)
    hi = np.full(n_features, -np.inf)
    for column, value in split_thresholds(scorer):
        lo[column] = min(lo[column], value)
        hi[column] = max(hi[column], value)
    lo, hi = np.where(np.isfinite(lo), lo, -1.0), np.where(np.isfinite(hi), hi, 1.0)
    return (lo + hi) / 2, (hi - lo) / 4 + 1e-3


def scorer_metadata(scorer: Any) -> dict[str, Any]:
    """What the ONNX file records about the scorer beyond ``export``'s own metadata."""
    classifier, library = _check_scorer(scorer)
    import onnxmltools

    module = __import__(library)
    return {
        "classifier": type(classifier).__name__,
        "threshold": -float(scorer.offset_),
        "anomaly_class": np.asarray(scorer.classes_)[scorer.anomaly_index_].item(),
        "classifier_params": json.loads(
            json.dumps(classifier.get_params(deep=False), default=repr, sort_keys=True)
        ),
        "scorer_versions": {"onnxmltools": onnxmltools.__version__, library: module.__version__},
    }
