//! Realized metrics: when labels arrive for records the stream scored, the champion's metrics on
//! them, computed exactly as on a training holdout ([`evaluate`]), one stored row per window of
//! labelled scores (the dataset's drift window size in rows, else 1,000), per model version.
//!
//! Windows fill in the order labels arrive; an open window lives in the process (like the drift
//! monitors' windows) and is lost on restart. A label for a record no champion scored, a label
//! that is missing, or a class the model does not know is left out.
//!
//! **Post-promotion watch.** When a spec has a [`Watch`], every stored window of its current
//! champion is followed by a comparison with the predecessor (the `previous` alias): once the
//! champion has `windows` windows, their mean metric against the predecessor's last `windows`
//! windows; worse by more than the margin rolls back to the predecessor (ledger trigger `watch`,
//! with both sides' windows as the cause).

use std::collections::HashMap;
use std::sync::Arc;

use refit_registry::Store;
use refit_registry::datasets::{StoredLabels, Value};
use refit_registry::realized::{NewRealized, Realized};
use refit_scorer::serving::ModelServer;
use refit_scorer::{Predictions, Task};

use refit_registry::ledger::LedgerEntry;

use crate::evaluate::{MetricName, evaluate};
use crate::prepare::class_key;
use crate::spec::{TrainingSpec, Watch};
use crate::trainer::trainer_actor;

/// Rows of a window when the dataset's drift windows are not counted in rows.
pub const DEFAULT_WINDOW_ROWS: usize = 1_000;

/// One model version's open window.
struct Window {
    task: Task,
    classes: Vec<String>,
    truth: Vec<f64>,
    values: Vec<f64>,
    probabilities: Vec<f64>,
    start: i64,
    end: i64,
}

impl Window {
    fn len(&self) -> usize {
        self.truth.len()
    }
}

/// The open windows of every (dataset, model, version); cheap to share behind an `Arc`.
pub struct RealizedMonitors {
    store: Store,
    /// The server's loaded models: a window reads its version's task and classes from there.
    models: Arc<ModelServer>,
    windows: tokio::sync::Mutex<HashMap<(String, String, i64), Window>>,
}

impl RealizedMonitors {
    /// Monitors storing their windows in `store`, reading versions through `models`.
    pub fn new(store: Store, models: Arc<ModelServer>) -> RealizedMonitors {
        RealizedMonitors {
            store,
            models,
            windows: Default::default(),
        }
    }

    /// Adds labels just stored for `dataset` to the windows of the champion versions that scored
    /// those records; stores and returns every window that filled.
    pub async fn observe_labels(
        &self,
        dataset: &str,
        labels: &[StoredLabels],
    ) -> Result<Vec<Realized>, String> {
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(String, i64)> = labels.iter().map(|(m, t, _)| (m.clone(), *t)).collect();
        let scores = self
            .store
            .champion_scores_of(dataset, &keys)
            .await
            .map_err(|e| e.to_string())?;
        if scores.is_empty() {
            return Ok(Vec::new());
        }
        let by_key: HashMap<(&str, i64), &Vec<Value>> = labels
            .iter()
            .map(|(m, t, v)| ((m.as_str(), *t), v))
            .collect();
        let schema = self
            .store
            .get_dataset(dataset)
            .await
            .map_err(|e| e.to_string())?
            .schema;
        let specs = self.store.list_specs().await.map_err(|e| e.to_string())?;
        let window_rows = match self.store.drift_settings(dataset).await {
            Ok(s) => s
                .window_rows
                .map_or(DEFAULT_WINDOW_ROWS, |n| n.max(1) as usize),
            Err(_) => DEFAULT_WINDOW_ROWS,
        };
        let mut windows = self.windows.lock().await;
        let mut stored = Vec::new();
        for score in &scores {
            // The label the model predicts: its spec's target on this dataset.
            let Some(spec) = specs
                .iter()
                .find(|s| s.model_name == score.model && s.dataset == dataset)
            else {
                continue;
            };
            let Ok(spec) = serde_json::from_value::<TrainingSpec>(spec.definition.clone()) else {
                continue;
            };
            let Some((target, _)) = schema.label(&spec.target) else {
                continue;
            };
            let Some(value) = by_key
                .get(&(score.machine_id.as_str(), score.ts))
                .and_then(|v| v.get(target))
            else {
                continue;
            };
            let key = (dataset.to_string(), score.model.clone(), score.version);
            if !windows.contains_key(&key) {
                let (task, classes) = self.model_info(&score.model, score.version).await?;
                windows.insert(
                    key.clone(),
                    Window {
                        task,
                        classes,
                        truth: Vec::new(),
                        values: Vec::new(),
                        probabilities: Vec::new(),
                        start: i64::MAX,
                        end: i64::MIN,
                    },
                );
            }
            let window = windows.get_mut(&key).expect("inserted above");
            if !add(window, value, score) {
                continue;
            }
            window.start = window.start.min(score.ts);
            window.end = window.end.max(score.ts);
            if window.len() >= window_rows {
                let full = windows.remove(&key).expect("present");
                stored.push(
                    self.store_window(dataset, &score.model, score.version, full)
                        .await?,
                );
                if let Some(watch) = &spec.watch
                    && let Some(entry) = self.watch(watch, &score.model, score.version).await?
                {
                    tracing::warn!(
                        model = %score.model,
                        version = score.version,
                        ledger = entry.id,
                        "post-promotion watch rolled back"
                    );
                }
            }
        }
        Ok(stored)
    }

