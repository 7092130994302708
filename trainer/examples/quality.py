"""scikit-learn's side of the training-quality comparison, and the side-by-side table.

`scripts/quality` runs this twice:

    quality.py run SKLEARN.json [--dataset NAME] [--only ALGORITHM] [--seeds N] [--timing-only]
        Fits every case of trainer/examples/quality.rs with scikit-learn on the same split and
        the same encoding (StandardScaler on the numbers, OneHotEncoder on AI4I's Type, Type's
        columns first as refit's encoder puts them), single-threaded (n_jobs=1), and writes the
        metrics per seed, seed 0's test predictions and the fit times (encoder + fit, three
        timed runs of seed 0).

    quality.py table --refit REFIT.json --sklearn SKLEARN.json [--refit-2-threads R2.json]
                     [--markdown TABLE.md] [--load TEXT]
        Prints both side by side with the tolerances of the trainer issue (0.01 for accuracy,
        F1, ROC AUC and R²; 2 % of scikit-learn's RMSE; refit's fit time no slower) and a
        verdict line (exit status 1 when it fails); with --markdown, also writes the table for
        BENCHMARKS.md.

Decision trees, random forests and gradient boosting are fitted with the same seeds on both
sides (25 on AI4I, 5 on C-MAPSS) and judged on the means: the two libraries draw different
random streams (bootstrap samples, feature draws, and the feature order that breaks ties between
equally good splits), so single seeds differ by chance, not by algorithm. The linear models and
naive Bayes are deterministic.
"""

import argparse
import csv
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"
SEEDS = {"ai4i": 25, "cmapss_fd001": 5}  # per data set, as quality.rs
TIMED_RUNS = 3
HOLDOUT_FRACTION = 0.5

# ----- data ---------------------------------------------------------------------------------


class Problem:
    """One data set, split: `categorical` (AI4I's Type, or None), `numeric` and `y` per side."""

    def __init__(self, name, task, train, test):
        self.name, self.task = name, task
        self.categorical_train, self.numeric_train, self.y_train = train
        self.categorical_test, self.numeric_test, self.y_test = test


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def ai4i():
    """AI4I 2020 in UDI order, the later half held out (as refit's time-ordered holdout)."""
    header, rows = read_csv(DATA / "ai4i2020.csv")
    at = {name: i for i, name in enumerate(header)}
    rows.sort(key=lambda r: int(r[at["UDI"]]))
    sensors = [
        "Air temperature [K]",
        "Process temperature [K]",
        "Rotational speed [rpm]",
        "Torque [Nm]",
        "Tool wear [min]",
    ]
    kind = np.array([[r[at["Type"]]] for r in rows], dtype=object)
    numeric = np.array([[float(r[at[s]]) for s in sensors] for r in rows])
    y = np.array([int(float(r[at["Machine failure"]])) for r in rows])
    n_test = round(len(rows) * HOLDOUT_FRACTION)
    cut = len(rows) - n_test
    train = (kind[:cut], numeric[:cut], y[:cut])
    test = (kind[cut:], numeric[cut:], y[cut:])
    return Problem("ai4i", "binary", train, test)


def cmapss_fd001():
    """FD001: all of train_FD001 in file order; each test unit's last cycle against the RUL
    file."""
    features = [f"setting_{i}" for i in range(1, 4)] + [f"sensor_{i:02d}" for i in range(1, 22)]
    header, rows = read_csv(DATA / "train_FD001.csv")
    at = {name: i for i, name in enumerate(header)}
    x_train = np.array([[float(r[at[f]]) for f in features] for r in rows])
    y_train = np.array([float(r[at["rul"]]) for r in rows])

    header, rows = read_csv(DATA / "test_FD001.csv")
    at = {name: i for i, name in enumerate(header)}
    last = {}
    for r in rows:
        unit, cycle = int(r[at["unit"]]), float(r[at["cycle"]])
        if unit not in last or cycle > last[unit][0]:
            last[unit] = (cycle, r)
    truth = [float(v) for v in (DATA / "RUL_FD001.txt").read_text().split()]
    assert len(truth) == len(last), (len(truth), len(last))
    units = sorted(last)
    x_test = np.array([[float(last[u][1][at[f]]) for f in features] for u in units])
    y_test = np.array([truth[u - 1] for u in units])
    return Problem("cmapss_fd001", "regression", (None, x_train, y_train), (None, x_test, y_test))


