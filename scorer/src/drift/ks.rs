//! The two-sample Kolmogorov–Smirnov test, mirroring `scipy.stats.ks_2samp(reference, current)`
//! (two-sided) of SciPy 1.17.1, including how SciPy picks and computes its p-value.
//!
//! * **Statistic.** `D = sup |F_ref(x) − F_cur(x)|` over the empirical CDFs, evaluated at every
//!   sample value exactly as SciPy does (`searchsorted(..., side="right") / n`), so ties are
//!   handled the same way.
//! * **Method.** With [`KsMode::Auto`] (SciPy's `method="auto"`), the p-value is *exact* when
//!   `max(n_ref, n_cur) <= 10_000` ([`KS_MAX_AUTO_N`]) and *asymptotic* otherwise. An exact
//!   computation that fails (a probability outside `[0, 1]`) falls back to the asymptotic one, as
//!   in SciPy.
//! * **Exact p-value.** With `lcm = lcm(n_ref, n_cur)` and `h = round(D · lcm)`, the statistic is
//!   reported as `h / lcm`. For equal sizes the p-value is SciPy's `_compute_prob_outside_square`
//!   (an alternating binomial sum in Horner form); for unequal sizes it is
//!   `_compute_outer_prob_inside_method`, Hodges' lattice-path count with Viehmann's recursion for
//!   `1 − p` (both ported operation by operation).
//! * **Asymptotic p-value.** SciPy does not use the limiting Kolmogorov distribution here: it
//!   evaluates the *one-sample* two-sided distribution at the effective size,
//!   `kstwo.sf(D, round(n_ref·n_cur / (n_ref + n_cur)))`. [`kstwo_sf`] ports SciPy's
//!   `scipy.stats._ksstats._kolmogn` (Simard & L'Ecuyer's choice among the Ruben–Gambino closed
//!   forms, Durbin's matrix method as Marsaglia–Tsang–Wang compute it, Pomeranz's recursion, the
//!   Pelz–Good expansion and `2 · smirnov(n, x)`), and `smirnov(n, x)` (the one-sided
//!   Birnbaum–Tingey sum of Cephes' `smirnov`) is evaluated in log space with exact handling of
//!   `floor(n·x)`.
//!
//! The ports keep SciPy's order of operations where it matters; intermediate steps that SciPy
//! happens to run in `long double` or double-double run here in `f64`, which moves results by at
//! most a few units of `1e-14` relative in the tests.

use serde::{Deserialize, Serialize};

use super::numpy::{count_at_or_below, round_half_even};
use super::{DriftError, sorted_finite};

/// Largest sample size for which [`KsMode::Auto`] computes an exact p-value (SciPy's
/// `MAX_AUTO_N`).
pub const KS_MAX_AUTO_N: usize = 10_000;

/// How the p-value of a KS test is to be computed (SciPy's `method` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KsMode {
    /// Exact when both samples have at most [`KS_MAX_AUTO_N`] values, asymptotic otherwise.
    #[default]
    Auto,
    /// Exact, unless `lcm(n_ref, n_cur)` is too large for it (then asymptotic, as in SciPy).
    /// Like SciPy's, the computation takes `O(max(n) · min(n) · D)` steps for unequal sizes, so
    /// it is slow for large, very unequal samples; [`KsMode::Auto`] only uses it up to 10 000.
    Exact,
    /// Always asymptotic. As in SciPy, the p-value is `NaN` when the effective size
    /// `round(n_ref·n_cur / (n_ref + n_cur))` is 0 (two single values).
    Asymptotic,
}

/// How a KS p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    /// The exact distribution of the two-sample statistic.
    Exact,
    /// The one-sample distribution at the effective sample size.
    Asymptotic,
}

/// Result of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ks {
    /// The statistic `D` (on the exact path, rounded to a multiple of `1 / lcm(n_ref, n_cur)`).
    pub statistic: f64,
    /// The two-sided p-value.
    pub pvalue: f64,
    /// How the p-value was computed.
    pub method: KsMethod,
}

