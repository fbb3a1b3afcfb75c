"""Conformance power: does ``harness check`` catch planted faults, and pass correct graphs?

For plain skl2onnx conversions (IsolationForest with and without the score_samples option,
OneClassSVM, GaussianMixture with score_samples, LocalOutlierFactor) and this project's export
of every zoo case (``harness.cases.zoo``: every estimator and pipeline, each exporter, the torch
autoencoder), the correct graph and four faulty copies are checked with
``harness.checks.pair.check_pair`` on the case's test rows:

- ``shift``: every score output + 1e-4 (labels untouched);
- ``param``: one leaf / coefficient / component entry moved by 1%: the first tree's leaf most
  test rows reach, else of 16 entries tried the one that changes the answers on most test rows;
- ``threshold``: the label threshold moved by 1e-3 (labels flip at decision 1e-3, not 0);
- ``swap``: two input columns swapped (a Gather in front of the graph; the first two columns
  that are not constant on the test rows).

It prints model x fault -> ``pass`` / ``caught (checks)`` / ``MISSED`` / ``FALSE FAILURE``, or
``no effect`` where a missed fault leaves the graph's outputs bit-identical to the correct
graph's on the test rows and at the decision boundary, ``within float32 noise`` where it moves
no score by more than the derived bound's safety factor (16) times float32 eps of the score's
size.

    python docs/experiments/conformance_power.py [--profile ci] [--zoo fast|regular|large|none]
        [--only NAME ...] [--faults shift param ...] [--random] [--cache DIR] [--json out.json]

Exports are cached in --cache (default: $TMPDIR/conformance_power) as ONNX plus a pickle of
the fitted estimator: files this script wrote itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from engines import SklearnEngine
from engines.tolerance import SAFETY_FACTOR
from harness.checks.pair import CheckSetupError, check_pair, decision_boundary
from harness.checks.parity import PROFILES, CheckOutcome

SHIFT = 1e-4
THRESHOLD = 1e-3
PARAM_CHANGE = 1e-2
SCORE_OUTPUTS = ("scores", "decision_function", "score_samples", "reconstruction_error")
FAULTS = ("shift", "param", "threshold", "swap")
NAN_ROUTING = (
    "skl2onnx's IsolationForest ignores scikit-learn's missing-value routing: rows with NaN "
    "get other scores"
)
SKL2ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclasses.dataclass(frozen=True)
class Pair:
    """A reference estimator, its ONNX graph and representative rows."""

    name: str
    estimator: Any
    model: onnx.ModelProto
    rows: np.ndarray
    known_gaps: dict[str, str]


# -- the pairs -------------------------------------------------------------------------------


def _cached(cache: Path, name: str, build: Callable[[], tuple[Any, onnx.ModelProto]]) -> Any:
    model_path, estimator_path = cache / f"{name}.onnx", cache / f"{name}.pkl"
    if model_path.exists() and estimator_path.exists():
        with open(estimator_path, "rb") as handle:  # written by this script
            return pickle.load(handle), onnx.load_model(model_path)
    estimator, model = build()
    cache.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, model_path)
    with open(estimator_path, "wb") as handle:
        pickle.dump(estimator, handle)
    return estimator, model


def plain_pairs(cache: Path) -> Iterator[Pair]:
    """Plain skl2onnx conversions, outputs as skl2onnx names them."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.svm import OneClassSVM

    from harness.cases.datasets import load_dataset, telemetry

    data = telemetry(n_train=1500, n_test=400, seed=3)
    dense = load_dataset("telemetry-dense")

    def convert(estimator: Any, X: np.ndarray, **options: Any) -> Callable[[], Any]:
        def build() -> tuple[Any, onnx.ModelProto]:
            fitted = estimator.fit(X)
            extra = {"options": options} if options else {}
            return fitted, to_onnx(fitted, X[:1], target_opset=SKL2ONNX_OPSET, **extra)

        return build

    forest = IsolationForest(n_estimators=100, random_state=0)
    specs: list[tuple[str, Callable[[], Any], np.ndarray, dict[str, str]]] = [
        ("skl2onnx-iforest", convert(forest, data.X_train), data.X_test, {}),
        (
            "skl2onnx-iforest-ss",
            convert(
                IsolationForest(n_estimators=100, random_state=0), data.X_train, score_samples=True
            ),
            data.X_test,
            {},
        ),
        ("skl2onnx-ocsvm", convert(OneClassSVM(nu=0.05), data.X_train), data.X_test, {}),
        (
            "skl2onnx-gmm",
            convert(GaussianMixture(4, random_state=0), dense.X_train, score_samples=True),
            dense.X_test,
            {},
        ),
        (
            "skl2onnx-lof",
            convert(LocalOutlierFactor(novelty=True), data.X_train),
            data.X_test,
            {},
        ),
    ]
    for name, build, rows, gaps in specs:
        if "iforest" in name:
            gaps = {"errors_match": NAN_ROUTING}
        estimator, model = _cached(cache, name, build)
        yield Pair(name, estimator, model, rows[:200], gaps)


