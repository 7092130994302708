#!/usr/bin/env python3
"""Generate drift_extra_cases.json: expected values for refit's drift statistics.

The Rust tests (scorer/tests/drift_reference.rs) read the JSON; they do not run this script.
Regenerate with the same library versions to get byte-identical output:

    python scorer/tests/data/gen_drift_cases.py            # numpy + scipy only
    python scorer/tests/data/gen_drift_cases.py --check-evidently

Everything SciPy provides is computed by SciPy itself (ks_2samp, kstwo, wasserstein_distance,
jensenshannon, chisquare, chi2, norm). Evidently's stat tests (legacy, 0.7.23) are reproduced
below with numpy instead of pandas, line by line from `evidently/legacy/calculations/stattests/`;
with --check-evidently the script also runs the real Evidently functions (if importable) on every
case that uses them and fails on any difference.

Choices that go beyond the reference definitions are marked REFIT below:
  * the reference-decile PSI fills empty shares like Evidently's PSI does;
  * a chi-square over a single category is not generated (SciPy returns NaN; refit returns 1).
"""

import argparse
import json
import math
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy
import scipy.stats as st
from scipy.spatial import distance

OUT = Path(__file__).with_name("drift_extra_cases.json")


def floats(a):
    return [float(x) for x in a]


# ------------------------------------------------------------------------------------------------
# Evidently 0.7.23 (legacy stat tests), numpy edition
# ------------------------------------------------------------------------------------------------


def ev_fill(p):
    """utils.get_binned_data, `feel_zeroes=True` branch."""
    p = p.copy()
    m = min(p[p != 0])
    np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return p


def ev_keys(ref, cur):
    # Evidently iterates a Python set; refit sorts. Only summation order differs.
    return sorted(set(ref.tolist()) | set(cur.tolist()))


def ev_category_shares(ref, cur):
    keys = ev_keys(ref, cur)
    rc = {k: 0 for k in keys}
    cc = {k: 0 for k in keys}
    for v in ref.tolist():
        rc[v] += 1
    for v in cur.tolist():
        cc[v] += 1
    return (
        np.array([rc[k] / len(ref) for k in keys]),
        np.array([cc[k] / len(cur) for k in keys]),
    )


def ev_binned(ref, cur, numeric, fill):
    """utils.get_binned_data."""
    if numeric and len(np.unique(ref)) > 20:
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        rp = np.histogram(ref, bins)[0] / len(ref)
        cp = np.histogram(cur, bins)[0] / len(cur)
    else:
        rp, cp = ev_category_shares(ref, cur)
    if fill:
        rp, cp = ev_fill(rp), ev_fill(cp)
    return rp, cp


def ev_psi(ref, cur, numeric):
    rp, cp = ev_binned(ref, cur, numeric, True)
    return float(np.sum((rp - cp) * np.log(rp / cp)))


def ev_jensenshannon(ref, cur, numeric, base=None):
    rp, cp = ev_binned(ref, cur, numeric, False)
    return float(distance.jensenshannon(rp, cp, base))


def ev_wasserstein_normed(ref, cur):
    norm = max(np.std(ref), 0.001)
    return float(st.wasserstein_distance(ref, cur) / norm)


def ev_chisquare(ref, cur):
    keys = ev_keys(ref, cur)
    rc = {k: 0 for k in keys}
    cc = {k: 0 for k in keys}
    for v in ref.tolist():
        rc[v] += 1
    for v in cur.tolist():
        cc[v] += 1
    k_norm = cur.shape[0] / ref.shape[0]
    f_exp = [rc[k] * k_norm for k in keys]
    f_obs = [cc[k] for k in keys]
    with np.errstate(divide="ignore"):
        res = st.chisquare(f_obs, f_exp)
    return float(res.statistic), float(res.pvalue)


def ev_z(ref, cur):
    if len(set(ref.tolist())) == 1 and len(set(cur.tolist())) == 1 and ref[0] == cur[0]:
        return 1.0
    keys = ev_keys(ref, cur)
    r = np.array([0 if x == keys[0] else 1 for x in ref.tolist()])
    c = np.array([0 if x == keys[0] else 1 for x in cur.tolist()])
    n1, n2 = len(r), len(c)
    p1 = float(sum(r)) / n1
    p2 = float(sum(c)) / n2
    P = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(P * (1 - P) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - st.norm.cdf(np.abs(z))))