/// The two-sample, two-sided KS test with SciPy's `method="auto"`.
///
/// Non-finite values are skipped; an error is returned if either sample has no finite value.
///
/// ```
/// use refit_scorer::drift::{ks_2samp, KsMethod};
/// let reference: Vec<f64> = (0..100).map(f64::from).collect();
/// let current: Vec<f64> = (10..110).map(f64::from).collect();
/// let ks = ks_2samp(&reference, &current).unwrap();
/// assert_eq!(ks.statistic, 0.1);
/// assert_eq!(ks.method, KsMethod::Exact);
/// assert!((ks.pvalue - 0.7020569828664881).abs() < 1e-12);
/// ```
pub fn ks_2samp(reference: &[f64], current: &[f64]) -> Result<Ks, DriftError> {
    ks_2samp_with(reference, current, KsMode::Auto)
}

/// The two-sample, two-sided KS test with an explicit [`KsMode`].
pub fn ks_2samp_with(reference: &[f64], current: &[f64], mode: KsMode) -> Result<Ks, DriftError> {
    let reference = sorted_finite(reference);
    let current = sorted_finite(current);
    if reference.is_empty() {
        return Err(DriftError::EmptyReference);
    }
    if current.is_empty() {
        return Err(DriftError::EmptyCurrent);
    }
    Ok(ks_sorted(&reference, &current, mode))
}

/// The KS test over two non-empty ascending samples of finite values.
pub(crate) fn ks_sorted(reference: &[f64], current: &[f64], mode: KsMode) -> Ks {
    let n1 = reference.len() as u64;
    let n2 = current.len() as u64;
    let mut d = ks_statistic_sorted(reference, current);
    let g = gcd(n1, n2);
    let (n1g, n2g) = (n1 / g, n2 / g);
    let mut method = match mode {
        KsMode::Auto if n1.max(n2) <= KS_MAX_AUTO_N as u64 => KsMethod::Exact,
        KsMode::Auto | KsMode::Asymptotic => KsMethod::Asymptotic,
        KsMode::Exact if n1g as f64 >= f64::from(i32::MAX) / n2g as f64 => KsMethod::Asymptotic,
        KsMode::Exact => KsMethod::Exact,
    };
    let mut pvalue = f64::NAN;
    if method == KsMethod::Exact {
        let (exact, rounded_d) = attempt_exact(n1, n2, g, d);
        d = rounded_d;
        match exact {
            Some(p) => pvalue = p,
            None => method = KsMethod::Asymptotic,
        }
    }
    if method == KsMethod::Asymptotic {
        let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
        let en = m * n / (m + n);
        pvalue = kstwo_sf(d, round_half_even(en) as u64);
    }
    Ks {
        statistic: d,
        pvalue: pvalue.clamp(0.0, 1.0),
        method,
    }
}

/// `max(D+, D-)` as SciPy computes it: differences of the two ECDFs at every sample value.
fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut max_s = f64::NEG_INFINITY;
    let mut min_s = f64::INFINITY;
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        i += count_at_or_below(&a[i..], v);
        j += count_at_or_below(&b[j..], v);
        let diff = i as f64 / n1 - j as f64 / n2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s { min_s } else { max_s }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// SciPy's `_attempt_exact_2kssamp` (two-sided): `(Some(p), d)` on success, `(None, d)` when the
/// probability came out of `[0, 1]`. `d` is the statistic rounded to a multiple of `1/lcm`.
fn attempt_exact(n1: u64, n2: u64, g: u64, d: f64) -> (Option<f64>, f64) {
    let lcm = (n1 / g) * n2;
    let h = round_half_even(d * lcm as f64) as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return (Some(1.0), d);
    }
    let prob = if n1 == n2 {
        Some(prob_outside_square(n1, h))
    } else {
        outer_prob_inside(n1, n2, g, h)
    };
    match prob {
        Some(p) if (0.0..=1.0).contains(&p) => (Some(p), d),
        _ => (None, d),
    }
}