def encode(problem):
    """Fits the encoder on the training rows; returns the encoded train and test matrices."""
    scaler = StandardScaler().fit(problem.numeric_train)
    parts_train = [scaler.transform(problem.numeric_train)]
    parts_test = [scaler.transform(problem.numeric_test)]
    if problem.categorical_train is not None:
        onehot = OneHotEncoder(sparse_output=False, handle_unknown="ignore")
        onehot.fit(problem.categorical_train)
        parts_train.insert(0, onehot.transform(problem.categorical_train))
        parts_test.insert(0, onehot.transform(problem.categorical_test))
    return np.hstack(parts_train), np.hstack(parts_test), scaler


# ----- cases --------------------------------------------------------------------------------

# What the seed changes, and so which result the table judges (as quality.rs's Randomness):
NONE = "none"  # nothing: seed 0 only
JUDGED = "judged"  # bootstrap samples, feature draws, tie-breaks: every seed, judged on the mean

# (dataset, algorithm) → (scikit-learn's hyperparameters as shown, estimator of a seed, randomness)
CASES = {
    ("ai4i", "logistic_regression"): (
        "C=1 (=1/alpha), lbfgs, max_iter=1000",
        lambda seed: LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000),
        NONE,
    ),
    ("ai4i", "gaussian_nb"): ("var_smoothing=1e-9", lambda seed: GaussianNB(), NONE),
    ("ai4i", "decision_tree"): (
        "max_depth=8",
        lambda seed: DecisionTreeClassifier(max_depth=8, random_state=seed),
        JUDGED,
    ),
    ("ai4i", "random_forest"): (
        "n_estimators=100",
        lambda seed: RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
        JUDGED,
    ),
    ("ai4i", "gradient_boosting"): (
        "n_estimators=100",
        lambda seed: GradientBoostingClassifier(n_estimators=100, random_state=seed),
        JUDGED,
    ),
    ("cmapss_fd001", "linear_regression"): ("", lambda seed: LinearRegression(), NONE),
    ("cmapss_fd001", "elastic_net"): (
        "alpha=0.1, l1_ratio=0.5",
        lambda seed: ElasticNet(alpha=0.1, l1_ratio=0.5),
        NONE,
    ),
    ("cmapss_fd001", "decision_tree"): (
        "max_depth=8",
        lambda seed: DecisionTreeRegressor(max_depth=8, random_state=seed),
        JUDGED,
    ),
    ("cmapss_fd001", "random_forest"): (
        "n_estimators=100",
        lambda seed: RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1),
        JUDGED,
    ),
    ("cmapss_fd001", "gradient_boosting"): (
        "n_estimators=100",
        lambda seed: GradientBoostingRegressor(n_estimators=100, random_state=seed),
        JUDGED,
    ),
}


def fit_once(problem, make, seed):
    start = time.perf_counter()
    x_train, x_test, scaler = encode(problem)
    model = make(seed).fit(x_train, problem.y_train)
    seconds = time.perf_counter() - start
    return model, x_test, scaler, seconds


def metrics(problem, model, x_test):
    if problem.task == "binary":
        pred = model.predict(x_test)
        proba = model.predict_proba(x_test)[:, 1]
        return {
            "accuracy": accuracy_score(problem.y_test, pred),
            "f1": f1_score(problem.y_test, pred),
            "roc_auc": roc_auc_score(problem.y_test, proba),
        }
    pred = model.predict(x_test)
    return {
        "rmse": root_mean_squared_error(problem.y_test, pred),
        "r2": r2_score(problem.y_test, pred),
    }


def describe(model, scaler):
    out = {"scaler_mean": scaler.mean_.tolist(), "scaler_scale": scaler.scale_.tolist()}
    if hasattr(model, "coef_"):
        out["coef"] = np.ravel(model.coef_).tolist()
        out["intercept"] = np.ravel(model.intercept_).tolist()
        if hasattr(model, "n_iter_"):
            out["n_iter"] = np.ravel(model.n_iter_).tolist()
    if hasattr(model, "estimators_"):
        trees = np.ravel(model.estimators_)
        out["trees"] = len(trees)
        out["nodes"] = int(sum(t.tree_.node_count for t in trees))
    if hasattr(model, "tree_"):
        out["nodes"] = int(model.tree_.node_count)
    return out