    /// The post-promotion watch of `model` after a window of `version` was stored: the rollback's
    /// ledger entry when it rolled back.
    async fn watch(
        &self,
        watch: &Watch,
        model: &str,
        version: i64,
    ) -> Result<Option<LedgerEntry>, String> {
        let store = &self.store;
        if store
            .champion_version(model)
            .await
            .map_err(|e| e.to_string())?
            != Some(version)
        {
            return Ok(None);
        }
        let previous = match store.get_model_version_by_alias(model, "previous").await {
            Ok(v) => v.version,
            Err(refit_registry::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let all = store
            .list_realized(Some(model), None, 1000)
            .await
            .map_err(|e| e.to_string())?;
        // Newest first: the champion's first windows are at the end of its list, the
        // predecessor's last ones at the start of its.
        let mut mine: Vec<&Realized> = all.iter().filter(|r| r.version == version).collect();
        mine.reverse();
        let theirs: Vec<&Realized> = all.iter().filter(|r| r.version == previous).collect();
        let n = watch.windows;
        if mine.len() < n || theirs.is_empty() {
            return Ok(None);
        }
        let (mine, theirs) = (&mine[..n], &theirs[..n.min(theirs.len())]);
        let (Some(now), Some(before)) = (mean(mine, watch.metric), mean(theirs, watch.metric))
        else {
            return Ok(None);
        };
        let worse = if watch.metric.higher_is_better() {
            now < before - watch.margin
        } else {
            now > before + watch.margin
        };
        if !worse {
            return Ok(None);
        }
        let reason = format!(
            "post-promotion watch: {} {now:.4} over version {version}'s first {} realized \
             window(s), {before:.4} over version {previous}'s last {}; margin {}",
            watch.metric,
            mine.len(),
            theirs.len(),
            watch.margin
        );
        let cause = serde_json::json!({
            "realized": mine.iter().map(|r| r.id).collect::<Vec<_>>(),
            "baseline": theirs.iter().map(|r| r.id).collect::<Vec<_>>(),
        });
        store
            .rollback(
                &trainer_actor(),
                model,
                Some(previous),
                Some(&reason),
                "watch",
                Some(cause),
            )
            .await
            .map(Some)
            .map_err(|e| e.to_string())
    }

    async fn model_info(&self, model: &str, version: i64) -> Result<(Task, Vec<String>), String> {
        let served = self
            .models
            .version(model, version)
            .await
            .map_err(|e| e.to_string())?;
        let info = served.inner.info();
        Ok((info.task, info.classes.clone()))
    }

    async fn store_window(
        &self,
        dataset: &str,
        model: &str,
        version: i64,
        w: Window,
    ) -> Result<Realized, String> {
        let predictions = Predictions {
            values: w.values,
            probabilities: w.task.is_classification().then_some(w.probabilities),
        };
        let metrics = evaluate(w.task, w.classes.len(), &w.truth, &predictions)
            .into_iter()
            .map(|(name, v)| (name.as_str().to_string(), serde_json::json!(v)))
            .collect();
        self.store
            .create_realized(&NewRealized {
                dataset: dataset.to_string(),
                model: model.to_string(),
                version,
                window_start: w.start,
                window_end: w.end,
                rows: w.truth.len() as i64,
                metrics,
            })
            .await
            .map_err(|e| e.to_string())
    }
}

/// Adds one labelled score to `w`; false when the label or the score cannot be used.
fn add(w: &mut Window, label: &Value, score: &refit_registry::scores::StoredScore) -> bool {
    if w.task.is_classification() {
        let index = |class: &str| w.classes.iter().position(|c| c == class);
        let Some(truth) = class_key(label).and_then(|c| index(&c)) else {
            return false;
        };
        let Some(predicted) = score.prediction.as_str().and_then(index) else {
            return false;
        };
        let Some(p) = &score.probabilities else {
            return false;
        };
        let row: Option<Vec<f64>> = w.classes.iter().map(|c| p.get(c)?.as_f64()).collect();
        let Some(row) = row else {
            return false;
        };
        w.truth.push(truth as f64);
        w.values.push(predicted as f64);
        w.probabilities.extend(row);
    } else {
        let (Value::Number(truth), Some(predicted)) = (label, score.prediction.as_f64()) else {
            return false;
        };
        w.truth.push(*truth);
        w.values.push(predicted);
    }
    true
}

/// The mean of `metric` over `windows` (those that have it); `None` when none has.
fn mean(windows: &[&Realized], metric: MetricName) -> Option<f64> {
    let values: Vec<f64> = windows
        .iter()
        .filter_map(|r| r.metrics.get(metric.as_str())?.as_f64())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