/// SciPy's `_compute_prob_outside_square(n, h)`: `P(D_{n,n} >= h/n)` as
/// `2 (A0 (1 − A1 (1 − A2 (1 − …))))`.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = (n as f64 / h as f64).floor() as i64;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// SciPy's `_compute_outer_prob_inside_method(m, n, g, h)` (Pythran source in
/// `scipy/stats/_stats_pythran.py`): the proportion of lattice paths from `(0, 0)` to `(m, n)`
/// that leave the band `|x/m − y/n| < h/lcm`, computed directly as `1 − p` over a sliding window
/// of one column. `None` if the window would leave its buffer (never expected; it turns into the
/// asymptotic fallback).
fn outer_prob_inside(m: u64, n: u64, g: u64, h: u64) -> Option<f64> {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize) {
        *x = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = (((ng * i - h) as f64 / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return Some(1.0);
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let fi = i as f64;
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            let prev = *a.get(usize::try_from(jj + minj - lastminj).ok()?)?;
            val = (prev * fi + val * j as f64) / (i + j) as f64;
            *a.get_mut(jj as usize)? = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(len_a);
            for x in a.iter_mut().take(end).skip(start) {
                *x = 1.0;
            }
        }
    }
    a.get(usize::try_from(maxj - minj - 1).ok()?).copied()
}

// ---------------------------------------------------------------------------------------------
// The one-sample two-sided Kolmogorov distribution: scipy.stats.kstwo.sf
// ---------------------------------------------------------------------------------------------

/// `2^128` and `2^-128`, SciPy's rescaling factors.
const EP128: f64 = f64::from_bits((1023 + 128) << 52);
const EM128: f64 = f64::from_bits((1023 - 128) << 52);
const E128: i64 = 128;

/// `x · 2^e` without overflowing or underflowing on the way.
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    const UP: f64 = f64::from_bits((1023 + 512) << 52); // 2^512
    const DOWN: f64 = f64::from_bits((1023 - 512) << 52); // 2^-512
    while e > 512 {
        x *= UP;
        e -= 512;
    }
    while e < -512 {
        x *= DOWN;
        e += 512;
    }
    x * 2f64.powi(e as i32)
}

/// The survival function of the one-sample, two-sided Kolmogorov–Smirnov statistic `D_n`:
/// `P(D_n > x)`, i.e. `scipy.stats.kstwo.sf(x, n)`.
///
/// `n = 0` or a `NaN` `x` gives `NaN`.
pub fn kstwo_sf(x: f64, n: u64) -> f64 {
    if n == 0 || x.is_nan() {
        return f64::NAN;
    }
    // rv_continuous.sf: 1 at or below the support's lower end 0.5/n, 0 at or above 1.
    if x <= 0.5 / n as f64 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    kolmogn_sf(n, x)
}

/// SciPy's `_kolmogn(n, x, cdf=False)`.
fn kolmogn_sf(n: u64, x: f64) -> f64 {
    let clip = |p: f64| p.clamp(0.0, 1.0);
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: 1/2n <= x <= 1/n.
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            let mut prod = 1.0;
            for i in 1..=n {
                prod *= i as f64 * (1.0 / nf) * (2.0 * t - 1.0);
            }
            prod
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - prob);
    }
    if t >= nf - 1.0 {
        // Ruben–Gambino: 1 − 1/n <= x.
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754693 {
            return clip(1.0 - dmtw_cdf(n, x));
        }
        if nxsquared <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        return clip(2.0 * smirnov_sf(n, x));
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if nxsquared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        dmtw_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}