def run(out, dataset=None, only=None, seeds=None, timing_only=False):
    loaders = {"ai4i": ai4i, "cmapss_fd001": cmapss_fd001}
    problems = {name: load() for name, load in loaders.items() if dataset in (None, name)}
    runs = []
    for (name, algorithm), (shown, make, randomness) in CASES.items():
        if name not in problems or (only and algorithm != only):
            continue
        print(f"sklearn: {name} {algorithm}", file=sys.stderr)
        problem = problems[name]
        n_seeds = 1 if randomness == NONE or timing_only else (seeds or SEEDS[name])
        times, by_seed, first = [], {}, None
        for _ in range(TIMED_RUNS):
            model, x_test, scaler, s = fit_once(problem, make, 0)
            times.append(s)
            if first is None:
                first = (model, x_test, scaler)
        model, x_test, scaler = first
        by_seed["0"] = metrics(problem, model, x_test)
        for seed in range(1, n_seeds):
            m, xt, _, _ = fit_once(problem, make, seed)
            by_seed[str(seed)] = metrics(problem, m, xt)
        if problem.task == "binary":
            predicted = model.predict_proba(x_test)[:, 1]
        else:
            predicted = model.predict(x_test)
        runs.append(
            {
                "dataset": name,
                "algorithm": algorithm,
                "params": shown,
                "seeds": n_seeds,
                "judged_on": "mean" if randomness == JUDGED else "seed 0",
                "train_rows": len(problem.y_train),
                "test_rows": len(problem.y_test),
                "fit_seconds": times,
                "metrics_by_seed": by_seed,
                "test_predictions_seed_0": predicted.tolist(),
                "model": describe(model, scaler),
            }
        )
    report = {"sklearn": sklearn.__version__, "numpy": np.__version__, "runs": runs}
    pathlib.Path(out).write_text(json.dumps(report, indent=1))


# ----- the table ----------------------------------------------------------------------------

METRIC_NAMES = {
    "accuracy": "accuracy",
    "f1": "F1",
    "roc_auc": "ROC AUC",
    "rmse": "RMSE",
    "r2": "R²",
}
DATASET_NAMES = {"ai4i": "AI4I 2020", "cmapss_fd001": "C-MAPSS FD001"}


def within(metric, refit, sk):
    """The issue's tolerance: 2 % of scikit-learn's RMSE, 0.01 for the others."""
    if metric == "rmse":
        return abs(refit - sk) <= 0.02 * abs(sk)
    return abs(refit - sk) <= 0.01


def difference(metric, refit, sk):
    d = refit - sk
    if metric == "rmse":
        return f"{d:+.3f} ({100 * d / sk:+.1f} %)"
    return f"{d:+.4f}"


def params_shown(refit_run, sk_run):
    refit = ", ".join(f"{k}={v}" for k, v in refit_run["params"].items())
    if not refit:
        return "defaults"
    return refit if refit == sk_run["params"] else f"{refit} / sklearn {sk_run['params']}"


