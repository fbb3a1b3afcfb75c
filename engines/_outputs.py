"""What a detector graph's outputs mean: roles, refusals of graphs that are not detectors.

The ONNX engine reads a graph once at load: which output answers ``predict``,
``decision_function`` and ``score_samples`` (and how), which outputs answer nothing, and
whether the graph is an anomaly detector at all. A classifier, a clusterer, a regressor or a
transformer is refused with UnsupportedModelError saying what was found.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import onnx
from onnx import external_data_helper

from engines.base import METHODS
from engines.errors import UnsupportedModelError
from engines.metadata import CONVENTIONS, LABEL_CONVENTION_KEY, SCORE_KIND_KEY

__all__ = [
    "SCORE_KINDS",
    "GraphOutput",
    "finite_offset",
    "label_reader",
    "plan_for",
    "pyod_plan_for",
    "read_graph",
    "rows_of",
]

# Output names mapped to what they mean, for every exporter this project knows.
_SCORE_NAMES = {
    "decision_function": "decision_function",
    "scores": "decision_function",  # skl2onnx: decision_function for IsolationForest/OCSVM/LOF
    "score_samples": "score_samples",
    "reconstruction_error": "reconstruction_error",
}
#: What a score output can mean (metadata ``score_kind`` or the ``score_kind`` argument).
SCORE_KINDS: tuple[str, ...] = ("decision_function", "score_samples", "reconstruction_error")
_LABEL_NAMES = frozenset({"label", "labels"})
_PROBABILITY_NAMES = frozenset({"probabilities", "probability", "output_probability"})
# ai.onnx.ml operators only a classifier uses (ZipMap turns class probabilities into maps).
_CLASSIFIER_OPS = frozenset(
    {"LinearClassifier", "SVMClassifier", "TreeEnsembleClassifier", "ZipMap"}
)
# Operators that keep values as they are on the way from a label's origin to the output.
_PASS_THROUGH = frozenset({"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})
# A label made by these is a class or cluster index, never an anomaly label.
_INDEX_OPS = frozenset({"ArgMax", "ArgMin"})
# Converters of scikit-learn models (producer_name): their detectors name outputs label/scores.
_SKLEARN_CONVERTERS = frozenset({"skl2onnx", "OnnxMLTools"})
_FLOAT_TYPES = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)"})
_LABEL_TYPES = _FLOAT_TYPES | {f"tensor({t})" for t in ("int8", "int16", "int32", "int64")}
_ASSUMED = "assumed: the only output is an anomaly score, higher = more abnormal"
_DETECTOR_ADVICE = (
    "Serve an outlier detector (IsolationForest, OneClassSVM, LocalOutlierFactor(novelty=True), "
    "a GaussianMixture's score_samples, an autoencoder's per-row error)."
)
_Transform = Any  # Callable[[ndarray], ndarray]; kept loose so lambdas stay cheap to call
_Plan = tuple[str, _Transform] | None


@dataclasses.dataclass(frozen=True, slots=True)
class GraphOutput:
    """A graph output as onnxruntime declares it."""

    name: str
    type: str  # "tensor(float)", "seq(map(int64,tensor(float)))", ...
    shape: tuple[int | str | None, ...]  # () when unknown

    @classmethod
    def of(cls, arg: Any) -> GraphOutput:
        return cls(str(arg.name), str(arg.type), tuple(arg.shape or ()))

    @property
    def per_row(self) -> bool | None:
        """True: one value per row ([N] or [N, 1]); False: several; None: unknown until run."""
        if len(self.shape) <= 1:
            return True if self.shape else None
        rest = self.shape[1:]
        if any(isinstance(d, int) and d != 1 for d in rest):
            return False
        return True if all(d == 1 for d in rest) else None

    @property
    def dims(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def __str__(self) -> str:
        return f"{self.name} {self.type} {self.dims}" if self.shape else f"{self.name} {self.type}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Reading:
    """What a graph's outputs mean."""

    roles: dict[str, str]  # role -> output name
    role_source: str  # "names", "score_kind argument", "score_kind metadata" or _ASSUMED
    ignored: dict[str, str]  # output name -> why it answers nothing
    sign_label: bool  # the label comes from Sign (skl2onnx OneClassSVM): 0 at decision 0
    label_proven: bool  # the graph can only give its convention's labels: no check at run time
    convention: str = "sklearn"  # LABEL_CONVENTION_KEY: "sklearn" (-1/1) or "pyod" (0/1)


