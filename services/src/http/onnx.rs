//! `POST /api/v1/models/{name}/onnx`: an ONNX model a data scientist made elsewhere (e.g.
//! scikit-learn + skl2onnx), uploaded as a run's artifact the MLflow way, becomes a model version
//! bound to a dataset and a feature order — after refit has opened it and checked its inputs and
//! outputs against the dataset's schema, so a model that cannot score the dataset is refused
//! with the exact reason instead of failing later on live records.

use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt;
use refit_registry::Error as RegistryError;
use refit_registry::experiments::Tag;
use refit_registry::models::{ModelVersion, NewModelVersion};
use refit_registry::training::Job;
use refit_scorer::drift::{PROFILE_FILE, ProfileSampler, ReferenceProfile};
use refit_scorer::onnx::{OnnxModel, OnnxOptions};
use refit_scorer::serving::{ONNX_BINDING_FILE, ONNX_BINDING_FORMAT, OnnxBinding};
use refit_scorer::{FeatureFrame, Model, Task};
use refit_trainer::trainer::UPLOAD_TRIGGER;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Json, Path};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_onnx))
        .routes(routes!(bind_version))
}

/// An ONNX file already uploaded to a run, to register as a version of the model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterOnnx {
    /// The run whose artifacts hold the file.
    run_id: String,
    /// The file's path in the run's artifacts (default `model/model.onnx`).
    #[serde(default)]
    path: Option<String>,
    /// The dataset whose records the model scores.
    dataset: String,
    /// The dataset's features, in the order of the model's input columns.
    features: Vec<String>,
    /// `regression`, `binary` or `multiclass`; default: inferred from the outputs.
    #[serde(default)]
    task: Option<Task>,
    /// Class labels by probability column; default: the graph's own labels.
    #[serde(default)]
    classes: Option<Vec<String>>,
    /// Free text for the version.
    #[serde(default)]
    description: Option<String>,
    /// A snapshot of the dataset to take the drift reference profile from: its rows' feature
    /// values and the model's predictions on them (sampled above 10,000 rows with seed 42).
    /// Without it, the version is served but not monitored for drift.
    #[serde(default)]
    profile_snapshot: Option<i64>,
    /// A training spec of this model and dataset whose gate the version must pass: a job
    /// (trigger `upload`) evaluates it on the spec's holdout against the champion, and the
    /// ledger records the decision; promotion follows the gate as for a trained candidate.
    /// Without it the version is only registered.
    #[serde(default)]
    gate_spec: Option<String>,
}

/// The registered version and what it is bound to.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredOnnx {
    model_version: ModelVersion,
    binding: OnnxBindingView,
    /// The gate job, when `gate_spec` asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<Job>,
}

/// What binds the model to its dataset.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnnxBindingView {
    dataset: String,
    features: Vec<String>,
    task: Task,
    classes: Vec<String>,
}

#[utoipa::path(post, path = "/models/{name}/onnx", tag = "models", request_body = RegisterOnnx,
    params(("name" = String, Path, description = "Registered model (created if missing)")),
    responses((status = 201, description = "Checked and registered", body = RegisteredOnnx),
              (status = 400, description = "The model does not fit the dataset: the exact reason", body = ErrorBody),
              (status = 404, description = "No such run, file or dataset", body = ErrorBody),
              (status = 501, description = "ONNX Runtime is not available on this server", body = ErrorBody)))]
async fn register_onnx(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path(name): Path<String>,
    Json(b): Json<RegisterOnnx>,
) -> ApiResult<(StatusCode, axum::Json<RegisteredOnnx>)> {
    let path = b.path.unwrap_or_else(|| "model/model.onnx".into());
    let path = path.trim_matches('/').to_string();
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    let run = state.store.get_run(&b.run_id).await?;
    let root = run.info.artifact_root().ok_or_else(|| {
        ApiError::invalid(format!(
            "run {} keeps its artifacts outside refit",
            b.run_id
        ))
    })?;
    let directory = if dir.is_empty() {
        root
    } else {
        format!("{root}/{dir}")
    };
    let actor = caller.actor();
    let request = OnnxRequest {
        dataset: b.dataset,
        features: b.features,
        task: b.task,
        classes: b.classes,
        profile_snapshot: b.profile_snapshot,
        gate_spec: b.gate_spec,
    };
    let missing = format!(
        "run {} has no artifact '{path}'; upload the .onnx file there first",
        b.run_id
    );
    let (binding, gate_spec) =
        check_and_bind(&state, &actor, &name, (&directory, file), missing, request).await?;
    match state.store.get_registered_model(&name).await {
        Ok(_) => {}
        Err(RegistryError::NotFound(_)) => {
            state
                .store
                .create_registered_model(&actor, &name, None, &[])
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let version = state
        .store
        .create_model_version(
            &actor,
            &name,
            NewModelVersion {
                source: format!("runs:/{}/{dir}", b.run_id),
                run_id: Some(b.run_id.clone()),
                run_link: None,
                description: b.description,
                tags: binding_tags(&binding),
            },
        )
        .await?;
    let job = gate(&state, &actor, gate_spec, version.version).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RegisteredOnnx::new(version, binding, job)),
    ))
}

