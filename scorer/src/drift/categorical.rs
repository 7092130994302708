//! Statistics of a categorical column — or of a numeric column treated value by value: counts per
//! category, PSI, Jensen–Shannon distance, Pearson's chi-square test and the two-proportion
//! z-test.
//!
//! Missing values (`None` labels, non-finite numbers) are skipped. Categories are kept in sorted
//! order (strings by code point, numbers numerically), which is also the order Evidently's
//! z-test uses to pick its reference value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DriftError;
use super::divergence::{LogBase, jensenshannon, population_stability_index};
use super::special::{chi2_sf, normal_cdf};

/// A value that can serve as a category label; `None` marks a missing value.
pub trait Label {
    /// The label, or `None` if the value is missing.
    fn label(&self) -> Option<&str>;
}

impl Label for String {
    fn label(&self) -> Option<&str> {
        Some(self)
    }
}

impl Label for &str {
    fn label(&self) -> Option<&str> {
        Some(self)
    }
}

impl Label for Option<String> {
    fn label(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl Label for Option<&str> {
    fn label(&self) -> Option<&str> {
        *self
    }
}

/// The count of every label of `values`, missing ones skipped.
pub(crate) fn count_labels<L: Label>(values: &[L]) -> BTreeMap<&str, u64> {
    let mut counts = BTreeMap::new();
    for label in values.iter().filter_map(Label::label) {
        *counts.entry(label).or_default() += 1;
    }
    counts
}

/// [`count_labels`] as `(label, count)` pairs sorted by label.
pub(crate) fn label_counts<L: Label>(values: &[L]) -> Vec<(String, u64)> {
    count_labels(values)
        .into_iter()
        .map(|(label, n)| (label.to_owned(), n))
        .collect()
}

/// One category of a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Category {
    /// A value of a numeric column (never `NaN` or infinite; `-0.0` is stored as `0.0`).
    Number(f64),
    /// A label of a categorical column.
    Label(String),
}

/// An `f64` ordered by value, for use as a map key (callers never insert `NaN`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedNumber(f64);

impl Eq for OrderedNumber {}

impl PartialOrd for OrderedNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Counts per category in the reference and the current sample, over the union of the
/// categories of both (the sufficient statistic of every categorical test here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryCounts {
    categories: Vec<Category>,
    reference: Vec<u64>,
    current: Vec<u64>,
    reference_total: u64,
    current_total: u64,
}

impl CategoryCounts {
    /// Counts labels; missing labels are skipped.
    ///
    /// ```
    /// use refit_scorer::drift::CategoryCounts;
    /// let reference = ["a", "b", "b"];
    /// let current = ["b", "c"];
    /// let counts = CategoryCounts::from_labels(&reference, &current).unwrap();
    /// assert_eq!(counts.reference_counts(), &[1, 2, 0]);
    /// assert_eq!(counts.current_counts(), &[0, 1, 1]);
    /// ```
    pub fn from_labels<L: Label>(
        reference: &[L],
        current: &[L],
    ) -> Result<CategoryCounts, DriftError> {
        let mut map: BTreeMap<&str, [u64; 2]> = BTreeMap::new();
        for (side, values) in [reference, current].into_iter().enumerate() {
            for label in values.iter().filter_map(Label::label) {
                map.entry(label).or_default()[side] += 1;
            }
        }
        Self::from_map(
            map.into_iter()
                .map(|(k, v)| (Category::Label(k.to_owned()), v)),
        )
    }

    /// The counts of labels already counted: the reference's as `(label, count)` sorted by label
    /// (as [`label_counts`] gives them), the current sample's in any order.
    pub(crate) fn from_label_counts(
        reference: &[(String, u64)],
        current: &BTreeMap<&str, u64>,
    ) -> Result<CategoryCounts, DriftError> {
        let mut map: BTreeMap<&str, [u64; 2]> = reference
            .iter()
            .map(|(label, n)| (label.as_str(), [*n, 0]))
            .collect();
        for (label, &n) in current {
            map.entry(label).or_default()[1] += n;
        }
        Self::from_map(
            map.into_iter()
                .map(|(k, v)| (Category::Label(k.to_owned()), v)),
        )
    }