def read_graph(
    proto: onnx.ModelProto,
    outputs: Sequence[GraphOutput],
    metadata: dict[str, Any],
    score_kind: str | None,
    name: str,
) -> _Reading:
    """Map outputs to roles; refuse graphs that are not anomaly detectors, saying what they are."""
    listing = "; ".join(str(o) for o in outputs)

    def refuse(reason: str, advice: str) -> NoReturn:
        raise UnsupportedModelError(
            f"{name} is not an anomaly detector this engine can serve: {reason} "
            f"(outputs: {listing}). {advice}"
        )

    convention = metadata.get(LABEL_CONVENTION_KEY, "sklearn")
    if convention not in CONVENTIONS:
        refuse(
            f"its metadata says {LABEL_CONVENTION_KEY}={convention!r}",
            f"Engines serve the conventions {list(CONVENTIONS)}: scikit-learn's (label -1 "
            "anomaly / 1 normal, scores higher = more normal) and PyOD's (label 1 outlier / 0 "
            "inlier, decision_function higher = more abnormal); re-export in one of them.",
        )
    pyod = convention == "pyod"
    classifier_ops = sorted(
        op for domain, op in _op_types(proto) if op in _CLASSIFIER_OPS and domain == "ai.onnx.ml"
    )
    if classifier_ops:
        refuse(f"it is a classifier (ops {classifier_ops})", _DETECTOR_ADVICE)
    for out in outputs:
        if not out.type.startswith("tensor("):
            refuse(
                f"output {out.name!r} is {out.type}, not a tensor (a classifier's ZipMap "
                "probabilities, for example)",
                _DETECTOR_ADVICE,
            )
    by_name = {o.name: o for o in outputs}
    roles: dict[str, str] = {}
    for out in outputs:
        lowered = out.name.lower()
        if lowered in _LABEL_NAMES:
            roles.setdefault("label", out.name)
        elif lowered in _SCORE_NAMES:
            roles.setdefault(_SCORE_NAMES[lowered], out.name)
    source = "names"
    kind = score_kind if score_kind is not None else metadata.get(SCORE_KIND_KEY)
    scored = [o.name for o in outputs if o.name.lower() not in _LABEL_NAMES | _PROBABILITY_NAMES]
    if kind in SCORE_KINDS and len(scored) == 1:
        roles = {r: n for r, n in roles.items() if n != scored[0]}
        roles[str(kind)] = scored[0]
        source = "score_kind argument" if score_kind is not None else "score_kind metadata"
    elif score_kind is not None:
        raise UnsupportedModelError(
            f"score_kind={score_kind!r} names the meaning of a graph's one score output; "
            f"{name} has {len(scored)} ({listing})"
        )
    if not roles and len(outputs) == 1 and outputs[0].type in _FLOAT_TYPES:
        only = outputs[0]
        if proto.producer_name in _SKLEARN_CONVERTERS:
            refuse(
                f"its only output {only.name!r} comes from {proto.producer_name}, which names "
                "a detector's outputs label and scores: this is a regressor or a transformer",
                "If the output is an anomaly score, say what it means with score_kind= "
                f"(one of {SCORE_KINDS}) or the model's score_kind metadata.",
            )
        roles["reconstruction_error"] = only.name  # (N, d) outputs are refused just below
        source = _ASSUMED
    ignored: dict[str, str] = {}
    for out in outputs:
        if out.name.lower() in _PROBABILITY_NAMES:
            ignored[out.name] = "one probability per class or component"
    sign_label = label_proven = False
    if "label" in roles:
        label = by_name[roles["label"]]
        origin = _origin(proto.graph, label.name)
        if origin in _INDEX_OPS or ignored:
            why = f"from {origin}" if origin in _INDEX_OPS else f"beside {next(iter(ignored))}"
            ignored[label.name] = f"a class or cluster index ({why}), not an anomaly label"
            del roles["label"]
        elif label.type not in _LABEL_TYPES:
            refuse(f"label output {label.name!r} is {label.type}, not -1/1", _DETECTOR_ADVICE)
        elif pyod:  # PyOD's labels: 1 outlier, 0 inlier
            values = _values(proto.graph, label.name)
            if values is not None and not values <= {0.0, 1.0}:
                refuse(
                    f"label output {label.name!r} can only be {sorted(values)}, not PyOD's 0 "
                    f"(inlier) / 1 (outlier) that its {LABEL_CONVENTION_KEY}='pyod' promises",
                    "Export labels as 0/1, or drop the label output.",
                )
            label_proven = values is not None
        else:
            sign_label = origin == "Sign"
            values = _values(proto.graph, label.name)
            allowed = {-1.0, 0.0, 1.0} if sign_label else {-1.0, 1.0}
            if values is not None and not values <= allowed:
                refuse(
                    f"label output {label.name!r} can only be {sorted(values)}, not "
                    "scikit-learn's -1 (anomaly) / 1 (normal) (a classifier's classes, or PyOD's "
                    "0/1 with 1 = outlier, are not served)",
                    "Export labels as -1/1, or drop the label output so predict comes from "
                    "decision_function.",
                )
            label_proven = values is not None
    for out_name in roles.values():
        out = by_name[out_name]
        if out.per_row is False:
            if ignored:
                refuse(
                    f"a clusterer or classifier: {_listing(ignored)}, and {out.name!r} has "
                    f"shape {out.dims}, several values per row (KMeans: one distance "
                    "per cluster)",
                    _DETECTOR_ADVICE,
                )
            refuse(
                f"output {out.name!r} has shape {out.dims}, several values per row (a "
                "transformer, or an autoencoder's reconstruction)",
                "An anomaly detector answers one value per row: export the per-row score, e.g. "
                "an autoencoder's ((x - model(x)) ** 2).mean(dim=1) named reconstruction_error.",
            )
    if not roles and ignored:
        refuse(
            f"a classifier or clusterer: {_listing(ignored)}",
            "A GaussianMixture is served through its score_samples: export it with skl2onnx "
            "options={GaussianMixture: {'score_samples': True}} (or engines.export), which "
            "adds a score_samples output.",
        )
    if pyod and set(roles) - {"label", "decision_function"}:
        extra = sorted(set(roles) - {"label", "decision_function"})
        refuse(
            f"its metadata says {LABEL_CONVENTION_KEY}='pyod' but it has {extra} output(s)",
            "A PyOD-convention graph answers label (0/1) and decision_function (higher = more "
            "abnormal) only: PyOD has no score_samples.",
        )
    if not roles:
        refuse(
            f"no output answers {METHODS}",
            "Name outputs label (-1/1), decision_function or scores, score_samples, or "
            "reconstruction_error; for a graph with one score output, pass score_kind= or set "
            "the model's score_kind metadata.",
        )
    return _Reading(roles, source, ignored, sign_label, label_proven, str(convention))


