//! Behaviour of the public learners on small synthetic data.

use ndarray::{Array1, Array2, array, s};

use super::rng::TreeRng;
use super::*;

/// Two well-separated blobs in two features, labels 3.0 and 8.0.
fn blobs(n: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let mut rng = TreeRng::new(seed);
    let mut x = Array2::zeros((n, 2));
    let mut y = Array1::zeros(n);
    for i in 0..n {
        let class = i % 2;
        let centre = if class == 0 { -5.0 } else { 5.0 };
        x[[i, 0]] = centre + rng.below(1000) as f64 / 500.0 - 1.0;
        x[[i, 1]] = rng.below(1000) as f64 / 100.0;
        y[i] = if class == 0 { 3.0 } else { 8.0 };
    }
    (x, y)
}

/// XOR on the corners of a square, repeated.
fn xor() -> (Array2<f64>, Array1<f64>) {
    let corners = [
        [0.0, 0.0, 0.0],
        [0.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
    ];
    let x = Array2::from_shape_fn((40, 2), |(i, j)| corners[i % 4][j]);
    let y = Array1::from_shape_fn(40, |i| corners[i % 4][2]);
    (x, y)
}

/// A noisy regression problem with an interaction: `y = 3 x0 + 2 sin(x1) x2 + noise`.
fn wavy(n: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let mut rng = TreeRng::new(seed);
    let x = Array2::from_shape_fn((n, 4), |_| rng.below(10_000) as f64 / 1000.0);
    let y = x
        .outer_iter()
        .map(|r| 3.0 * r[0] + 2.0 * r[1].sin() * r[2] + rng.below(1000) as f64 / 1000.0)
        .collect();
    (x, y)
}

fn accuracy(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    a.iter().zip(b).filter(|(p, q)| p == q).count() as f64 / a.len() as f64
}

fn rmse(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    (a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>() / a.len() as f64).sqrt()
}

#[test]
fn separable_classes_need_one_split() {
    let (x, y) = blobs(200, 1);
    let tree = TreeParams::new()
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(tree.classes(), &[3.0, 8.0]);
    assert_eq!(tree.depth(), 1);
    assert_eq!(tree.n_leaves(), 2);
    assert_eq!(tree.predict(x.view()), y);
    let proba = tree.predict_proba(array![[-5.0, 1.0], [5.0, 1.0]].view());
    assert_eq!(proba, array![[1.0, 0.0], [0.0, 1.0]]);
    assert_eq!(tree.feature_importances(), array![1.0, 0.0]);
}

#[test]
fn threshold_is_the_midpoint_between_neighbouring_values() {
    let x = array![[1.0], [3.0]];
    let y = array![0.0, 1.0];
    let tree = TreeParams::new()
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(
        tree.predict(array![[1.999], [2.0], [2.001]].view()),
        array![0.0, 0.0, 1.0]
    );
}

#[test]
fn xor_needs_depth_two() {
    let (x, y) = xor();
    for criterion in [ClassCriterion::Gini, ClassCriterion::Entropy] {
        let stump = TreeParams::new()
            .criterion(criterion)
            .max_depth(Some(1))
            .check()
            .unwrap()
            .fit_classifier(x.view(), y.view())
            .unwrap();
        assert!(accuracy(&stump.predict(x.view()), &y) <= 0.75);
        let tree = TreeParams::new()
            .criterion(criterion)
            .max_depth(Some(2))
            .check()
            .unwrap()
            .fit_classifier(x.view(), y.view())
            .unwrap();
        assert_eq!(tree.depth(), 2);
        assert_eq!(tree.predict(x.view()), y);
    }
}

#[test]
fn regression_tree_recovers_a_step_function() {
    let x = Array2::from_shape_fn((100, 1), |(i, _)| i as f64);
    let y = x.column(0).mapv(|v| {
        if v < 30.0 {
            1.0
        } else if v < 70.0 {
            -2.0
        } else {
            4.0
        }
    });
    let tree = TreeParams::new()
        .check()
        .unwrap()
        .fit_regressor(x.view(), y.view())
        .unwrap();
    assert_eq!(tree.n_leaves(), 3);
    assert_eq!(
        tree.predict(array![[29.4], [29.6], [69.4], [69.6]].view()),
        array![1.0, -2.0, -2.0, 4.0]
    );
    // A depth-1 tree takes the better single cut (at 69.5) and averages each side.
    let stump = TreeParams::new()
        .max_depth(Some(1))
        .check()
        .unwrap()
        .fit_regressor(x.view(), y.view())
        .unwrap();
    let left_mean = (30.0 * 1.0 + 40.0 * -2.0) / 70.0;
    assert_eq!(
        stump.predict(array![[0.0], [99.0]].view()),
        array![left_mean, 4.0]
    );
}

#[test]
fn growth_limits_are_respected() {
    let (x, y) = wavy(400, 2);
    let fit = |params: TreeParams| {
        params
            .check()
            .unwrap()
            .fit_regressor(x.view(), y.view())
            .unwrap()
    };
    assert_eq!(
        fit(TreeParams::new()).n_leaves(),
        400,
        "fully grown on distinct rows"
    );
    assert!(fit(TreeParams::new().max_depth(Some(4))).depth() <= 4);
    assert!(fit(TreeParams::new().min_samples_leaf(20)).n_leaves() <= 20);
    assert!(fit(TreeParams::new().min_samples_split(100)).n_leaves() < 40);
    let pruned = fit(TreeParams::new().min_impurity_decrease(0.01)).n_leaves();
    let more_pruned = fit(TreeParams::new().min_impurity_decrease(0.1)).n_leaves();
    assert!(
        2 <= more_pruned && more_pruned < pruned && pruned < 400,
        "{more_pruned} < {pruned}"
    );
}

#[test]
fn max_features_draws_differ_by_seed_only() {
    let (x, y) = wavy(300, 3);
    let fit = |seed| {
        TreeParams::new()
            .max_features(MaxFeatures::Count(1))
            .seed(seed)
            .max_depth(Some(3))
            .check()
            .unwrap()
            .fit_regressor(x.view(), y.view())
            .unwrap()
    };
    assert_eq!(fit(1), fit(1));
    assert!((2..20).any(|seed| fit(seed) != fit(1)));
}

#[test]
fn forest_is_deterministic_by_seed_whatever_the_threads() {
    let (x, y) = wavy(300, 4);
    let fit = |seed, threads| {
        ForestParams::new()
            .n_estimators(12)
            .seed(seed)
            .n_threads(threads)
            .check()
            .unwrap()
            .fit_regressor(x.view(), y.view())
            .unwrap()
    };
    let one = serde_json::to_vec(&fit(5, 1)).unwrap();
    assert_eq!(one, serde_json::to_vec(&fit(5, 2)).unwrap());
    assert_eq!(one, serde_json::to_vec(&fit(5, 3)).unwrap());
    assert_ne!(one, serde_json::to_vec(&fit(6, 2)).unwrap());
}

#[test]
fn forest_regressor_beats_a_single_tree_out_of_sample() {
    let (x, y) = wavy(1200, 5);
    let (train_x, test_x) = (x.slice(s![..1000, ..]), x.slice(s![1000.., ..]));
    let (train_y, test_y) = (y.slice(s![..1000]), y.slice(s![1000..]).to_owned());
    let tree = TreeParams::new()
        .check()
        .unwrap()
        .fit_regressor(train_x, train_y)
        .unwrap();
    let forest = ForestParams::new()
        .n_estimators(50)
        .check()
        .unwrap()
        .fit_regressor(train_x, train_y)
        .unwrap();
    assert_eq!(forest.n_trees(), 50);
    let (tree_rmse, forest_rmse) = (
        rmse(&tree.predict(test_x), &test_y),
        rmse(&forest.predict(test_x), &test_y),
    );
    assert!(
        forest_rmse < 0.85 * tree_rmse,
        "forest {forest_rmse} vs tree {tree_rmse}"
    );
    let importances = forest.feature_importances();
    assert!((importances.sum() - 1.0).abs() < 1e-12);
    assert!(
        importances[0] > importances[3] && importances[3] < 0.05,
        "{importances}"
    );
}

#[test]
fn forest_classifier_averages_probabilities() {
    let (x, y) = xor();
    let forest = ForestParams::new()
        .n_estimators(25)
        .max_features(Some(MaxFeatures::All))
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(forest.classes(), &[0.0, 1.0]);
    let proba = forest.predict_proba(x.view());
    for row in proba.outer_iter() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
    assert_eq!(forest.predict(x.view()), y);
    // Without bootstrap every tree sees the same data: probabilities are 0 or 1.
    let plain = ForestParams::new()
        .n_estimators(5)
        .bootstrap(false)
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert!(
        plain
            .predict_proba(x.view())
            .iter()
            .all(|&p| p == 0.0 || p == 1.0)
    );
}

#[test]
fn boosting_regressor_fits_residuals_stage_by_stage() {
    let (x, y) = wavy(600, 6);
    let fit = |n, subsample| {
        BoostingParams::new()
            .n_estimators(n)
            .subsample(subsample)
            .seed(3)
            .check()
            .unwrap()
            .fit_regressor(x.view(), y.view())
            .unwrap()
    };
    // One stage: the mean plus 0.1 times a depth-3 tree fit to y - mean.
    let one = fit(1, 1.0);
    let mean = y.mean().unwrap();
    let tree = TreeParams::new()
        .max_depth(Some(3))
        .check()
        .unwrap()
        .fit_regressor(x.view(), y.mapv(|v| v - mean).view())
        .unwrap();
    let expected = tree.predict(x.view()).mapv(|v| mean + 0.1 * v);
    assert!(rmse(&one.predict(x.view()), &expected) < 1e-9);

    let errors: Vec<f64> = [1, 10, 100]
        .iter()
        .map(|&n| rmse(&fit(n, 1.0).predict(x.view()), &y))
        .collect();
    assert!(
        errors[0] > errors[1] && errors[1] > errors[2] && errors[2] < 2.0,
        "{errors:?}"
    );
    let stochastic = fit(100, 0.5);
    assert_eq!(stochastic, fit(100, 0.5));
    assert!(rmse(&stochastic.predict(x.view()), &y) < 2.5);
    assert_ne!(stochastic, fit(100, 1.0));
}

#[test]
fn boosting_classifier_takes_newton_steps() {
    let (x, y) = blobs(200, 7);
    let model = BoostingParams::new()
        .n_estimators(1)
        .learning_rate(1.0)
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    // Balanced classes: init log-odds 0, p = 0.5, so a pure leaf moves by (y - p) / (p (1 - p))
    // = ±2 in one step.
    let raw = model.decision_function(array![[-5.0, 0.0], [5.0, 0.0]].view());
    assert!(
        (raw[[0, 0]] + 2.0).abs() < 1e-12 && (raw[[1, 0]] - 2.0).abs() < 1e-12,
        "{raw}"
    );
    let model = BoostingParams::new()
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(model.n_stages(), 100);
    assert_eq!(model.predict(x.view()), y);
    let proba = model.predict_proba(x.view());
    assert!(proba.iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(proba[[0, 0]] > 0.99 && proba[[1, 1]] > 0.99);
}

#[test]
fn boosting_classifier_handles_several_classes() {
    let (x, y) = wavy(600, 8);
    let labels = y.mapv(|v| (v / 10.0).floor().clamp(0.0, 3.0));
    let model = BoostingParams::new()
        .n_estimators(30)
        .check()
        .unwrap()
        .fit_classifier(x.view(), labels.view())
        .unwrap();
    assert_eq!(model.classes(), &[0.0, 1.0, 2.0, 3.0]);
    assert_eq!(model.n_stages(), 30);
    assert_eq!(model.decision_function(x.view()).ncols(), 4);
    let proba = model.predict_proba(x.view());
    for row in proba.outer_iter() {
        assert!((row.sum() - 1.0).abs() < 1e-9);
    }
    assert!(accuracy(&model.predict(x.view()), &labels) > 0.9);
    let one_class = Array1::zeros(600);
    assert_eq!(
        BoostingParams::new()
            .check()
            .unwrap()
            .fit_classifier(x.view(), one_class.view())
            .err(),
        Some(TreeError::TooFewClasses {
            needed: 2,
            found: 1
        })
    );
}

#[test]
fn serde_round_trip_preserves_predictions() {
    let (x, y) = blobs(150, 9);
    let (xr, yr) = wavy(150, 9);
    fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(model: &T) -> T {
        let bytes = serde_json::to_vec(model).unwrap();
        let back: T = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            serde_json::to_vec(&back).unwrap(),
            bytes,
            "re-serialization changed bytes"
        );
        back
    }
    let tree_c = TreeParams::new()
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(
        round_trip(&tree_c).predict_proba(x.view()),
        tree_c.predict_proba(x.view())
    );
    let tree_r = TreeParams::new()
        .check()
        .unwrap()
        .fit_regressor(xr.view(), yr.view())
        .unwrap();
    assert_eq!(
        round_trip(&tree_r).predict(xr.view()),
        tree_r.predict(xr.view())
    );
    let forest = ForestParams::new().n_estimators(5);
    let forest_c = forest
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(
        round_trip(&forest_c).predict_proba(x.view()),
        forest_c.predict_proba(x.view())
    );
    let forest_r = forest
        .check()
        .unwrap()
        .fit_regressor(xr.view(), yr.view())
        .unwrap();
    assert_eq!(
        round_trip(&forest_r).predict(xr.view()),
        forest_r.predict(xr.view())
    );
    let boost = BoostingParams::new().n_estimators(10);
    let boost_c = boost
        .check()
        .unwrap()
        .fit_classifier(x.view(), y.view())
        .unwrap();
    assert_eq!(
        round_trip(&boost_c).predict_proba(x.view()),
        boost_c.predict_proba(x.view())
    );
    let boost_r = boost
        .check()
        .unwrap()
        .fit_regressor(xr.view(), yr.view())
        .unwrap();
    assert_eq!(
        round_trip(&boost_r).predict(xr.view()),
        boost_r.predict(xr.view())
    );
}

#[test]
fn column_major_input_predicts_like_row_major() {
    let (x, y) = wavy(200, 10);
    let fortran = x.t().as_standard_layout().into_owned().reversed_axes();
    assert!(fortran.as_slice().is_none());
    let model = BoostingParams::new().n_estimators(20).check().unwrap();
    let from_c = model.fit_regressor(x.view(), y.view()).unwrap();
    let from_f = model.fit_regressor(fortran.view(), y.view()).unwrap();
    assert_eq!(from_c, from_f);
    assert_eq!(from_c.predict(fortran.view()), from_c.predict(x.view()));
}

#[test]
fn invalid_params_are_rejected_with_the_field_named() {
    let field = |err: TreeError| match err {
        TreeError::InvalidParam { field, .. } => field,
        other => panic!("unexpected {other}"),
    };
    assert_eq!(
        field(TreeParams::new().max_depth(Some(0)).check().unwrap_err()),
        "max_depth"
    );
    assert_eq!(
        field(TreeParams::new().min_samples_split(1).check().unwrap_err()),
        "min_samples_split"
    );
    assert_eq!(
        field(TreeParams::new().min_samples_leaf(0).check().unwrap_err()),
        "min_samples_leaf"
    );
    assert_eq!(
        field(
            TreeParams::new()
                .max_features(MaxFeatures::Fraction(1.5))
                .check()
                .unwrap_err()
        ),
        "max_features"
    );
    assert_eq!(
        field(
            TreeParams::new()
                .max_features(MaxFeatures::Count(0))
                .check()
                .unwrap_err()
        ),
        "max_features"
    );
    assert_eq!(
        field(
            TreeParams::new()
                .min_impurity_decrease(-1.0)
                .check()
                .unwrap_err()
        ),
        "min_impurity_decrease"
    );
    assert_eq!(
        field(ForestParams::new().n_estimators(0).check().unwrap_err()),
        "n_estimators"
    );
    assert_eq!(
        field(
            ForestParams::new()
                .max_samples(Some(0.0))
                .check()
                .unwrap_err()
        ),
        "max_samples"
    );
    assert_eq!(
        field(ForestParams::new().n_threads(0).check().unwrap_err()),
        "n_threads"
    );
    assert_eq!(
        field(
            BoostingParams::new()
                .learning_rate(f64::NAN)
                .check()
                .unwrap_err()
        ),
        "learning_rate"
    );
    assert_eq!(
        field(BoostingParams::new().subsample(1.01).check().unwrap_err()),
        "subsample"
    );
    let err = BoostingParams::new().subsample(0.0).check().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid hyperparameter `subsample`: must be in (0, 1], got 0"
    );

    // What needs the data is checked at fit.
    let (x, y) = wavy(20, 11);
    let too_many = TreeParams::new()
        .max_features(MaxFeatures::Count(5))
        .check()
        .unwrap();
    assert_eq!(
        field(too_many.fit_regressor(x.view(), y.view()).unwrap_err()),
        "max_features"
    );
    let valid = TreeParams::new().check().unwrap();
    assert_eq!(
        valid
            .fit_regressor(x.view(), y.slice(s![..19]))
            .unwrap_err(),
        TreeError::LengthMismatch {
            x_rows: 20,
            y_len: 19
        }
    );
    let mut bad_y = y.clone();
    bad_y[4] = f64::INFINITY;
    assert_eq!(
        valid.fit_classifier(x.view(), bad_y.view()).unwrap_err(),
        TreeError::NonFiniteTarget { row: 4 }
    );
}

#[test]
fn max_features_resolves_like_scikit_learn() {
    assert_eq!(MaxFeatures::All.resolve("f", 24).unwrap(), 24);
    assert_eq!(MaxFeatures::Sqrt.resolve("f", 24).unwrap(), 4);
    assert_eq!(MaxFeatures::Sqrt.resolve("f", 8).unwrap(), 2);
    assert_eq!(MaxFeatures::Log2.resolve("f", 24).unwrap(), 4);
    assert_eq!(MaxFeatures::Log2.resolve("f", 1).unwrap(), 1);
    assert_eq!(MaxFeatures::Fraction(0.3).resolve("f", 24).unwrap(), 7);
    assert_eq!(MaxFeatures::Fraction(0.01).resolve("f", 24).unwrap(), 1);
    assert_eq!(MaxFeatures::Count(3).resolve("f", 24).unwrap(), 3);
}