    /// Counts the distinct values of numeric samples; non-finite values are skipped and `-0.0`
    /// counts as `0.0`.
    pub fn from_numbers(reference: &[f64], current: &[f64]) -> Result<CategoryCounts, DriftError> {
        let mut map: BTreeMap<OrderedNumber, [u64; 2]> = BTreeMap::new();
        for (side, values) in [reference, current].into_iter().enumerate() {
            for &x in values.iter().filter(|x| x.is_finite()) {
                // `x + 0.0` turns -0.0 into 0.0 and leaves every other value alone.
                map.entry(OrderedNumber(x + 0.0)).or_default()[side] += 1;
            }
        }
        Self::from_map(map.into_iter().map(|(k, v)| (Category::Number(k.0), v)))
    }

    fn from_map(
        entries: impl Iterator<Item = (Category, [u64; 2])>,
    ) -> Result<CategoryCounts, DriftError> {
        let mut counts = CategoryCounts {
            categories: Vec::new(),
            reference: Vec::new(),
            current: Vec::new(),
            reference_total: 0,
            current_total: 0,
        };
        for (category, [r, c]) in entries {
            counts.categories.push(category);
            counts.reference.push(r);
            counts.current.push(c);
            counts.reference_total += r;
            counts.current_total += c;
        }
        if counts.reference_total == 0 {
            return Err(DriftError::EmptyReference);
        }
        if counts.current_total == 0 {
            return Err(DriftError::EmptyCurrent);
        }
        Ok(counts)
    }

    /// The categories seen in either sample, sorted.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// Number of categories (`pandas.concat([reference, current]).nunique()`).
    pub fn len(&self) -> usize {
        self.categories.len()
    }

    /// Whether there are no categories (never true for a value built by this module).
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    /// Reference count per category.
    pub fn reference_counts(&self) -> &[u64] {
        &self.reference
    }

    /// Current count per category.
    pub fn current_counts(&self) -> &[u64] {
        &self.current
    }

    /// Number of (non-missing) reference values.
    pub fn reference_total(&self) -> u64 {
        self.reference_total
    }

    /// Number of (non-missing) current values.
    pub fn current_total(&self) -> u64 {
        self.current_total
    }

    /// Share of the reference in each category (`count / total`).
    pub fn reference_shares(&self) -> Vec<f64> {
        shares(&self.reference, self.reference_total)
    }

    /// Share of the current sample in each category.
    pub fn current_shares(&self) -> Vec<f64> {
        shares(&self.current, self.current_total)
    }

    /// PSI over the categories, empty shares filled as Evidently does (`psi` stat test).
    pub fn psi(&self) -> f64 {
        population_stability_index(&self.reference_shares(), &self.current_shares())
    }

    /// Jensen–Shannon distance over the categories (`jensenshannon` stat test).
    pub fn jensenshannon(&self, base: LogBase) -> f64 {
        jensenshannon(&self.reference_shares(), &self.current_shares(), base)
    }

    /// Pearson's chi-square goodness-of-fit test of the current counts against the reference
    /// proportions: Evidently's `chisquare` stat test, i.e. `scipy.stats.chisquare(f_obs =
    /// current counts, f_exp = reference counts · n_cur / n_ref)` with `k − 1` degrees of freedom.
    ///
    /// A category absent from the reference but present in the current sample has an expected
    /// count of 0: the statistic is `+inf` and the p-value 0, as in SciPy. With a single category
    /// SciPy's p-value is `NaN` (zero degrees of freedom); here it is 1, as the two samples are
    /// then identical in distribution.
    pub fn chisquare(&self) -> ChiSquare {
        let k_norm = self.current_total as f64 / self.reference_total as f64;
        let terms: Vec<f64> = self
            .reference
            .iter()
            .zip(&self.current)
            .map(|(&r, &c)| {
                let expected = r as f64 * k_norm;
                let d = c as f64 - expected;
                d * d / expected
            })
            .collect();
        let statistic = super::numpy::pairwise_sum(&terms);
        let dof = self.categories.len().saturating_sub(1);
        let pvalue = if dof == 0 {
            1.0
        } else {
            chi2_sf(statistic, dof as f64)
        };
        ChiSquare {
            statistic,
            pvalue,
            dof,
        }
    }

    /// The two-proportion z-test with pooled variance, two-sided: Evidently's `z` stat test.
    ///
    /// The "positive" value is every category but the first in sorted order (for a binary
    /// column, the larger value). When both samples hold one and the same single value the
    /// p-value is 1 and the statistic 0 (Evidently's special case); otherwise
    /// `z = (p_ref − p_cur) / sqrt(P (1 − P) (1/n_ref + 1/n_cur))` and the p-value is
    /// `2 (1 − Φ(|z|))`, computed in that order as Evidently does.
    pub fn z_test(&self) -> ZTest {
        if self.categories.len() <= 1 {
            return ZTest {
                statistic: 0.0,
                pvalue: 1.0,
            };
        }
        let n1 = self.reference_total as f64;
        let n2 = self.current_total as f64;
        let p1 = (self.reference_total - self.reference[0]) as f64 / n1;
        let p2 = (self.current_total - self.current[0]) as f64 / n2;
        let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
        let statistic = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
        let pvalue = 2.0 * (1.0 - normal_cdf(statistic.abs()));
        ZTest { statistic, pvalue }
    }
}