def finite_offset(offset: Any) -> float:
    """A scalar offset; a 1-element array (OneClassSVM's ``offset_``) is one too."""
    value = np.asarray(offset)
    if value.size != 1 or value.dtype.kind not in "iuf" or not math.isfinite(float(value.flat[0])):
        raise ValueError(f"offset must be a finite number or None, got {offset!r}")
    return float(value.flat[0])


def _listing(ignored: dict[str, str]) -> str:
    return ", ".join(f"{name!r} is {why}" for name, why in ignored.items())


def _op_types(proto: onnx.ModelProto) -> set[tuple[str, str]]:
    """(domain, op_type) of every node, in subgraphs and model functions too."""
    found: set[tuple[str, str]] = set()
    graphs: list[Any] = [proto.graph, *proto.functions]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            found.add((node.domain or "ai.onnx", node.op_type))
            for attr in node.attribute:
                graphs.extend([attr.g] if attr.HasField("g") else [])
                graphs.extend(attr.graphs)
    return found


def _origin(graph: onnx.GraphProto, output: str) -> str | None:
    """The op that makes ``output``, looking through casts and reshapes (None: no producer)."""
    producers = {o: node for node in graph.node for o in node.output}
    name = output
    for _ in range(16):
        node = producers.get(name)
        if node is None or not node.input:
            return None if node is None else str(node.op_type)
        if node.op_type not in _PASS_THROUGH:
            return str(node.op_type)
        name = node.input[0]
    return None


def rows_of(result: npt.NDArray[Any], n_rows: int, output: str, model: str) -> npt.NDArray[Any]:
    """``result`` as one value per row; refuse any other length (never answer a wrong one)."""
    flat = result.reshape(-1) if result.ndim != 1 else result
    if flat.shape[0] != n_rows:
        raise UnsupportedModelError(
            f"{model} output {output!r} gave shape {result.shape} for {n_rows} input row(s): an "
            "anomaly detector answers one value per row"
        )
    return flat