def ev_default_test(ref, cur, numeric):
    """registry._get_default_stattest, then the test with its default threshold."""
    n_values = len(set(ref.tolist()) | set(cur.tolist()))
    if ref.shape[0] <= 1000:
        if numeric and n_values > 5:
            p = float(st.ks_2samp(ref, cur).pvalue)
            return "ks", p, 0.05, p <= 0.05
        if n_values > 2:
            p = ev_chisquare(ref, cur)[1]
            return "chisquare", p, 0.05, p < 0.05
        p = ev_z(ref, cur)
        return "z", p, 0.05, p < 0.05
    if numeric and n_values > 5:
        v = ev_wasserstein_normed(ref, cur)
        return "wasserstein_normed", v, 0.1, v >= 0.1
    v = ev_jensenshannon(ref, cur, numeric)
    return "jensenshannon", v, 0.1, v >= 0.1


# ------------------------------------------------------------------------------------------------
# refit's reference-decile PSI (no Evidently counterpart)
# ------------------------------------------------------------------------------------------------


def decile_edges(ref):
    e = np.quantile(ref, np.linspace(0, 1, 11))
    e[0], e[-1] = -np.inf, np.inf
    return e


def psi_deciles(ref, cur):
    e = decile_edges(ref)
    rp = np.histogram(ref, e)[0] / len(ref)
    cp = np.histogram(cur, e)[0] / len(cur)
    rp, cp = ev_fill(rp), ev_fill(cp)  # REFIT: fill empty shares as Evidently's PSI does
    return float(np.sum((rp - cp) * np.log(rp / cp)))


# ------------------------------------------------------------------------------------------------
# The reference-profile sampler (an independent implementation of refit's algorithm)
# ------------------------------------------------------------------------------------------------

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        m = self.next() * n
        low = m & MASK
        if low < n:
            t = ((-n) & MASK) % n
            while low < t:
                m = self.next() * n
                low = m & MASK
        return m >> 64


def profile_positions(length, bound, seed):
    if length <= bound:
        return list(range(length))
    rng = SplitMix64(seed)
    idx = list(range(length))
    for i in range(bound):
        j = i + rng.below(length - i)
        idx[i], idx[j] = idx[j], idx[i]
    return sorted(idx[:bound])


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------


