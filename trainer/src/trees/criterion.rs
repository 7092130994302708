//! Impurity criteria: what a split search accumulates per sample and how it scores a split.

use super::ClassCriterion;

/// A split criterion over weighted samples.
///
/// The split search adds samples into a statistics vector of [`Criterion::width`] entries and
/// compares candidate splits by [`Criterion::proxy`], which orders splits as the true impurity
/// decrease does but is cheaper (scikit-learn's `proxy_impurity_improvement`).
pub(crate) trait Criterion: Sync {
    /// Entries of a statistics vector.
    fn width(&self) -> usize;

    /// Entries of a node's value (class probabilities or one regression value).
    fn n_outputs(&self) -> usize;

    /// Adds sample `s` with weight `w` to `stats`.
    fn add(&self, stats: &mut [f64], s: usize, w: f64);

    /// The proxy of splitting a node with statistics `total` into `left` (weight `wl`) and the
    /// rest (weight `wr`); larger is better.
    fn proxy(&self, left: &[f64], total: &[f64], wl: f64, wr: f64) -> f64;

    /// Fills `total` with the statistics of `samples`; returns their weight and impurity.
    fn summarize(&self, samples: &[u32], weights: &[f64], total: &mut [f64]) -> (f64, f64);

    /// Writes the value of a node with statistics `total` and weight `weight` to `out`.
    fn node_value(&self, total: &[f64], weight: f64, out: &mut [f64]);
}

/// Gini or entropy over encoded class labels; statistics are per-class weights.
pub(crate) struct Classification<'a> {
    pub(crate) codes: &'a [u32],
    pub(crate) n_classes: usize,
    pub(crate) kind: ClassCriterion,
}

impl Criterion for Classification<'_> {
    fn width(&self) -> usize {
        self.n_classes
    }

    fn n_outputs(&self) -> usize {
        self.n_classes
    }

    #[inline]
    fn add(&self, stats: &mut [f64], s: usize, w: f64) {
        stats[self.codes[s] as usize] += w;
    }

    #[inline]
    fn proxy(&self, left: &[f64], total: &[f64], wl: f64, wr: f64) -> f64 {
        match self.kind {
            // -(wl * gini_l + wr * gini_r) up to the constant node weight.
            ClassCriterion::Gini => {
                let (mut sl, mut sr) = (0.0, 0.0);
                for (&l, &t) in left.iter().zip(total) {
                    let r = t - l;
                    sl += l * l;
                    sr += r * r;
                }
                sl / wl + sr / wr
            }
            // -(wl * H_l + wr * H_r), with wl * H_l = wl ln wl - sum l ln l (natural log: the
            // base only scales the proxy).
            ClassCriterion::Entropy => {
                let mut sum = 0.0;
                for (&l, &t) in left.iter().zip(total) {
                    let r = t - l;
                    if l > 0.0 {
                        sum += l * l.ln();
                    }
                    if r > 0.0 {
                        sum += r * r.ln();
                    }
                }
                sum - wl * wl.ln() - wr * wr.ln()
            }
        }
    }

    fn summarize(&self, samples: &[u32], weights: &[f64], total: &mut [f64]) -> (f64, f64) {
        total.fill(0.0);
        for &s in samples {
            let s = s as usize;
            total[self.codes[s] as usize] += weights[s];
        }
        let weight: f64 = total.iter().sum();
        let impurity = match self.kind {
            ClassCriterion::Gini => {
                1.0 - total
                    .iter()
                    .map(|&c| (c / weight) * (c / weight))
                    .sum::<f64>()
            }
            ClassCriterion::Entropy => -total
                .iter()
                .filter(|&&c| c > 0.0)
                .map(|&c| (c / weight) * (c / weight).log2())
                .sum::<f64>(),
        };
        (weight, impurity)
    }

    fn node_value(&self, total: &[f64], weight: f64, out: &mut [f64]) {
        for (o, &c) in out.iter_mut().zip(total) {
            *o = c / weight;
        }
    }
}

/// Squared error over real targets; the statistic is the weighted sum of targets.
pub(crate) struct Regression<'a> {
    pub(crate) y: &'a [f64],
}

impl Criterion for Regression<'_> {
    fn width(&self) -> usize {
        1
    }

    fn n_outputs(&self) -> usize {
        1
    }

    #[inline]
    fn add(&self, stats: &mut [f64], s: usize, w: f64) {
        stats[0] += w * self.y[s];
    }

    /// `sum_l^2 / wl + sum_r^2 / wr`: the decrease of the weighted squared error up to a
    /// constant. Friedman's MSE (boosting's criterion in scikit-learn) differs from this only
    /// by that constant and a factor, so it picks the same splits.
    #[inline]
    fn proxy(&self, left: &[f64], total: &[f64], wl: f64, wr: f64) -> f64 {
        let sl = left[0];
        let sr = total[0] - sl;
        sl * sl / wl + sr * sr / wr
    }

    fn summarize(&self, samples: &[u32], weights: &[f64], total: &mut [f64]) -> (f64, f64) {
        let (mut weight, mut sum) = (0.0, 0.0);
        for &s in samples {
            let s = s as usize;
            weight += weights[s];
            sum += weights[s] * self.y[s];
        }
        // Two passes: a constant node gets an impurity of exactly zero and stops splitting.
        let mean = sum / weight;
        let squares: f64 = samples
            .iter()
            .map(|&s| {
                let d = self.y[s as usize] - mean;
                weights[s as usize] * d * d
            })
            .sum();
        total[0] = sum;
        (weight, squares / weight)
    }

    fn node_value(&self, total: &[f64], weight: f64, out: &mut [f64]) {
        out[0] = total[0] / weight;
    }
}