def zoo_pairs(cache: Path, profile: str) -> Iterator[Pair]:
    """This project's export of every zoo case up to ``profile``, by each exporter."""
    from harness.cases.zoo import cases, exported, fitted

    for case in cases(profile):  # type: ignore[arg-type]
        for exporter in case.exporters:
            name = f"{case.name}[{exporter}]"

            def build(case_name: str = case.name, how: str = exporter) -> Any:
                return fitted(case_name), exported(case_name, how).model

            estimator, model = _cached(cache, name.replace("[", "-").replace("]", ""), build)
            gaps = {}
            if exporter == "skl2onnx" and "iforest" in case.name:
                gaps = {"errors_match": NAN_ROUTING}
            yield Pair(name, estimator, model, case.data().X_test[:200], gaps)


# -- the faults ------------------------------------------------------------------------------


def _const(value: float, elem: int, name: str) -> onnx.TensorProto:
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    out.update({v.name: v.type.tensor_type.elem_type for v in model.graph.output})
    out.update({v.name: v.type.tensor_type.elem_type for v in model.graph.input})
    out.update({t.name: t.data_type for t in model.graph.initializer})
    return out


def _rename_output(model: onnx.ModelProto, name: str, internal: str) -> None:
    for node in model.graph.node:
        node.output[:] = [internal if o == name else o for o in node.output]
        node.input[:] = [internal if i == name else i for i in node.input]


def shift_scores(pair: Pair) -> onnx.ModelProto | None:
    """Every score output + SHIFT."""
    model = onnx.ModelProto()
    model.CopyFrom(pair.model)
    shifted = 0
    for out in model.graph.output:
        if out.name.lower() not in SCORE_OUTPUTS:
            continue
        raw = f"{out.name}__unshifted"
        _rename_output(model, out.name, raw)
        const = _const(SHIFT, out.type.tensor_type.elem_type, f"{out.name}__shift")
        model.graph.initializer.append(const)
        model.graph.node.append(helper.make_node("Add", [raw, const.name], [out.name]))
        shifted += 1
    return model if shifted else None


_COMPARISONS = {"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Sign"}


def move_threshold(pair: Pair) -> onnx.ModelProto | None:
    """Labels flip at decision THRESHOLD instead of 0: the comparison nearest the label output
    sees its score minus THRESHOLD; a graph without a label output whose engine labels by the
    offset in its metadata (the torch autoencoder) gets that offset + THRESHOLD."""
    model = onnx.ModelProto()
    model.CopyFrom(pair.model)
    if type(pair.estimator).__name__.endswith("GaussianMixture"):
        return None  # a mixture's label is a component index: no threshold to move
    names = [o.name for o in model.graph.output]
    label = next((n for n in names if n.lower() in ("label", "labels")), None)
    if label is None:
        props = {p.key: p for p in model.metadata_props}
        if "offset" not in props:
            return None
        offset = float(json.loads(props["offset"].value)) + THRESHOLD
        props["offset"].value = json.dumps(offset)
        return model
    producers = {o: n for n in model.graph.node for o in n.output}
    constants = {t.name for t in model.graph.initializer}
    constants |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    frontier, seen = [label], set()
    while frontier:
        name = frontier.pop(0)
        node = producers.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in _COMPARISONS:
            position = next(i for i, x in enumerate(node.input) if x not in constants)
            score = node.input[position]
            elem = _elem_types(model).get(score, model.graph.input[0].type.tensor_type.elem_type)
            const = _const(THRESHOLD, elem, "moved_threshold")
            model.graph.initializer.append(const)
            moved = f"{score}__minus_threshold"
            index = list(model.graph.node).index(node)
            model.graph.node.insert(index, helper.make_node("Sub", [score, const.name], [moved]))
            node.input[position] = moved
            return model
        frontier.extend(node.input)
    return None