/// `ln(n! / n^n)` by Stirling's series (SciPy's `_log_nfactorial_div_n_pow_n`).
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    // B_{2j}/(2j)/(2j−1) for j = 8, …, 1, highest power first (np.polyval order).
    #[allow(clippy::excessive_precision)]
    const STIRLING: [f64; 8] = [
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    ];
    let rn = 1.0 / n;
    let y = rn / n;
    let mut poly = 0.0;
    for &c in &STIRLING {
        poly = poly * y + c;
    }
    let log_2pi = (2.0 * std::f64::consts::PI).ln();
    n.ln() / 2.0 - n + log_2pi / 2.0 + rn * poly
}

/// A dense square matrix, row-major.
struct Square {
    m: usize,
    a: Vec<f64>,
}

impl Square {
    fn zeros(m: usize) -> Square {
        Square {
            m,
            a: vec![0.0; m * m],
        }
    }

    fn identity(m: usize) -> Square {
        let mut s = Square::zeros(m);
        for i in 0..m {
            s.a[i * m + i] = 1.0;
        }
        s
    }

    fn at(&self, r: usize, c: usize) -> f64 {
        self.a[r * self.m + c]
    }

    fn set(&mut self, r: usize, c: usize, v: f64) {
        self.a[r * self.m + c] = v;
    }

    fn mul(&self, other: &Square) -> Square {
        let m = self.m;
        let mut out = Square::zeros(m);
        for i in 0..m {
            for k in 0..m {
                let aik = self.a[i * m + k];
                if aik == 0.0 {
                    continue;
                }
                let row = &other.a[k * m..(k + 1) * m];
                let dst = &mut out.a[i * m..(i + 1) * m];
                for (d, &b) in dst.iter_mut().zip(row) {
                    *d += aik * b;
                }
            }
        }
        out
    }
}

/// `P(D_n <= d)` by Durbin's matrix method as computed by Marsaglia, Tsang and Wang (SciPy's
/// `_kolmogn_DMTW`).
fn dmtw_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v: Vec<f64> = (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect();
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powf(m as f64) - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = Square::zeros(m);
    for i in 1..m {
        for r in (i - 1)..m {
            hm.set(r, i, w[r - (i - 1)]);
        }
    }
    for (r, &vr) in v.iter().enumerate() {
        hm.set(r, 0, vr);
    }
    for c in 0..m {
        hm.set(m - 1, c, v[m - 1 - c]);
    }

    let mut hpwr = Square::identity(m);
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = hpwr.mul(&hm);
            expnt += hexpnt;
        }
        hm = hm.mul(&hm);
        hexpnt *= 2;
        if hm.at(k - 1, k - 1).abs() > EP128 {
            for x in hm.a.iter_mut() {
                *x /= EP128;
            }
            hexpnt += E128;
        }
        nn /= 2;
    }
    let mut p = hpwr.at(k - 1, k - 1);
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    if expnt != 0 {
        p = ldexp(p, expnt);
    }
    p.clamp(0.0, 1.0)
}

/// SciPy's `_pomeranz_compute_j1j2`: the live column range of row `i`.
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// The full discrete convolution of `a` and `b` (`numpy.convolve(a, b)`).
fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