def label_reader(
    output: str, sign: bool, proven: bool, model: str, convention: str = "sklearn"
) -> Callable[[npt.NDArray[Any]], Any]:
    """Labels in scikit-learn's -1/1 (a Sign label's 0 is -1, as in libsvm), or PyOD's 0/1
    under ``convention="pyod"``; checked unless the graph was proven to give nothing else."""

    def same(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return labels

    def read_pyod(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if ((labels == 0) | (labels == 1)).all():
            return labels
        found = np.unique(labels[(labels != 0) & (labels != 1)])[:5].tolist()
        raise UnsupportedModelError(
            f"{model} label output {output!r} gave {found}, outside PyOD's 0 (inlier) / 1 "
            "(outlier) that its label_convention 'pyod' promises"
        )

    if convention == "pyod":
        return same if proven else read_pyod

    def read(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if sign:  # libsvm's one-class rule: 1 only where the decision is > 0
            labels = np.where(labels == 0, labels.dtype.type(-1), labels)
        if proven:
            return labels
        if labels.shape[0] <= 16:
            if all(v == 1 or v == -1 for v in labels.tolist()):
                return labels
        elif (np.abs(labels) == 1).all():
            return labels
        found = np.unique(labels[(labels != 1) & (labels != -1)])[:5].tolist()
        raise UnsupportedModelError(
            f"{model} label output {output!r} gave {found}, outside scikit-learn's -1 (anomaly) "
            "/ 1 (normal): it is not read as an anomaly label (a classifier's classes, or "
            "PyOD's 0/1 with 1 = outlier, are not served). Export labels as -1/1, or drop the "
            "label output so predict comes from decision_function"
        )

    return same if proven and not sign else read


_BOOLEAN_OPS = frozenset(
    {"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "Not", "And", "Or", "Xor"}
)
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
}


def _values(graph: onnx.GraphProto, output: str) -> frozenset[float] | None:
    """Every value ``output`` can take, when the graph makes it from comparisons, Sign, Where
    and small constants (this project's and skl2onnx's labels); None when it cannot tell."""
    producers = {o: node for node in graph.node for o in node.output}
    constants = {t.name: t for t in graph.initializer}

    def small(tensor: onnx.TensorProto) -> frozenset[float] | None:
        if math.prod(tensor.dims) > 16 or external_data_helper.uses_external_data(tensor):
            return None
        array = onnx.numpy_helper.to_array(tensor)
        if array.dtype.kind not in "biuf":
            return None
        return frozenset(float(v) for v in array.ravel().tolist())

    def of(name: str, depth: int) -> frozenset[float] | None:
        if name in constants:
            return small(constants[name])
        node = producers.get(name)
        if node is None or depth > 32 or node.domain not in ("", "ai.onnx"):
            return None
        op = node.op_type
        if op == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return None if attr is None else small(attr.t)
        if op in _BOOLEAN_OPS:
            return frozenset({0.0, 1.0})
        if op == "Sign":
            return frozenset({-1.0, 0.0, 1.0})
        if op == "Where":
            a, b = of(node.input[1], depth + 1), of(node.input[2], depth + 1)
            return None if a is None or b is None else a | b
        if op in _ARITHMETIC:
            a, b = of(node.input[0], depth + 1), of(node.input[1], depth + 1)
            if a is None or b is None or len(a) * len(b) > 256:
                return None
            return frozenset(_ARITHMETIC[op](x, y) for x in a for y in b)
        if op == "Neg":
            a = of(node.input[0], depth + 1)
            return None if a is None else frozenset(-x for x in a)
        if op == "Cast":
            a = of(node.input[0], depth + 1)
            to = next((x.i for x in node.attribute if x.name == "to"), None)
            if a is None or to is None or not all(math.isfinite(x) for x in a):
                return None
            if to == onnx.TensorProto.BOOL:
                return frozenset(float(x != 0) for x in a)
            is_int = onnx.helper.tensor_dtype_to_np_dtype(to).kind in "iu"
            return frozenset(float(math.trunc(x)) for x in a) if is_int else a
        if op in _PASS_THROUGH:
            return of(node.input[0], depth + 1)
        return None

    return of(output, 0)


def pyod_plan_for(
    method: str, roles: dict[str, str], threshold: float | None, labels: _Transform
) -> _Plan:
    """Under the "pyod" convention: label (or decision > threshold) and decision_function;
    never score_samples."""
    if method == "predict" and "label" in roles:
        return roles["label"], labels
    if method == "predict" and "decision_function" in roles and threshold is not None:
        cut = threshold
        return roles["decision_function"], lambda a: (a > cut).astype(np.int64)
    if method == "decision_function" and "decision_function" in roles:
        return roles["decision_function"], lambda a: a
    return None


def plan_for(method: str, roles: dict[str, str], offset: float | None, labels: _Transform) -> _Plan:
    """Which output answers ``method`` and how to turn it into the answer."""

    def same(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a

    if method == "predict" and "label" in roles:
        return roles["label"], labels
    decision = plan_for("decision_function", roles, offset, labels) if method == "predict" else None
    if method == "predict" and decision is not None:
        name, to_decision = decision
        return name, lambda a: np.where(to_decision(a) < 0, -1, 1).astype(np.int64)
    if method == "score_samples":
        if "score_samples" in roles:
            return roles["score_samples"], same
        if "reconstruction_error" in roles:
            return roles["reconstruction_error"], np.negative
        if "decision_function" in roles and offset is not None:
            return roles["decision_function"], lambda a: a + a.dtype.type(offset)
    if method == "decision_function":
        if "decision_function" in roles:
            return roles["decision_function"], same
        score = plan_for("score_samples", roles, offset, labels)
        if score is not None and offset is not None:
            name, to_score = score
            return name, lambda a: to_score(a) - a.dtype.type(offset)
    return None
