"""Makes the ONNX models that `scorer/tests/onnx.rs` loads, with onnxruntime's own outputs.

Trains scikit-learn models on AI4I 2020 (tests/data/ai4i2020.csv), converts them with skl2onnx,
runs probe rows through onnxruntime (Python) and writes, into the output folder:

- `<name>.onnx` for each model;
- `<name>.json`: the probe rows (`inputs`, `null` for a missing value) and onnxruntime's outputs
  (`variable` for regressors, `label` and `probabilities` for classifiers), plus the features the
  test binds to the model;
- `manifest.json`: the model names, onnxruntime's version and its shared library's path, which the
  Rust test loads through `ort`.

Models that refit must accept: `logistic` (StandardScaler + LogisticRegression, binary, int64
labels), `forest` (RandomForestClassifier, 3 classes with string labels), `boosting`
(GradientBoostingRegressor) and `linear_double` (LinearRegression with a float64 input). Models that
refit must reject, each for one reason: `zipmap` (classifier outputs left as ZipMap),
`narrow` (trained on one feature fewer than the test binds), `int_input` (an int64 input tensor),
`two_inputs` (two input tensors) and `two_targets` (a regressor with two outputs per row).

Deterministic: fixed seeds, first rows for training, fixed probe rows.

    .venv/bin/python scorer/tests/onnx/make_models.py OUT_DIR
"""

import csv
import glob
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "ai4i2020.csv")

# AI4I column -> the feature name refit binds.
COLUMNS = {
    "Air temperature [K]": "air_temperature",
    "Process temperature [K]": "process_temperature",
    "Rotational speed [rpm]": "rotational_speed",
    "Torque [Nm]": "torque",
    "Tool wear [min]": "tool_wear",
}
FEATURES = list(COLUMNS.values())
TRAIN_ROWS = 8000
PROBE_ROWS = 200
PROBE_FAILURES = 50


def read_ai4i():
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in COLUMNS] for r in rows], dtype=np.float32)
    failure = np.array([int(r["Machine failure"]) for r in rows], dtype=np.int64)
    kind = np.array([r["Type"] for r in rows])
    return x, failure, kind


def probes(x, failure):
    """Held-out rows and the held-out failures (rare in AI4I, so that both classes show up), one
    row with a missing value, one out of the training range."""
    held_out = np.arange(TRAIN_ROWS, len(x))
    failures = held_out[failure[held_out] == 1][:PROBE_FAILURES]
    p = np.concatenate([x[TRAIN_ROWS : TRAIN_ROWS + PROBE_ROWS - len(failures)], x[failures]])
    p[3, 1] = np.nan
    p[4] = p[4] * np.float32(1.5)
    return p


def as_json(values):
    """Plain floats, `null` for NaN (JSON has no NaN)."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, list):
        return [as_json(v) for v in values]
    if isinstance(values, float) and math.isnan(values):
        return None
    return values


def save(out, name, model_proto, features, inputs, outputs=True):
    path = os.path.join(out, name + ".onnx")
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    case = {"name": name, "features": features}
    if outputs:
        # One thread, as refit runs it: tree ensembles sum in a different order across threads,
        # which moves float32 results by an ulp.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        input_type = session.get_inputs()[0].type
        feed = inputs.astype(np.float64 if input_type == "tensor(double)" else np.float32)
        names = [o.name for o in session.get_outputs()]
        results = dict(zip(names, session.run(None, {input_name: feed})))
        case["inputs"] = as_json(feed.astype(np.float64))
        if "variable" in results:
            case["variable"] = as_json(results["variable"].reshape(-1).astype(np.float64))
        if "label" in results:
            case["label"] = [v if isinstance(v, str) else int(v) for v in results["label"].tolist()]
            case["probabilities"] = as_json(results["probabilities"].astype(np.float64))
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(case, f, allow_nan=False)
    return name


def main(out):
    os.makedirs(out, exist_ok=True)
    x, failure, kind = read_ai4i()
    train, probe = x[:TRAIN_ROWS], probes(x, failure)
    no_zipmap = {"zipmap": False}
    made = []

    # (a) scaled logistic regression, binary: machine failure from all five readings.
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
    logistic.fit(train, failure[:TRAIN_ROWS])
    proto = to_onnx(logistic, train[:1], options=no_zipmap, target_opset=17)
    made.append(save(out, "logistic", proto, FEATURES, probe))

    # (b) random forest, 3 classes with string labels: product type (L/M/H) from the readings.
    forest = RandomForestClassifier(n_estimators=30, max_depth=8, class_weight="balanced", random_state=7)
    forest.fit(train, kind[:TRAIN_ROWS])
    proto = to_onnx(forest, train[:1], options=no_zipmap, target_opset=17)
    made.append(save(out, "forest", proto, FEATURES, probe))

    # (c) gradient boosting regressor: torque from the other four readings.
    others = [0, 1, 2, 4]
    boosting = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=7)
    boosting.fit(train[:, others], x[:TRAIN_ROWS, 3])
    proto = to_onnx(boosting, train[:1, others], target_opset=17)
    made.append(save(out, "boosting", proto, [FEATURES[i] for i in others], probe[:, others]))

    # A float64 input: linear regression of torque, converted with a double tensor type.
    linear = LinearRegression().fit(train[:, others].astype(np.float64), x[:TRAIN_ROWS, 3].astype(np.float64))
    proto = to_onnx(linear, initial_types=[("X", DoubleTensorType([None, 4]))], target_opset=17)
    made.append(save(out, "linear_double", proto, [FEATURES[i] for i in others], probe[:, others]))

    # Rejected: ZipMap outputs (a sequence of maps per row).
    proto = to_onnx(logistic, train[:1], target_opset=17)
    made.append(save(out, "zipmap", proto, FEATURES, probe, outputs=False))

    # Rejected: four input columns, while the test binds five features.
    narrow = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    narrow.fit(train[:, :4], failure[:TRAIN_ROWS])
    proto = to_onnx(narrow, train[:1, :4], options=no_zipmap, target_opset=17)
    made.append(save(out, "narrow", proto, FEATURES, probe, outputs=False))

    # Rejected: an int64 input tensor.
    proto = to_onnx(linear, initial_types=[("X", Int64TensorType([None, 4]))], target_opset=17)
    made.append(save(out, "int_input", proto, [FEATURES[i] for i in others], probe, outputs=False))

    # Rejected: two input tensors.
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["variable"])],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2]),
        ],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    made.append(save(out, "two_inputs", proto, FEATURES[:4], probe, outputs=False))

    # Rejected: two regression targets per row (variable is [N, 2]).
    twice = LinearRegression().fit(train[:, others], x[:TRAIN_ROWS][:, [3, 3]])
    proto = to_onnx(twice, train[:1, others], target_opset=17)
    made.append(save(out, "two_targets", proto, [FEATURES[i] for i in others], probe, outputs=False))

    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    libraries = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so*")) + glob.glob(os.path.join(capi, "*onnxruntime*.dylib")))
    manifest = {
        "onnxruntime_version": ort.__version__,
        "library": libraries[0] if libraries else None,
        "models": made,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_models.py OUT_DIR")
    main(sys.argv[1])