/// An ONNX file among a model version's files (one registered through MLflow's client, say),
/// to bind to a dataset so that refit can serve it and gate it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindOnnx {
    /// The file, relative to the version's directory (default `model.onnx`, where MLflow's ONNX
    /// flavor puts it).
    #[serde(default)]
    file: Option<String>,
    /// The dataset whose records the model scores.
    dataset: String,
    /// The dataset's features, in the order of the model's input columns.
    features: Vec<String>,
    /// `regression`, `binary` or `multiclass`; default: inferred from the outputs.
    #[serde(default)]
    task: Option<Task>,
    /// Class labels by probability column; default: the graph's own labels.
    #[serde(default)]
    classes: Option<Vec<String>>,
    /// A snapshot of the dataset to take the drift reference profile from (see `RegisterOnnx`).
    #[serde(default)]
    profile_snapshot: Option<i64>,
    /// A training spec of this model and dataset whose gate the version must pass (see
    /// `RegisterOnnx`).
    #[serde(default)]
    gate_spec: Option<String>,
}

#[utoipa::path(post, path = "/models/{name}/versions/{version}/onnx", tag = "models", request_body = BindOnnx,
    params(("name" = String, Path, description = "Registered model"), ("version" = i64, Path, description = "Version")),
    responses((status = 200, description = "Checked and bound; gated when asked", body = RegisteredOnnx),
              (status = 400, description = "The model does not fit the dataset, or its files are not in refit", body = ErrorBody),
              (status = 404, description = "No such version, file or dataset", body = ErrorBody),
              (status = 501, description = "ONNX Runtime is not available on this server", body = ErrorBody)))]
async fn bind_version(
    State(state): State<AppState>,
    caller: Can<can::WriteModels>,
    Path((name, number)): Path<(String, i64)>,
    Json(b): Json<BindOnnx>,
) -> ApiResult<axum::Json<RegisteredOnnx>> {
    let version = state.store.get_model_version(&name, number).await?;
    let directory = state
        .store
        .version_directory(&version)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "version {number} of '{name}' has source '{}', whose files are not in refit",
                version.source
            ))
        })?;
    let file = b.file.unwrap_or_else(|| "model.onnx".into());
    let actor = caller.actor();
    let request = OnnxRequest {
        dataset: b.dataset,
        features: b.features,
        task: b.task,
        classes: b.classes,
        profile_snapshot: b.profile_snapshot,
        gate_spec: b.gate_spec,
    };
    let file = file.trim_matches('/');
    let missing = format!("version {number} of '{name}' has no file '{file}'");
    let (binding, gate_spec) =
        check_and_bind(&state, &actor, &name, (&directory, file), missing, request).await?;
    for tag in binding_tags(&binding) {
        state
            .store
            .set_model_version_tag(&actor, &name, number, &tag.key, &tag.value)
            .await?;
    }
    let job = gate(&state, &actor, gate_spec, number).await?;
    let version = state.store.get_model_version(&name, number).await?;
    Ok(axum::Json(RegisteredOnnx::new(version, binding, job)))
}

impl RegisteredOnnx {
    fn new(model_version: ModelVersion, binding: OnnxBinding, job: Option<Job>) -> Self {
        RegisteredOnnx {
            job,
            model_version,
            binding: OnnxBindingView {
                dataset: binding.dataset,
                features: binding.features,
                task: binding.task,
                classes: binding.classes,
            },
        }
    }
}

/// What an ONNX model is bound with, whichever way it arrived.
struct OnnxRequest {
    dataset: String,
    features: Vec<String>,
    task: Option<Task>,
    classes: Option<Vec<String>>,
    profile_snapshot: Option<i64>,
    gate_spec: Option<String>,
}

/// The version tags that say what an ONNX version is bound to.
fn binding_tags(binding: &OnnxBinding) -> Vec<Tag> {
    let tag = |key: &str, value: String| Tag {
        key: key.to_string(),
        value,
    };
    vec![
        tag("refit.format", "onnx".into()),
        tag("refit.dataset", binding.dataset.clone()),
        tag("refit.features", binding.features.join(",")),
    ]
}