/// `P(D_n <= x)` by Pomeranz's recursion (SciPy's `_kolmogn_Pomeranz`). Entries that SciPy's
/// slicing would never reach read as zero here.
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![0.0; npwrs];
    let mut twogpower = vec![0.0; npwrs];
    let mut onem2gpower = vec![0.0; npwrs];
    gpower[0] = 1.0;
    twogpower[0] = 1.0;
    onem2gpower[0] = 1.0;
    let mut expnt: i64 = 0;
    let (g_over_n, two_g_over_n, one_minus_two_g_over_n) =
        (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_over_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / mf;
    }

    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s): (i64, i64) = (0, 0);
    let (mut j1, _) = pomeranz_j1j2(0, n, ll, ceilf, roundf);
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (next_j1, j2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        j1 = next_j1;
        let pwrs = if i == 1 || i == 2 * n + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let start = (k1 - v0s).clamp(0, npwrs as i64) as usize;
            let end = (k1 - v0s + ln2).clamp(start as i64, npwrs as i64) as usize;
            let kernel_len = (ln2 as usize).min(npwrs);
            let conv = convolve(&v0[start..end], &pwrs[..kernel_len]);
            let conv_start = j1 - k1;
            let conv_len = (j2 - j1 + 1).max(0) as usize;
            for (idx, slot) in v1.iter_mut().take(conv_len).enumerate() {
                let at = conv_start + idx as i64;
                *slot = usize::try_from(at)
                    .ok()
                    .and_then(|at| conv.get(at))
                    .copied()
                    .unwrap_or(0.0);
            }
            let max = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < max && max < EM128 {
                for x in v1.iter_mut() {
                    *x *= EP128;
                }
                expnt -= E128;
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = usize::try_from(n - v1s)
        .ok()
        .and_then(|at| v1.get(at))
        .copied()
        .unwrap_or(0.0);
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = ldexp(ans, expnt);
    }
    ans.clamp(0.0, 1.0)
}