def ks_all(ref, cur):
    """ks_2samp with method auto / exact / asymp, and which method 'auto' really used."""
    out = {}
    for mode in ("auto", "exact", "asymp"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = st.ks_2samp(ref, cur, method=mode)
        fell_back = any("asymp" in str(w.message) for w in caught)
        if mode == "asymp":
            used = "asymptotic"
        elif mode == "exact":
            used = "asymptotic" if fell_back else "exact"
        else:
            used = "exact" if max(len(ref), len(cur)) <= 10000 and not fell_back else "asymptotic"
        out[mode] = {
            "statistic": float(res.statistic),
            "pvalue": float(res.pvalue),
            "method": used,
        }
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check-evidently", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(20240601)
    arrays = {}

    def put(name, values):
        arrays[name] = floats(values)
        return np.asarray(arrays[name], dtype=float)

    # --- arrays ---------------------------------------------------------------------------------
    a37 = put("n37_ties", np.round(rng.normal(0.0, 1.0, 37), 1))
    b53 = put("n53_ties", np.round(rng.normal(0.3, 1.0, 53), 1))
    b53s = put("n53_ties_shifted", np.round(rng.normal(1.2, 1.0, 53), 1))
    e40a = put("n40_int_a", np.round(rng.normal(0.0, 2.0, 40)))
    e40b = put("n40_int_b", np.round(rng.normal(1.0, 2.0, 40)))
    m600 = put("n600", np.round(rng.normal(0.0, 1.0, 600), 3))
    m450 = put("n450", np.round(rng.normal(0.05, 1.0, 450), 3))
    big = put("n10001_int", np.round(rng.normal(0.0, 100.0, 10001)))
    big2 = put("n10001_int_b", np.round(rng.normal(0.0, 100.0, 10001)))
    c800s = put("n800_int_shift15", np.round(rng.normal(15.0, 100.0, 800)))
    c800 = put("n800_int", np.round(rng.normal(0.0, 100.0, 800)))
    c60 = put("n60_int", np.round(rng.normal(0.0, 100.0, 60)))
    c60s = put("n60_int_shift40", np.round(rng.normal(40.0, 100.0, 60)))
    c30s = put("n30_int_shift120", np.round(rng.normal(120.0, 100.0, 30)))
    e7000 = put("n7001_int", np.round(rng.normal(5.0, 100.0, 7001)))
    put("n3000_int", np.round(rng.normal(-4.0, 100.0, 3000)))
    r300 = put("n300", np.round(rng.normal(0.0, 1.0, 300), 4))
    c200far = put("n200_far", np.round(rng.normal(3.0, 0.5, 200), 4))
    const50 = put("const50", np.full(50, 2.5))
    c40near = put("n40_near_2.5", np.round(rng.normal(2.5, 0.1, 40), 4))
    outliers = put(
        "n803_int_outliers",
        np.concatenate([np.round(rng.normal(10.0, 100.0, 800)), [900.0, 950.0, 1000.0]]),
    )
    ints100 = put("ints_0_99", np.arange(100.0))
    put("one_50", [50.0])
    put("one_1", [1.0])
    put("one_2", [2.0])
    put("three", [0.5, 1.5, 2.5])

    # --- KS --------------------------------------------------------------------------------------
    ks_pairs = [
        ("unequal_37_53_ties", "n37_ties", "n53_ties"),
        ("unequal_37_53_ties_shifted", "n37_ties", "n53_ties_shifted"),
        ("equal_40_integer_ties", "n40_int_a", "n40_int_b"),
        ("exact_unequal_600_450", "n600", "n450"),
        ("exact_unequal_7001_3000", "n7001_int", "n3000_int"),
        ("auto_asymptotic_7001_10001", "n7001_int", "n10001_int"),
        ("asymptotic_10001_800_shift", "n10001_int", "n800_int_shift15"),
        ("asymptotic_10001_800", "n10001_int", "n800_int"),
        ("asymptotic_10001_60", "n10001_int", "n60_int"),
        ("asymptotic_10001_60_shift", "n10001_int", "n60_int_shift40"),
        ("asymptotic_10001_30_shift", "n10001_int", "n30_int_shift120"),
        ("asymptotic_10001_10001_half_even_en", "n10001_int", "n10001_int_b"),
        ("single_vs_single", "one_1", "one_2"),
        ("single_vs_three", "one_1", "three"),
        ("integers_vs_single", "ints_0_99", "one_50"),
        ("constant_reference", "const50", "n40_near_2.5"),
    ]
    ks_cases = []
    for name, r, c in ks_pairs:
        ref, cur = np.asarray(arrays[r]), np.asarray(arrays[c])
        ks_cases.append({"name": name, "reference": r, "current": c, "expected": ks_all(ref, cur)})

    # --- kstwo.sf grid (the asymptotic p-value's distribution, every branch of _kolmogn) ----------
    kstwo = []
    for n in [1, 2, 3, 5, 10, 20, 50, 100, 140, 141, 200, 500, 741, 1000, 5000, 100000, 100001,
              1000000, 2000000]:
        xs = [0.3 / n, 0.6 / n, 0.9 / n, 1.5 / n, 0.45, 0.5, 0.6, 0.9, 1 - 1.5 / n, 1 - 0.5 / n]
        xs += [math.sqrt(k / n) for k in (0.03, 0.05, 0.1, 0.15, 0.3, 0.5, 0.75, 0.76, 1.0, 1.5, 2.0, 2.5, 3.0, 3.9,
                                          4.5, 8.0, 17.0, 20.0, 60.0, 200.0, 369.0)]
        for x in sorted(set(xs)):
            if 0 < x < 1:
                sf = float(st.kstwo.sf(x, n))
                if sf == 0.0 or sf > 1e-300:
                    kstwo.append([n, float(x), sf])

    # --- numeric statistics ------------------------------------------------------------------------
    num_pairs = [
        ("unequal_37_53_ties", "n37_ties", "n53_ties"),
        ("sturges_empty_bins", "n300", "n200_far"),
        ("constant_reference", "const50", "n40_near_2.5"),
        ("large_reference_fill_rule", "n10001_int", "n803_int_outliers"),
        ("unequal_10001_800", "n10001_int", "n800_int_shift15"),
        ("integers_vs_single", "ints_0_99", "one_50"),
        ("single_vs_single", "one_1", "one_2"),
    ]
    numeric = []
    for name, r, c in num_pairs:
        ref, cur = np.asarray(arrays[r]), np.asarray(arrays[c])
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        sr = np.histogram(ref, edges)[0] / len(ref)
        sc = np.histogram(cur, edges)[0] / len(cur)
        de = decile_edges(ref)
        numeric.append({
            "name": name,
            "reference": r,
            "current": c,
            "expected": {
                "wasserstein_distance": float(st.wasserstein_distance(ref, cur)),
                "reference_std_ddof0": float(np.std(ref)),
                "wasserstein_normed": ev_wasserstein_normed(ref, cur),
                "sturges_edges": floats(edges),
                "sturges_reference_shares": floats(sr),
                "sturges_current_shares": floats(sc),
                "psi_evidently_sturges_combined_bins": float(
                    np.sum((ev_fill(sr) - ev_fill(sc)) * np.log(ev_fill(sr) / ev_fill(sc)))),
                "jensenshannon_natural_log_sturges_combined_bins": float(
                    distance.jensenshannon(sr, sc)),
                "jensenshannon_base2_sturges_combined_bins": float(
                    distance.jensenshannon(sr, sc, 2)),
                "decile_edges": floats(de),
                "psi_reference_deciles_10_bins": psi_deciles(ref, cur),
            },
        })

    # --- categorical statistics -----------------------------------------------------------------
    def cat(counts):
        return np.array([k for k, n in counts.items() for _ in range(n)], dtype=object)

    many_keys = [f"k{i:02d}" for i in range(40)]
    many_ref = dict(zip(many_keys, (int(x) for x in rng.integers(20, 250, 40))))
    many_cur = dict(zip(many_keys, (int(x) for x in rng.integers(10, 180, 40))))
    cat_defs = [
        ("missing_in_current", {"a": 30, "b": 20, "c": 10, "d": 5}, {"a": 40, "b": 25, "c": 15}),
        ("missing_in_reference", {"a": 30, "b": 20, "c": 10}, {"a": 20, "b": 20, "c": 10, "d": 10}),
        ("forty_categories", many_ref, many_cur),
        ("binary_balanced", {"no": 480, "yes": 520}, {"no": 470, "yes": 530}),
        ("binary_strong_shift", {"no": 700, "yes": 300}, {"no": 500, "yes": 500}),
        ("binary_moderate_z", {"0": 880, "1": 120}, {"0": 800, "1": 200}),
        ("constant_same", {"x": 10}, {"x": 5}),
        ("constant_different", {"a": 10}, {"b": 7}),
        ("three_categories_z_rule", {"b": 20, "c": 30, "d": 50}, {"b": 35, "c": 30, "d": 35}),
        ("small_binary_one_missing", {"p": 3, "q": 1}, {"p": 2}),
    ]
    categorical = []
    for name, rc, cc in cat_defs:
        ref, cur = cat(rc), cat(cc)
        rp, cp = ev_category_shares(ref, cur)
        expected = {
            "psi": ev_psi(ref, cur, False),
            "jensenshannon_natural_log": float(distance.jensenshannon(rp, cp)),
            "jensenshannon_base2": float(distance.jensenshannon(rp, cp, 2)),
            "z_test_pvalue": ev_z(ref, cur),
        }
        if len(ev_keys(ref, cur)) > 1:  # REFIT: one category -> SciPy NaN, not generated
            stat, p = ev_chisquare(ref, cur)
            expected["chisquare_statistic"] = stat
            expected["chisquare_pvalue"] = p
        categorical.append({"name": name, "reference": rc, "current": cc, "expected": expected})

    # --- default test selection and verdicts ----------------------------------------------------
    def cycle(values, n):
        return np.array([values[i % len(values)] for i in range(n)], dtype=float)

    default_defs = [
        ("numeric_1000_six_unique_ks", True, cycle([0, 1, 2, 3, 4, 5], 1000),
         cycle([0, 1, 2, 3, 4, 5, 5], 700)),
        ("numeric_1000_five_unique_chisquare", True, cycle([0, 1, 2, 3, 4], 1000),
         cycle([0, 1, 2, 3, 4, 4], 600)),
        ("numeric_1000_two_unique_z", True, cycle([0, 1, 1], 1000), cycle([0, 1], 500)),
        ("numeric_1001_five_unique_jensenshannon", True, cycle([0, 1, 2, 3, 4], 1001),
         cycle([0, 1, 2, 3, 4, 0], 900)),
        ("numeric_1001_many_unique_wasserstein", True, big[:1001], c800s[:500]),
        ("numeric_small_ks_shift", True, a37, b53s),
        ("categorical_small_three_chisquare", False, cat({"a": 30, "b": 40, "c": 30}),
         cat({"a": 33, "b": 37, "c": 30})),
        ("categorical_small_binary_z", False, cat({"n": 60, "y": 40}), cat({"n": 30, "y": 70})),
        ("categorical_large_jensenshannon", False, cat({"a": 600, "b": 300, "c": 101}),
         cat({"a": 300, "b": 300, "c": 400})),
    ]
    default_cases = []
    for name, numeric_kind, ref, cur in default_defs:
        test, value, threshold, drifted = ev_default_test(ref, cur, numeric_kind)
        entry = {"name": name, "kind": "numeric" if numeric_kind else "categorical"}
        if numeric_kind:
            entry["reference"], entry["current"] = floats(ref), floats(cur)
        else:
            entry["reference"], entry["current"] = ref.tolist(), cur.tolist()
        entry["expected"] = {"test": test, "value": value, "threshold": threshold,
                             "drifted": bool(drifted)}
        default_cases.append(entry)
    flags = [c["expected"]["drifted"] for c in default_cases]
    share = sum(flags) / len(flags)
    dataset = {"columns": [c["name"] for c in default_cases],
               "expected": {"drifted_columns": sum(flags), "share": share,
                            "dataset_drift": share >= 0.5}}

    # --- special functions ------------------------------------------------------------------------
    chi2 = []
    for df in [1, 2, 3, 5, 10, 39, 100, 1000]:
        for f in [0.01, 0.5, 0.9, 1.0, 1.1, 2.0, 5.0, 10.0]:
            x = f * df
            p = float(st.chi2.sf(x, df))
            if p > 1e-300:
                chi2.append([float(x), df, p])
    ndtr = [[float(x), float(st.norm.cdf(x))] for x in np.linspace(-8, 8, 65)]
    ztail = [[float(z), float(2 * (1 - st.norm.cdf(z)))] for z in [0.1, 1.0, 1.96, 2.5, 3.3, 4.1, 5.2]]

    # --- profiles -------------------------------------------------------------------------------
    profiles = [
        {"len": n, "bound": b, "seed": s, "positions": profile_positions(n, b, s)}
        for n, b, s in [(20, 5, 2024), (10, 10, 3), (1000, 12, 1), (100000, 8, 42),
                        (7, 3, 18446744073709551615)]
    ]

    out = {
        "about": "Extra expected values for refit's drift statistics, generated by "
                 "gen_drift_cases.py (see its docstring for what mirrors what).",
        "generator": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "evidently": "0.7.23 legacy stat tests, reproduced with numpy in gen_drift_cases.py",
        },
        "notes": [
            "psi_reference_deciles_10_bins fills empty shares as Evidently's PSI does (refit's choice).",
            "chisquare over a single category is not listed: SciPy gives NaN, refit gives 1.",
            "Non-finite numbers are written as the strings \"nan\", \"inf\" and \"-inf\".",
            "kstwo_sf rows are [n, x, scipy.stats.kstwo.sf(x, n)].",
            "chi2_sf rows are [x, df, scipy.stats.chi2.sf(x, df)]; ndtr rows [x, norm.cdf(x)]; "
            "z_tail rows [z, 2 * (1 - norm.cdf(z))] as Evidently's z-test computes it.",
        ],
        "arrays": arrays,
        "ks": ks_cases,
        "kstwo_sf": kstwo,
        "numeric": numeric,
        "categorical": categorical,
        "default_test": default_cases,
        "dataset": dataset,
        "special": {"chi2_sf": chi2, "ndtr": ndtr, "z_tail": ztail},
        "profile": profiles,
    }
    OUT.write_text(dump(out))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")

    if args.check_evidently:
        check_against_evidently(cat_defs, cat, default_defs, num_pairs, arrays)