/// Opens the ONNX file `file` in store directory `directory`, checks it against the dataset (and
/// the gate spec against model `name` and the dataset), and writes its binding — and, when asked,
/// its drift reference profile — beside it. Returns the binding and the gate spec. `missing` is
/// the message for a file that is not there.
async fn check_and_bind(
    state: &AppState,
    actor: &refit_registry::Actor,
    name: &str,
    (directory, file): (&str, &str),
    missing: String,
    b: OnnxRequest,
) -> ApiResult<(OnnxBinding, Option<refit_registry::training::StoredSpec>)> {
    refit_registry::validate::artifact_path(file)?;
    if !file.ends_with(".onnx") {
        return Err(ApiError::invalid(format!("'{file}' is not an .onnx file")));
    }
    let base = file.rsplit('/').next().unwrap_or(file);
    if base == ONNX_BINDING_FILE || base == "model.json" {
        return Err(ApiError::invalid(format!(
            "'{base}' is a name refit reserves"
        )));
    }
    let dataset = state.store.get_dataset(&b.dataset).await?;
    let columns: Vec<(&str, _)> = dataset
        .schema
        .features
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    let (_, mut stream) = state
        .store
        .open_artifact(&format!("{directory}/{file}"))
        .await
        .map_err(|e| match e {
            RegistryError::NotFound(_) => ApiError::not_found(missing),
            other => other.into(),
        })?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }

    let runtime = state
        .models
        .onnx()
        .map_err(|why| ApiError::new(StatusCode::NOT_IMPLEMENTED, "ONNX_RUNTIME_MISSING", why))?;
    let options = OnnxOptions {
        task: b.task,
        classes: b.classes,
        ..OnnxOptions::default()
    };
    let features = b.features;
    let model = tokio::task::spawn_blocking({
        let (runtime, features) = (runtime.clone(), features.clone());
        move || {
            let model = OnnxModel::load(&runtime, &bytes, features, &options)?;
            Ok::<_, refit_scorer::onnx::OnnxError>(model)
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    model
        .check_features(&columns)
        .map_err(|e| ApiError::invalid(format!("{e} (dataset '{}')", dataset.name)))?;

    // The spec whose gate the version goes through must train this model on this dataset.
    let gate_spec = match &b.gate_spec {
        None => None,
        Some(spec) => {
            let spec = state.store.get_spec(spec).await?;
            if spec.model_name != name || spec.dataset != dataset.name {
                return Err(ApiError::invalid(format!(
                    "gate_spec: spec '{}' trains model '{}' on dataset '{}', not '{name}' on '{}'",
                    spec.name, spec.model_name, spec.dataset, dataset.name
                )));
            }
            Some(spec)
        }
    };
    let profile = match b.profile_snapshot {
        None => None,
        Some(id) => Some(profile_from_snapshot(state, &dataset.name, id, &model).await?),
    };
    let info = model.info();
    let binding = OnnxBinding {
        format: ONNX_BINDING_FORMAT.to_string(),
        file: file.to_string(),
        dataset: dataset.name.clone(),
        features,
        task: info.task,
        classes: info.classes.clone(),
    };
    let binding_json = serde_json::to_vec_pretty(&binding).map_err(ApiError::internal)?;
    state
        .store
        .put_artifact_bytes(
            actor,
            &format!("{directory}/{ONNX_BINDING_FILE}"),
            &binding_json,
        )
        .await?;
    if let Some(profile) = profile {
        state
            .store
            .put_artifact_bytes(
                actor,
                &format!("{directory}/{PROFILE_FILE}"),
                &profile.to_json(),
            )
            .await?;
    }
    Ok((binding, gate_spec))
}

/// Queues the gate job of `spec` for candidate `version`, if a spec was given.
async fn gate(
    state: &AppState,
    actor: &refit_registry::Actor,
    spec: Option<refit_registry::training::StoredSpec>,
    version: i64,
) -> ApiResult<Option<Job>> {
    let Some(spec) = spec else {
        return Ok(None);
    };
    let detail = serde_json::json!({ "candidate_version": version }).to_string();
    let job = state
        .store
        .create_job(actor, spec.id, UPLOAD_TRIGGER, Some(&detail))
        .await?;
    state.scheduler.notify();
    Ok(Some(job))
}

/// The drift reference profile of `model` from snapshot `id` of `dataset`: the rows' values of
/// the model's features and its predictions on them.
async fn profile_from_snapshot(
    state: &AppState,
    dataset: &str,
    id: i64,
    model: &OnnxModel,
) -> ApiResult<ReferenceProfile> {
    let (_, schema, rows) = state.store.load_snapshot(dataset, id).await?;
    if rows.is_empty() {
        return Err(ApiError::invalid(format!(
            "profile_snapshot: snapshot {id} of '{dataset}' has no rows"
        )));
    }
    let info = model.info();
    let pick = info
        .features
        .iter()
        .map(|f| {
            schema.feature(f).map(|(i, _)| i).ok_or_else(|| {
                ApiError::invalid(format!(
                    "profile_snapshot: snapshot {id} has no feature '{f}' (an older schema)"
                ))
            })
        })
        .collect::<ApiResult<Vec<usize>>>()?;
    let frame = FeatureFrame::from_rows(
        rows.iter().map(|r| r.features.as_slice()),
        &pick,
        &model.numeric_inputs(),
    );
    let predictions = model
        .predict(&frame)
        .map_err(|e| ApiError::invalid(format!("profile_snapshot: {e}")))?;
    Ok(ReferenceProfile::build(
        info,
        &frame,
        Some(&predictions),
        ProfileSampler::with_seed(42),
    ))
}