def seconds(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def agreement(task, refit_pred, sk_pred):
    """How closely seed 0's test predictions agree: largest difference, and for classifiers
    the rows whose predicted class (probability of class 1 above 0.5) differs."""
    a, b = np.asarray(refit_pred), np.asarray(sk_pred)
    text = f"largest difference {np.max(np.abs(a - b)):.2g}"
    if task == "binary":
        text += f", {int(np.sum((a > 0.5) != (b > 0.5)))} of {len(a)} predicted classes differ"
    return text


def table(refit_path, sklearn_path, refit2_path=None, markdown=None, load=None):
    refit = json.loads(pathlib.Path(refit_path).read_text())
    sk = json.loads(pathlib.Path(sklearn_path).read_text())
    two = {}
    if refit2_path:
        for r in json.loads(pathlib.Path(refit2_path).read_text())["runs"]:
            two[(r["dataset"], r["algorithm"])] = r
    sk_runs = {(r["dataset"], r["algorithm"]): r for r in sk["runs"]}

    header = [
        "dataset", "algorithm", "hyperparameters", "metric", "refit", "sklearn", "difference",
        "within tolerance?", "fit time refit", "fit time sklearn", "ratio",
    ]
    rows, failures, slower, agreements = [], [], [], []
    for run_ in refit["runs"]:
        key = (run_["dataset"], run_["algorithm"])
        other = sk_runs.get(key)
        if other is None:
            sys.exit(f"scikit-learn has no result for {key}")
        if (other["train_rows"], other["test_rows"]) != (run_["train_rows"], run_["test_rows"]):
            sys.exit(f"{key}: the two sides' splits differ")
        seeds = sorted(run_["metrics_by_seed"], key=int)
        same_seeds = sorted(other["metrics_by_seed"], key=int) == seeds
        if not same_seeds or other["judged_on"] != run_["judged_on"]:
            sys.exit(f"{key}: the two sides ran different seeds or judge differently")
        task = "binary" if "accuracy" in run_["metrics_by_seed"]["0"] else "regression"
        agreements.append(
            f"{DATASET_NAMES[key[0]]} {key[1]}: "
            + agreement(task, run_["test_predictions_seed_0"], other["test_predictions_seed_0"])
        )
        t_refit = statistics.median(run_["fit_seconds"])
        t_sk = statistics.median(other["fit_seconds"])
        ratio = t_refit / t_sk
        if ratio > 1.0:
            slower.append(f"{key[0]} {key[1]} ({ratio:.2f}×)")
        time_cells = [seconds(t_refit), seconds(t_sk), f"{ratio:.2f}"]
        if key in two:
            time_cells[0] += f" (2 threads: {seconds(statistics.median(two[key]['fit_seconds']))})"
        variants = [("seed 0", ["0"])]
        if len(seeds) > 1:
            variants.append((f"mean of {len(seeds)} seeds", seeds))
        first = True
        for metric in run_["metrics_by_seed"]["0"]:
            for label, over in variants:
                r = statistics.fmean(run_["metrics_by_seed"][x][metric] for x in over)
                s_ = statistics.fmean(other["metrics_by_seed"][x][metric] for x in over)
                judged = (label == "seed 0") == (run_["judged_on"] == "seed 0")
                ok = within(metric, r, s_)
                d = difference(metric, r, s_)
                if judged and not ok:
                    failures.append(f"{key[0]} {key[1]} {METRIC_NAMES[metric]}, {label} ({d})")
                if judged:
                    verdict = "yes" if ok else "NO"
                else:
                    verdict = f"({'yes' if ok else 'no'}; not judged)"
                name = METRIC_NAMES[metric] + (f", {label}" if len(variants) > 1 else "")
                rows.append(
                    [
                        DATASET_NAMES[key[0]] if first else "",
                        key[1] if first else "",
                        params_shown(run_, other) if first else "",
                        name,
                        f"{r:.4f}",
                        f"{s_:.4f}",
                        d,
                        verdict,
                    ]
                    + (time_cells if first else ["", "", ""])
                )
                first = False

    judged = sum(1 for row in rows if not row[7].startswith("("))
    models = len(refit["runs"])
    quality = (
        "all within tolerance"
        if not failures
        else f"{len(failures)} outside tolerance: " + "; ".join(failures)
    )
    speed = (
        f"refit no slower on all {models} models"
        if not slower
        else f"refit slower on {len(slower)} of {models} models: " + "; ".join(slower)
    )
    passed = not failures and not slower
    verdict = (
        f"VERDICT: {'PASS' if passed else 'FAIL'} — quality: {judged} judged rows, {quality}; "
        f"fit time: {speed}."
    )
    notes = [
        "Tolerance: |refit − sklearn| ≤ 0.01 for accuracy, F1, ROC AUC and R²; ≤ 2 % of "
        "scikit-learn's RMSE; fit time ratio (refit / sklearn) ≤ 1.",
        "Decision trees, random forests and gradient boosting are judged on the mean over the "
        "same seeds on each side (25 on AI4I, 5 on C-MAPSS): the libraries draw different random "
        "streams (bootstrap samples, feature draws, the feature order that breaks ties between "
        "equally good splits), so single seeds differ by chance; their seed-0 rows are shown, not "
        "judged. AI4I is held out by its later half (170 failures): with a fifth (~60), one differing prediction would move F1 by ~0.02. "
        "The other models are deterministic.",
        "Fit time: encoder + fit (not loading the data), median of 3 runs of seed 0, each side "
        f"on {refit.get('cpus_available', '?')} CPU(s), scikit-learn with n_jobs=1 and one BLAS "
        "thread. refit's forests grow on 2 threads inside `fit::fit` (it does not expose "
        "`n_threads`), so on one CPU they take turns on one core; '2 threads' is the same fit "
        "with both cores.",
        "Seed-0 test predictions, refit against scikit-learn: " + "; ".join(agreements) + ".",
        f"scikit-learn {sk['sklearn']}, numpy {sk['numpy']}.",
    ]
    if load:
        notes.append(f"Load average (1, 5, 15 min): {load}.")

    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    print()
    for n in notes:
        print("- " + n)
    print()
    print(verdict)

    if markdown:
        align = ["---"] * 4 + ["---:"] * 3 + ["---"] + ["---:"] * 3
        md = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
        md += ["| " + " | ".join(row) + " |" for row in rows]
        md += [""] + ["- " + n for n in notes] + ["", f"**{verdict}**", ""]
        pathlib.Path(markdown).write_text("\n".join(md))
    return passed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("out")
    p.add_argument("--dataset", choices=["ai4i", "cmapss_fd001"])
    p.add_argument("--only")
    p.add_argument("--seeds", type=int)
    p.add_argument("--timing-only", action="store_true")
    p = sub.add_parser("table")
    p.add_argument("--refit", required=True)
    p.add_argument("--sklearn", required=True)
    p.add_argument("--refit-2-threads")
    p.add_argument("--markdown")
    p.add_argument("--load")
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.dataset, args.only, args.seeds and max(1, args.seeds), args.timing_only)
    else:
        passed = table(args.refit, args.sklearn, args.refit_2_threads, args.markdown, args.load)
        sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