def json_safe(v):
    """Non-finite floats as the strings "nan", "inf", "-inf" (strict JSON has no such numbers)."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_safe(x) for x in v]
    return v


def dump(out):
    """JSON with one top-level key, one array and one case per line: diffable and compact."""
    out = json_safe(out)
    compact = {"separators": (",", ":"), "allow_nan": False}
    lines = ["{"]
    items = list(out.items())
    for i, (key, value) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if isinstance(value, dict) and key in ("arrays", "special"):
            lines.append(f" {json.dumps(key)}: {{")
            sub = list(value.items())
            for j, (k, v) in enumerate(sub):
                lines.append(f"  {json.dumps(k)}: {json.dumps(v, **compact)}"
                             + ("," if j < len(sub) - 1 else ""))
            lines.append(" }" + end)
        elif isinstance(value, list) and value and not isinstance(value[0], str):
            lines.append(f" {json.dumps(key)}: [")
            for j, v in enumerate(value):
                lines.append("  " + json.dumps(v, **compact) + ("," if j < len(value) - 1 else ""))
            lines.append(" ]" + end)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, allow_nan=False)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def check_against_evidently(cat_defs, cat, default_defs, num_pairs, arrays):
    """Runs Evidently's own stat tests on the same data and compares."""
    try:
        import pandas as pd
        from evidently.legacy.calculations import stattests
        from evidently.legacy.calculations.stattests.registry import get_stattest
        from evidently.legacy.core import ColumnType
    except ImportError as e:
        sys.exit(f"--check-evidently needs pandas and evidently 0.7.23 importable: {e}")

    def same(a, b):
        return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12 * abs(b)

    bad = 0
    for name, rc, cc in cat_defs:
        r, c = pd.Series(cat(rc)), pd.Series(cat(cc))
        ours_r, ours_c = cat(rc), cat(cc)
        pairs = [
            ("psi", stattests.psi_stat_test(r, c, ColumnType.Categorical, None).drift_score,
             ev_psi(ours_r, ours_c, False)),
            ("js", stattests.jensenshannon_stat_test(r, c, ColumnType.Categorical, None).drift_score,
             ev_jensenshannon(ours_r, ours_c, False)),
            ("z", stattests.z_stat_test(r, c, ColumnType.Categorical, None).drift_score,
             ev_z(ours_r, ours_c)),
        ]
        if len(ev_keys(ours_r, ours_c)) > 1:
            with np.errstate(divide="ignore"):
                pairs.append(("chisquare",
                              stattests.chi_stat_test(r, c, ColumnType.Categorical, None).drift_score,
                              ev_chisquare(ours_r, ours_c)[1]))
        for what, theirs, ours in pairs:
            if not same(float(theirs), ours):
                bad += 1
                print(f"MISMATCH categorical {name} {what}: evidently {theirs!r} ours {ours!r}")
    for name, r, c in num_pairs:
        ref, cur = pd.Series(arrays[r]), pd.Series(arrays[c])
        for what, test, ours in [
            ("psi", stattests.psi_stat_test, ev_psi(ref.values, cur.values, True)),
            ("js", stattests.jensenshannon_stat_test, ev_jensenshannon(ref.values, cur.values, True)),
            ("wasserstein", stattests.wasserstein_stat_test,
             ev_wasserstein_normed(ref.values, cur.values)),
        ]:
            theirs = float(test(ref, cur, ColumnType.Numerical, None).drift_score)
            if not same(theirs, ours):
                bad += 1
                print(f"MISMATCH numeric {name} {what}: evidently {theirs!r} ours {ours!r}")
    for name, numeric_kind, ref, cur in default_defs:
        kind = ColumnType.Numerical if numeric_kind else ColumnType.Categorical
        r, c = pd.Series(ref), pd.Series(cur)
        test = get_stattest(r, c, kind, None)
        res = test(r, c, kind, None)
        ours = ev_default_test(ref, cur, numeric_kind)
        theirs_name = {"wasserstein": "wasserstein_normed"}.get(test.name, test.name)
        if (theirs_name, bool(res.drifted)) != (ours[0], bool(ours[3])) or not same(
                float(res.drift_score), ours[1]):
            bad += 1
            print(f"MISMATCH default {name}: evidently {test.name} {res} ours {ours}")
    print("evidently check:", "OK" if bad == 0 else f"{bad} mismatches")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