/// The Pelz–Good approximation to `P(D_n <= x)` (SciPy's `_kolmogn_PelzGood`).
fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let pi2 = PI.powf(2.0);
    let pi4 = PI.powf(4.0);
    let pi6 = PI.powf(6.0);
    let sqrt2pi = (2.0 * PI).sqrt();

    let z = nf.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z.powf(2.0), z.powf(3.0), z.powf(4.0), z.powf(6.0));
    let qlog = -pi2 / 8.0 / zsquared;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();

    let k1a = -zsquared;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi4 * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi2 * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powf(8.0);

    let mut k0to3 = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = 2 * k - 1;
        let msquared = (m * m) as f64;
        let mfour = (m * m * m * m) as f64;
        let msix = (m * m * m * m * m * m) as f64;
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msquared,
            k2a + k2b * msquared + k2c * mfour,
            k3a + k3b * msquared + k3c * mfour + k3d * msix,
        ];
        for (acc, c) in k0to3.iter_mut().zip(coeffs) {
            *acc *= qpower;
            *acc += c;
        }
    }
    let divisors = [z, 6.0 * zfour, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (acc, div) in k0to3.iter_mut().zip(divisors) {
        *acc *= q;
        *acc *= sqrt2pi;
        *acc /= div;
    }

    let q = (-pi2 / 2.0 / zsquared).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2terms = Vec::with_capacity(maxk.max(0) as usize);
    let mut k3terms = Vec::with_capacity(maxk.max(0) as usize);
    for k in (1..=maxk).rev() {
        let ksquared = (k * k) as f64;
        let qpwer = q.powf(ksquared);
        let kspi = PI * k as f64;
        k2terms.push(ksquared * qpwer);
        k3terms.push((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwer);
    }
    let mut k2extra = super::numpy::pairwise_sum(&k2terms);
    k2extra *= pi2 * sqrt2pi / (-36.0 * zthree);
    k0to3[2] += k2extra;
    let mut k3extra = super::numpy::pairwise_sum(&k3terms);
    k3extra *= pi2 * sqrt2pi / (216.0 * zsix);
    k0to3[3] += k3extra;
    for (i, acc) in k0to3.iter_mut().enumerate() {
        *acc /= nf.powf(i as f64 / 2.0);
    }
    0.0 + k0to3[0] + k0to3[1] + k0to3[2] + k0to3[3]
}

/// `floor(n·x)` and the fractional part of `n·x`, both exact (Cephes' `modNX`): the product is
/// split into a rounded part and its exact error with a fused multiply-add.
fn mod_nx(n: u64, x: f64) -> (i64, f64) {
    let nf = n as f64;
    let p = nf * x;
    let e = nf.mul_add(x, -p);
    let mut floor = p.floor();
    let mut alpha = (p - floor) + e;
    if alpha < 0.0 {
        floor -= 1.0;
        alpha += 1.0;
    }
    if alpha >= 1.0 {
        floor += 1.0;
        alpha -= 1.0;
    }
    (floor as i64, alpha)
}

/// Cephes' `MINLOG`: `ln(2^-1075)`.
#[allow(clippy::excessive_precision)]
const MINLOG: f64 = -7.451332191019412076235245305675398106812E2;
/// Above this `n`, Cephes approximates `smirnov(n, x)`.
const SMIRNOV_MAX_COMPUTE_N: u64 = 1_000_000;

/// The one-sided Smirnov survival function `P(D_n^+ > x)` (`scipy.special.smirnov(n, x)`), by
/// the Birnbaum–Tingey sum
/// `x · Σ_{v=0}^{⌊n(1−x)⌋} C(n, v) (x + v/n)^(v−1) (1 − x − v/n)^(n−v)`,
/// with Cephes' special cases. The terms are formed in log space from the exact `floor(n·x)` and
/// fractional part, each from the previous one, and summed with a running scale.
fn smirnov_sf(n: u64, x: f64) -> f64 {
    if !(n > 0 && (0.0..=1.0).contains(&x)) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let ni = n as i64;
    let (nxfl, alpha) = mod_nx(n, x);
    let mut n1mxfl = ni - nxfl - if alpha == 0.0 { 0 } else { 1 };
    if alpha == 0.0 {
        n1mxfl -= 1;
    }
    // x <= 1/n: sf = 1 − x (1 + x)^(n−1).
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = ((nf - 1.0) * x.ln_1p()).exp();
        return 1.0 - x * t;
    }
    if -2.0 * nf * x * x < MINLOG {
        return 0.0;
    }
    // x >= 1 − 1/n: sf = (1 − x)^n.
    if nxfl >= ni - 1 {
        return (1.0 - x).powf(nf);
    }
    if n > SMIRNOV_MAX_COMPUTE_N {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 {
            logp.exp()
        } else {
            1.0 - (-logp.exp_m1())
        };
    }

    let n_terms = n1mxfl + 1;
    let vmid = ni / 2;
    // ln A_v is built from ln A_0 by adding ln(A_v / A_{v-1}), whose pieces are all of order 1:
    // forming each ln A_v directly would add and cancel logarithms of order n and lose
    // ~n·ε of relative precision. With y1_v = n (x + v/n) and y2_v = n (1 − x − v/n),
    // ln(A_v / A_{v−1}) = ln((n−v+1) y1_v / (v y2_{v−1}))
    //                     + (v−2) ln(1 + 1/y1_{v−1}) + (n−v) ln(1 − 1/y2_{v−1}).
    let mut log_a = nf * (-x).ln_1p() - x.ln(); // A_0 = (1 − x)^n / x
    let mut y1_prev = nxfl as f64 + alpha;
    let mut y2_prev = (ni - nxfl) as f64 - alpha;
    let mut scale = log_a; // the sum is `sum · e^scale`
    let mut sum = 1.0;
    for v in 1..n_terms {
        let y1 = (nxfl + v) as f64 + alpha;
        let y2 = (ni - nxfl - v) as f64 - alpha;
        let ratio = ((ni - v + 1) as f64 * y1) / (v as f64 * y2_prev);
        log_a += ratio.ln()
            + (v - 2) as f64 * (1.0 / y1_prev).ln_1p()
            + (ni - v) as f64 * (-1.0 / y2_prev).ln_1p();
        y1_prev = y1;
        y2_prev = y2;
        let relative = if log_a > scale {
            sum = sum * (scale - log_a).exp() + 1.0;
            scale = log_a;
            1.0 / sum
        } else {
            let term = (log_a - scale).exp();
            sum += term;
            term / sum
        };
        if relative == 0.0 && v > vmid {
            break;
        }
        // Cephes' stopping rule: the remaining terms cannot change the sum.
        if 4.0 * (n_terms - v) as f64 * relative < f64::EPSILON && v != n_terms - 1 {
            break;
        }
    }
    if sum == 0.0 {
        return 0.0;
    }
    (scale + (x * sum).ln()).exp().clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn statistic_handles_ties_and_sides() {
        let d = ks_statistic_sorted(&[1.0, 2.0, 2.0, 3.0], &[2.0, 2.0, 4.0]);
        // After 2: 3/4 vs 2/3; after 1: 1/4 vs 0; after 3: 1 vs 2/3 -> 1/3.
        assert!((d - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(ks_statistic_sorted(&[1.0], &[1.0]), 0.0);
        assert_eq!(ks_statistic_sorted(&[0.0], &[1.0]), 1.0);
    }

    #[test]
    fn identical_samples_have_pvalue_one() {
        let v: Vec<f64> = (0..50).map(f64::from).collect();
        let ks = ks_2samp(&v, &v).unwrap();
        assert_eq!(ks.statistic, 0.0);
        assert_eq!(ks.pvalue, 1.0);
        assert_eq!(ks.method, KsMethod::Exact);
    }

    #[test]
    fn single_values() {
        // scipy.stats.ks_2samp([0.0], [1.0]) -> statistic 1.0, pvalue 1.0 (exact, n = 1).
        let ks = ks_2samp(&[0.0], &[1.0]).unwrap();
        assert_eq!(ks.statistic, 1.0);
        assert_eq!(ks.pvalue, 1.0);
    }

    #[test]
    fn empty_and_nan_inputs_are_errors_not_panics() {
        assert_eq!(ks_2samp(&[], &[1.0]), Err(DriftError::EmptyReference));
        assert_eq!(ks_2samp(&[1.0], &[f64::NAN]), Err(DriftError::EmptyCurrent));
        let with_nan = ks_2samp(&[1.0, f64::NAN, 2.0], &[1.5, f64::INFINITY]).unwrap();
        let without = ks_2samp(&[1.0, 2.0], &[1.5]).unwrap();
        assert_eq!(with_nan, without);
    }

    #[test]
    fn kstwo_support_edges() {
        assert_eq!(kstwo_sf(0.0, 10), 1.0);
        assert_eq!(kstwo_sf(0.05, 10), 1.0);
        assert_eq!(kstwo_sf(1.0, 10), 0.0);
        assert!(kstwo_sf(0.3, 0).is_nan());
        // n = 1: D_1 is uniform on [1/2, 1]; sf(x) = 2 (1 − x).
        assert!(close(kstwo_sf(0.75, 1), 0.5, 1e-15));
    }

    #[test]
    fn smirnov_closed_forms() {
        // x <= 1/n and x >= 1 − 1/n branches against their formulas.
        let n = 20u64;
        let x = 0.04;
        assert!(close(smirnov_sf(n, x), 1.0 - x * (1.0 + x).powi(19), 1e-14));
        let x = 0.97;
        assert!(close(smirnov_sf(n, x), (1.0 - x).powi(20), 1e-12));
        assert!(close(smirnov_sf(1, 0.3), 0.7, 1e-15));
    }

    #[test]
    fn mod_nx_is_exact() {
        // 3 * 0.1 = 0.30000000000000004 in binary but 0.1 is slightly above 1/10, so
        // floor(3 * 0.1) = 0 with a fractional part just above 0.3.
        let (fl, alpha) = mod_nx(3, 0.1);
        assert_eq!(fl, 0);
        assert!(close(alpha, 0.3, 1e-15));
        let (fl, alpha) = mod_nx(10, 0.5);
        assert_eq!((fl, alpha), (5, 0.0));
    }

    #[test]
    fn ldexp_reaches_extremes() {
        assert_eq!(ldexp(1.0, 10), 1024.0);
        assert_eq!(ldexp(EP128, -1000), 2f64.powi(-872));
        assert_eq!(ldexp(1.0, -1100), 0.0);
    }
}