fn shares(counts: &[u64], total: u64) -> Vec<f64> {
    counts.iter().map(|&c| c as f64 / total as f64).collect()
}

/// Result of a chi-square test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChiSquare {
    /// Pearson's statistic `Σ (obs − exp)² / exp`.
    pub statistic: f64,
    /// `P(χ²_dof > statistic)`.
    pub pvalue: f64,
    /// Degrees of freedom, `categories − 1`.
    pub dof: usize,
}

/// Result of a two-proportion z-test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZTest {
    /// The z statistic (reference share minus current share of the positive value, scaled).
    pub statistic: f64,
    /// The two-sided p-value.
    pub pvalue: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abc() -> CategoryCounts {
        let mut reference = vec!["a"; 50];
        reference.extend(vec!["b"; 30]);
        reference.extend(vec!["c"; 20]);
        let mut current = vec!["a"; 30];
        current.extend(vec!["b"; 30]);
        current.extend(vec!["c"; 40]);
        CategoryCounts::from_labels(&reference, &current).unwrap()
    }

    #[test]
    fn counts_skip_missing_labels() {
        let reference = vec![Some("x".to_owned()), None, Some("y".to_owned())];
        let current = vec![None, Some("y".to_owned())];
        let counts = CategoryCounts::from_labels(&reference, &current).unwrap();
        assert_eq!(counts.reference_total(), 2);
        assert_eq!(counts.current_total(), 1);
        assert_eq!(
            counts.categories(),
            &[Category::Label("x".into()), Category::Label("y".into())]
        );
        let none: Vec<Option<String>> = vec![None];
        assert_eq!(
            CategoryCounts::from_labels(&none, &current),
            Err(DriftError::EmptyReference)
        );
    }

    #[test]
    fn numbers_merge_signed_zeros() {
        let counts = CategoryCounts::from_numbers(&[-0.0, 1.0, f64::NAN], &[0.0]).unwrap();
        assert_eq!(
            counts.categories(),
            &[Category::Number(0.0), Category::Number(1.0)]
        );
        assert_eq!(counts.reference_counts(), &[1, 1]);
        assert_eq!(counts.current_counts(), &[1, 0]);
    }

    #[test]
    fn chisquare_of_the_reference_case() {
        let chi = abc().chisquare();
        assert_eq!(chi.statistic, 28.0);
        assert_eq!(chi.dof, 2);
        assert!((chi.pvalue - 8.315_287_191_035_68e-7).abs() < 1e-20);
    }

    #[test]
    fn chisquare_with_a_category_new_in_current() {
        let chi = CategoryCounts::from_labels(&["a", "b"], &["a", "c"])
            .unwrap()
            .chisquare();
        assert_eq!(chi.statistic, f64::INFINITY);
        assert_eq!(chi.pvalue, 0.0);
    }

    #[test]
    fn chisquare_with_one_category() {
        let chi = CategoryCounts::from_labels(&["a"], &["a", "a"])
            .unwrap()
            .chisquare();
        assert_eq!((chi.statistic, chi.pvalue, chi.dof), (0.0, 1.0, 0));
    }

    #[test]
    fn z_test_when_both_samples_are_the_same_constant() {
        let z = CategoryCounts::from_numbers(&[1.0; 5], &[1.0; 3])
            .unwrap()
            .z_test();
        assert_eq!((z.statistic, z.pvalue), (0.0, 1.0));
    }

    #[test]
    fn z_test_when_samples_are_different_constants() {
        // p1 = 0, p2 = 1, P = 0.5: z = -1 / sqrt(0.25 * (1/4 + 1/4)) = -2.828…
        let z = CategoryCounts::from_numbers(&[0.0; 4], &[1.0; 4])
            .unwrap()
            .z_test();
        assert!((z.statistic + 8f64.sqrt()).abs() < 1e-15);
        assert!((z.pvalue - 2.0 * (1.0 - normal_cdf(8f64.sqrt()))).abs() < 1e-18);
    }
}