def swap_columns(pair: Pair) -> onnx.ModelProto | None:
    """The first two columns that vary on the rows arrive swapped (a Gather on the input)."""
    varying = [j for j in range(pair.rows.shape[1]) if np.ptp(pair.rows[:, j]) > 0]
    if len(varying) < 2:
        return None
    a, b = varying[:2]
    model = onnx.ModelProto()
    model.CopyFrom(pair.model)
    graph_input = model.graph.input[0]
    original = graph_input.name
    order = list(range(pair.rows.shape[1]))
    order[a], order[b] = b, a
    graph_input.name = f"{original}__as_given"
    perm = numpy_helper.from_array(np.array(order, dtype=np.int64), "swapped_columns")
    model.graph.initializer.append(perm)
    gather = helper.make_node("Gather", [graph_input.name, perm.name], [original], axis=1)
    model.graph.node.insert(0, gather)
    return model


@dataclasses.dataclass(frozen=True)
class Entry:
    """One parameter entry: an attribute of node ``node`` or (node None) an initializer."""

    node: int | None
    name: str
    index: int


_LEAF_ATTRIBUTES = {
    "TreeEnsemble": "leaf_weights",
    "TreeEnsembleRegressor": "target_weights",
    "SVMRegressor": "coefficients",
}


def _holder(model: onnx.ModelProto, node: int | None, name: str) -> tuple[Any, np.ndarray]:
    """Where an entry's values live in ``model`` and the values."""
    if node is None:
        tensor = next(t for t in model.graph.initializer if t.name == name)
        return tensor, numpy_helper.to_array(tensor)
    attr = next(a for a in model.graph.node[node].attribute if a.name == name)
    if attr.type == onnx.AttributeProto.TENSOR:
        return attr, numpy_helper.to_array(attr.t)
    return attr, np.array(attr.floats, dtype=np.float32)


def _reached(model: onnx.ModelProto, tensor: str, elem: int, rows: np.ndarray) -> np.ndarray:
    """The values an intermediate (integer) tensor takes on ``rows``."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(tensor, elem, None))
    session, name, dtype = _session(probe)
    return np.asarray(session.run([tensor], {name: rows.astype(dtype)})[0]).reshape(-1)


def _candidates(model: onnx.ModelProto, rows: np.ndarray, tries: int = 16) -> list[Entry]:
    """Entries a 'one perturbed parameter' fault may touch: the leaf of the first tree most
    rows reach (skl2onnx IsolationForest: its leaf -> depth and leaf -> size encoders), entries
    of tree leaves / SVM coefficients, the lookup-table row most rows gather (LOF's neighbour
    tables), and entries of the largest float initializer."""
    rng = np.random.default_rng(0)
    out: list[Entry] = []
    encoders = 0
    initializers = {t.name: t for t in model.graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
    has_encoders = any(n.op_type == "LabelEncoder" for n in model.graph.node)
    for i, node in enumerate(model.graph.node):
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "LabelEncoder" and "values_floats" in attrs and encoders < 2:
            encoders += 1
            by_int = "keys_int64s" in attrs
            elem = onnx.TensorProto.INT64 if by_int else onnx.TensorProto.FLOAT
            keys, counts = np.unique(_reached(model, node.input[0], elem, rows), return_counts=True)
            listed = (
                list(attrs["keys_int64s"].ints) if by_int else list(attrs["keys_floats"].floats)
            )
            out.append(Entry(i, "values_floats", listed.index(keys[np.argmax(counts)])))
        elif node.op_type in _LEAF_ATTRIBUTES and not has_encoders:
            name = _LEAF_ATTRIBUTES[node.op_type]
            if name not in attrs and f"{name}_as_tensor" in attrs:  # onnxmltools' LightGBM
                name = f"{name}_as_tensor"
            _, values = _holder(model, i, name)
            picks = rng.choice(values.size, size=min(tries, values.size), replace=False)
            out += [Entry(i, name, int(k)) for k in picks]
            break
        elif node.op_type == "Gather" and node.input[0] in initializers:
            table = initializers[node.input[0]]
            axis = int(attrs["axis"].i) if "axis" in attrs else 0
            if table.data_type not in floats or axis != 0 or len(table.dims) > 2:
                continue
            indices = _reached(model, node.input[1], onnx.TensorProto.INT64, rows)
            values, counts = np.unique(indices, return_counts=True)
            row = int(values[np.argmax(counts)])
            width = int(np.prod(table.dims[1:])) if len(table.dims) > 1 else 1
            out += [Entry(None, table.name, row * width + j) for j in range(width)]
    if not out:
        tables = [
            t for t in model.graph.initializer if t.data_type in floats and np.prod(t.dims) > 1
        ]
        if tables:
            biggest = max(tables, key=lambda t: int(np.prod(t.dims)))
            size = int(np.prod(biggest.dims))
            picks = rng.choice(size, size=min(tries, size), replace=False)
            out += [Entry(None, biggest.name, int(k)) for k in picks]
    return out


def _set(where: Any, values: np.ndarray) -> None:
    if isinstance(where, onnx.TensorProto):
        where.CopyFrom(numpy_helper.from_array(values, where.name))
    elif where.type == onnx.AttributeProto.TENSOR:
        where.t.CopyFrom(numpy_helper.from_array(values, where.t.name))
    else:
        where.floats[:] = values.tolist()


def _session(model: onnx.ModelProto) -> tuple[ort.InferenceSession, str, Any]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    return session, spec.name, np.float64 if spec.type == "tensor(double)" else np.float32


def _answers(model: onnx.ModelProto, rows: np.ndarray) -> np.ndarray:
    session, name, dtype = _session(model)
    wanted = [o.name for o in session.get_outputs() if o.name.lower() in SCORE_OUTPUTS]
    outs = session.run(wanted, {name: rows.astype(dtype)})
    return np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in outs])


_REACHED: dict[str, tuple[np.ndarray, float | None]] = {}


def _reached_rows(pair: Pair) -> tuple[np.ndarray, float | None]:
    """The test rows and the rows at the reference's decision boundary that ``harness check``
    searches, and how far above the label cut the nearest reached decision at or above it
    lies (None: no cut): a cut moved up by THRESHOLD flips only rows that near. Once per
    pair: the search costs as much as a check for a detector that scores row by row."""
    if pair.name not in _REACHED:
        _REACHED[pair.name] = _search_rows(pair)
    return _REACHED[pair.name]


def _search_rows(pair: Pair) -> tuple[np.ndarray, float | None]:
    rows = pair.rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SklearnEngine(pair.estimator)
        boundary = decision_boundary(ref, np.asarray(rows, dtype=np.float32))
        if boundary is not None and len(boundary):
            rows = np.concatenate([rows, boundary.astype(rows.dtype)])
        if boundary is None:
            return rows, None
        cut = ref.threshold if ref.convention == "pyod" else 0.0
        decision = np.asarray(ref.decision_function(rows.astype(np.float32)), dtype=np.float64)
    above = decision - float(cut or 0.0)  # a cut moved up by THRESHOLD flips rows in [0, it]
    above = above[above >= 0]
    return rows, float(above.min()) if len(above) else None


def _differing(pair: Pair, faulty: onnx.ModelProto, rows: np.ndarray) -> set[str]:
    """The outputs of the faulty graph that differ from the correct graph's on ``rows`` (the
    test rows and the rows at the decision boundary that ``harness check`` searches). None
    differ for a fault below the outputs' resolution (1e-4 added to float32 scores near 1e6,
    whose spacing is 0.06) or a label threshold moved where no reached decision lies (a step
    function that jumps over the cut): no check can or should tell those graphs apart."""
    answers = []
    for graph in (pair.model, faulty):
        session, name, dtype = _session(graph)
        names = [o.name for o in session.get_outputs()]
        outputs = session.run(names, {name: rows.astype(dtype)})
        answers.append(dict(zip(names, outputs, strict=True)))
    return {
        out
        for out in answers[0]
        if not np.array_equal(np.asarray(answers[0][out]), np.asarray(answers[1][out]), True)
    }


def _why_missed(pair: Pair, faulty: onnx.ModelProto) -> str:
    """``MISSED``, unless the fault is below what any float32 comparison can resolve: the
    outputs bit-identical on the test and boundary rows (``no effect``), or the labels
    identical and every score moved by at most SAFETY_FACTOR float32 eps of the score's size
    (``within float32 noise``: the derived bound tolerates that much by design, as correct
    graphs stray up to ~3 eps of it)."""
    rows, nearest = _reached_rows(pair)
    differing = _differing(pair, faulty, rows)
    if not differing:
        where = "" if nearest is None else f"; nearest decision above the cut: +{nearest:.2g}"
        return f"no effect (outputs bit-identical on test and boundary rows{where})"
    if any(out.lower() not in SCORE_OUTPUTS for out in differing):
        return "MISSED"  # a label moved: no float32 rounding does that
    correct, moved = _answers(pair.model, rows), _answers(faulty, rows)
    if correct.size == 0 or correct.shape != moved.shape:
        return "MISSED"
    with np.errstate(all="ignore"):
        finite = np.isfinite(correct) & np.isfinite(moved)
        size = np.maximum(np.abs(correct), np.median(np.abs(correct[finite])))
        eps_moved = np.abs(moved - correct)[finite] / (np.finfo(np.float32).eps * size[finite])
    worst = float(eps_moved.max()) if eps_moved.size else 0.0
    if worst <= SAFETY_FACTOR:
        return f"within float32 noise (scores moved by <= {worst:.2g} eps of their size)"
    return "MISSED"


def perturb_parameter(pair: Pair) -> onnx.ModelProto | None:
    """One entry of one parameter moved by PARAM_CHANGE (relative; of the RMS when it is 0):
    of the candidate entries, the one that changes the answers on the most rows (then most)."""
    candidates = _candidates(pair.model, pair.rows)
    if not candidates:
        return None
    base = _answers(pair.model, pair.rows)
    best: tuple[int, float, Entry] | None = None
    for entry in candidates:
        moved = np.abs(_answers(_perturbed(pair.model, entry), pair.rows) - base)
        score = (int((moved > 0).any(axis=0).sum()), float(np.nan_to_num(moved).max()))
        if best is None or score > best[:2]:
            best = (*score, entry)
    assert best is not None
    return _perturbed(pair.model, best[2])


def _perturbed(model: onnx.ModelProto, entry: Entry) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    where, values = _holder(copy, entry.node, entry.name)
    flat = values.reshape(-1).copy()
    k = entry.index
    scale = abs(float(flat[k])) or float(np.sqrt(np.mean(flat.astype(np.float64) ** 2))) or 1.0
    flat[k] = flat[k] + PARAM_CHANGE * scale
    _set(where, flat.reshape(values.shape))
    return copy


FAULT_MAKERS: dict[str, Callable[[Pair], onnx.ModelProto | None]] = {
    "shift": shift_scores,
    "param": perturb_parameter,
    "threshold": move_threshold,
    "swap": swap_columns,
}


# -- running ---------------------------------------------------------------------------------


def _failing(outcomes: list[CheckOutcome]) -> list[str]:
    return [o.check for o in outcomes if o.status in ("fail", "xpass")]


def verdict(fault: str, outcomes: list[CheckOutcome]) -> str:
    failing = _failing(outcomes)
    if fault == "correct":
        return "pass" if not failing else f"FALSE FAILURE ({', '.join(failing)})"
    return f"caught ({', '.join(failing)})" if failing else "MISSED"


def run_pair(pair: Pair, profile: str, faults: tuple[str, ...] = FAULTS) -> dict[str, Any]:
    """Check the correct graph and each faulty copy; verdicts, seconds and the outcomes."""
    result: dict[str, Any] = {"pair": pair.name, "cells": {}, "seconds": {}, "outcomes": {}}
    for fault in ("correct", *faults):
        try:
            model = pair.model if fault == "correct" else FAULT_MAKERS[fault](pair)
        except Exception as exc:  # a graph this script cannot plant the fault in
            result["cells"][fault] = f"not planted ({type(exc).__name__}: {exc})"
            continue
        if model is None:
            result["cells"][fault] = "n/a"
            continue
        start = time.perf_counter()
        try:
            outcomes = check_pair(
                model, pair.estimator, data=pair.rows, profile=profile, known_gaps=pair.known_gaps
            )
        except CheckSetupError as exc:
            result["cells"][fault] = f"setup error ({exc})"
            continue
        result["seconds"][fault] = time.perf_counter() - start
        result["cells"][fault] = verdict(fault, outcomes)
        if result["cells"][fault] == "MISSED":
            result["cells"][fault] = _why_missed(pair, model)
        result["outcomes"][fault] = [o.as_dict() for o in outcomes]
    return result


def table(results: list[dict[str, Any]]) -> str:
    columns = ("correct", *FAULTS)
    lines = [
        "| model | " + " | ".join(columns) + " | seconds (correct) |",
        "|---|" + "---|" * len(columns) + "---|",
    ]
    for r in results:
        cells = [r["cells"].get(c, "-") for c in columns]
        seconds = r["seconds"].get("correct", float("nan"))
        lines.append(f"| {r['pair']} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    tally = {"false failures": 0, "caught": 0, "missed": 0, "n/a": 0, "no effect": 0}
    tally["within float32 noise"] = 0
    for r in results:
        for c in columns:
            cell = r["cells"].get(c, "")
            tally["false failures"] += cell.startswith("FALSE")
            tally["caught"] += cell.startswith("caught")
            tally["missed"] += cell == "MISSED"
            tally["n/a"] += cell == "n/a"
            tally["no effect"] += cell.startswith("no effect")
            tally["within float32 noise"] += cell.startswith("within float32 noise")
    lines += ["", ", ".join(f"{v} {k}" for k, v in tally.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", choices=["dev", "ci", "nightly"])
    parser.add_argument("--zoo", default="regular", choices=["none", "fast", "regular", "large"])
    parser.add_argument("--only", nargs="*", default=None, help="pair names (globs) to run")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain skl2onnx pairs")
    parser.add_argument("--faults", nargs="*", default=list(FAULTS), choices=FAULTS)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "conformance_power"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--random",
        action="store_true",
        help="ci's example count with random (not derandomized) inputs: rerun to see how often "
        "a fault is caught",
    )
    args = parser.parse_args(argv)
    if args.random:
        PROFILES["ci-random"] = {**PROFILES["ci"], "derandomize": False}
        args.profile = "ci-random"
    pairs: list[Iterator[Pair]] = []
    if not args.no_plain:
        pairs.append(plain_pairs(args.cache))
    if args.zoo != "none":
        pairs.append(zoo_pairs(args.cache, args.zoo))
    results = []
    for group in pairs:
        for pair in group:
            if args.only and not any(fnmatch.fnmatchcase(pair.name, p) for p in args.only):
                continue
            result = run_pair(pair, args.profile, tuple(args.faults))
            print(f"{pair.name}: {result['cells']}", flush=True)
            results.append(result)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
