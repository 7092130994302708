//! `/api/v1/streams/{name}`: records in (HTTP and WebSocket), scored as they are stored, and
//! scores out (Server-Sent Events, WebSocket, or the stored score log as JSON). The pipeline
//! itself is [`refit_scorer::stream::StreamHub`]; this module only speaks its protocols.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use refit_registry::Actor;
use refit_registry::scores::{ScoreRole, StoredScore};
use refit_scorer::stream::{Feed, FeedItem, StreamReport};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Can, can};
use super::datasets::body_text;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};
use super::state::AppState;

/// How often an idle subscriber gets a heartbeat (an SSE comment, a WebSocket ping).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a WebSocket close frame may take to send before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Scores in one JSON page of the log, by default.
const DEFAULT_PAGE: i64 = 1_000;
/// The WebSocket close code for a subscriber that fell too far behind (policy violation).
const CLOSE_TOO_SLOW: u16 = 1008;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_records))
        .routes(routes!(scores))
        // A WebSocket endpoint has no OpenAPI description; the README documents it.
        .route("/streams/{name}/ws", get(ws_records))
}

#[utoipa::path(post, path = "/streams/{name}/records", tag = "streams",
    params(("name" = String, Path, description = "Dataset name"),
           ("Prefer" = Option<String>, Header, description = "`return=minimal`: answer without the scores (a producer that leaves them to the stream's subscribers); the answer then carries `Preference-Applied: return=minimal`")),
    request_body(content = Vec<serde_json::Value>, description = "A JSON array of records, or NDJSON with Content-Type application/x-ndjson (as for dataset ingest)", content_type = "application/json"),
    responses((status = 200, description = "What was stored, refused and scored; the champion scores of the new records with their positions (left out with `Prefer: return=minimal`)", body = StreamReport),
              (status = 400, description = "The body is not a JSON array, or too many records", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody),
              (status = 413, description = "Body over the limit", body = ErrorBody)))]
async fn post_records(
    State(state): State<AppState>,
    caller: Can<can::Ingest>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let minimal = prefers_minimal(req.headers());
    let (ndjson, text) = body_text(&state, req).await?;
    let answer = state
        .streams
        .submit(&caller.actor(), &name, text, ndjson, "stream", |report| {
            report.to_json(!minimal)
        })
        .await?;
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response();
    if minimal {
        response
            .headers_mut()
            .insert(PREFERENCE_APPLIED, RETURN_MINIMAL.clone());
    }
    Ok(response)
}

/// `Preference-Applied` (RFC 7240).
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
/// The preference for an answer without the scores.
const RETURN_MINIMAL: HeaderValue = HeaderValue::from_static("return=minimal");

/// Whether the request prefers an answer without the scores (`Prefer: return=minimal`, RFC
/// 7240): a producer that leaves the scores to the stream's subscribers need not get them back.
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
}

/// Where to start, and what to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScoresQuery {
    /// Scores after this position (like `Last-Event-ID`, which wins when both are given).
    #[serde(default)]
    after: Option<i64>,
    /// Most scores in a JSON page (default 1,000, at most 10,000).
    #[serde(default)]
    limit: Option<i64>,
    /// With `ts`: every score of this record (champion and challenger), as JSON.
    #[serde(default)]
    machine_id: Option<String>,
    /// With `machine_id`: the record's event time, ms since the Unix epoch.
    #[serde(default)]
    ts: Option<i64>,
}

/// A page of the score log.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScorePage {
    /// Scores in position order.
    scores: Vec<StoredScore>,
    /// The position to ask for the next page after (`?after=`), if there may be more.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<i64>,
}

#[utoipa::path(get, path = "/streams/{name}/scores", tag = "streams",
    params(("name" = String, Path, description = "Dataset name"), ScoresQuery,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this position")),
    responses((status = 200, description = "With `Accept: text/event-stream`: the champion scores as Server-Sent Events (`id` = position), the stored ones after the resume position first, then live; with a WebSocket upgrade: the same as text frames; otherwise a JSON page of the stored champion scores (or, with `machine_id` and `ts`, every score of that record)", body = ScorePage),
              (status = 400, description = "A malformed position", body = ErrorBody),
              (status = 404, description = "No such dataset", body = ErrorBody)))]
async fn scores(
    State(state): State<AppState>,
    _: Can<can::ReadScores>,
    Path(name): Path<String>,
    Query(query): Query<ScoresQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    // 404 before any stream starts.
    state.store.get_dataset(&name).await?;
    let after = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be a score position (an integer)")
                })?,
        ),
        None => query.after,
    };
    if let Ok(upgrade) = upgrade {
        let feed = state.streams.feed(&name, after);
        let buffer = state.config.subscriber_buffer;
        return Ok(upgrade
            .on_upgrade(move |socket| send_scores(socket, feed, buffer))
            .into_response());
    }
    let wants_events = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_events {
        let feed = state.streams.feed(&name, after);
        return Ok(sse(feed, state.config.subscriber_buffer).into_response());
    }
    let page = match (query.machine_id, query.ts) {
        (Some(machine_id), Some(ts)) => ScorePage {
            scores: state.store.scores_of_record(&name, &machine_id, ts).await?,
            next_after: None,
        },
        (None, None) => {
            let limit = query.limit.unwrap_or(DEFAULT_PAGE);
            if !(1..=refit_registry::scores::MAX_PAGE).contains(&limit) {
                return Err(ApiError::invalid(format!(
                    "limit must be between 1 and {}",
                    refit_registry::scores::MAX_PAGE
                )));
            }
            let scores = state
                .store
                .scores_after(&name, after.unwrap_or(0), limit, Some(ScoreRole::Champion))
                .await?;
            let next_after = (scores.len() as i64 == limit)
                .then(|| scores.last().map(|s| s.position))
                .flatten();
            ScorePage { scores, next_after }
        }
        _ => {
            return Err(ApiError::invalid(
                "give both 'machine_id' and 'ts' to look up a record's scores",
            ));
        }
    };
    Ok(axum::Json(page).into_response())
}

/// What a subscriber that fell behind is told: the last position it got and how to resume.
fn too_slow(last: Option<i64>, buffer: usize) -> String {
    match last {
        Some(last) => format!(
            "too slow: this subscriber fell {buffer} score batches behind and was disconnected; \
             the last score it was sent is at position {last}: reconnect with \
             'Last-Event-ID: {last}' (or ?after={last}) to resume from the stored log"
        ),
        None => format!(
            "too slow: this subscriber fell {buffer} score batches behind and was disconnected; \
             reconnect with ?after=<the last position received> to resume from the stored log"
        ),
    }
}

fn score_json(score: &StoredScore) -> String {
    serde_json::to_string(score).unwrap_or_else(|_| "{}".into())
}

/// Scores as Server-Sent Events; a subscriber that falls behind gets an `error` event and the
/// stream ends.
fn sse(
    feed: Feed,
    buffer: usize,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(Some(feed), move |feed| async move {
        let mut feed = feed?;
        let event = match feed.next().await {
            Ok(Some(FeedItem::Score(score))) => {
                let event = Event::default()
                    .id(score.position.to_string())
                    .data(score_json(&score));
                return Some((Ok(event), Some(feed)));
            }
            Ok(Some(FeedItem::Lagged { last })) => Event::default().event("error").data(
                json!({
                    "error_code": "SUBSCRIBER_TOO_SLOW",
                    "message": too_slow(last, buffer),
                    "last_position": last,
                })
                .to_string(),
            ),
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, "reading the score log failed");
                Event::default().event("error").data(
                    json!({
                        "error_code": "INTERNAL_ERROR",
                        "message": "the score log could not be read; reconnect with Last-Event-ID to resume",
                    })
                    .to_string(),
                )
            }
        };
        Some((Ok(event), None))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT))
}

/// Scores as WebSocket text frames; a subscriber that falls behind gets a close frame (1008)
/// naming the last position it was sent.
async fn send_scores(mut socket: WebSocket, mut feed: Feed, buffer: usize) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            item = feed.next() => match item {
                Ok(Some(FeedItem::Score(score))) => {
                    if socket.send(Message::Text(score_json(&score).into())).await.is_err() {
                        return;
                    }
                }
                Ok(Some(FeedItem::Lagged { last })) => {
                    // A close reason has at most 123 bytes.
                    let reason = match last {
                        Some(last) => format!("too slow; resume with ?after={last}"),
                        None => "too slow; resume with ?after=<last position>".to_string(),
                    };
                    tracing::info!(buffer, ?last, "disconnecting a slow WebSocket subscriber");
                    close(socket, CLOSE_TOO_SLOW, reason).await;
                    return;
                }
                Ok(None) => {
                    close(socket, 1001, "the server is stopping".into()).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the score log failed");
                    close(socket, 1011, "the score log could not be read; resume with ?after".into()).await;
                    return;
                }
            },
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Subscribers have nothing to say; pings are answered by the protocol layer.
                Some(Ok(_)) => {}
            },
            _ = heartbeat.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: String) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
}

/// `GET /api/v1/streams/{name}/ws` (role ingest): records in text frames (a JSON array, NDJSON,
/// or one JSON object), each frame answered with its report and scores as `POST .../records`
/// answers (without the scores when the upgrade request says `Prefer: return=minimal`), or with
/// an error object `{"error_code", "message"}`.
async fn ws_records(
    State(state): State<AppState>,
    caller: Can<can::Ingest>,
    Path(name): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    state.store.get_dataset(&name).await?;
    let actor = caller.actor();
    let scores = !prefers_minimal(&headers);
    Ok(upgrade
        .max_message_size(state.config.max_body_size as usize)
        .on_upgrade(move |socket| receive_records(socket, state, actor, name, scores)))
}

async fn receive_records(
    mut socket: WebSocket,
    state: AppState,
    actor: Actor,
    name: String,
    scores: bool,
) {
    loop {
        let message = tokio::select! {
            message = socket.recv() => match message {
                Some(message) => message,
                None => return,
            },
            () = state.streams.stopped() => {
                close(socket, 1001, "the server is stopping".into()).await;
                return;
            }
        };
        let reply = match message {
            Ok(Message::Text(text)) => {
                let text = text.to_string();
                // One JSON object is NDJSON of one line.
                let ndjson = !text.trim_start().starts_with('[');
                match state
                    .streams
                    .submit(&actor, &name, text, ndjson, "stream", |report| {
                        report.to_json(scores)
                    })
                    .await
                {
                    Ok(answer) => String::from_utf8(answer).expect("JSON is UTF-8"),
                    Err(e) => error_json(e.into()),
                }
            }
            Ok(Message::Binary(_)) => error_json(ApiError::invalid(
                "send records as text frames (a JSON array, NDJSON or one JSON object)",
            )),
            Ok(Message::Close(_)) => return,
            Ok(_) => continue,
            Err(e) => {
                // Too large, not UTF-8, or a broken connection: say why if the socket still
                // takes it, and end.
                let reason = format!("{e}");
                let reason: String = reason.chars().take(100).collect();
                close(socket, 1009, reason).await;
                return;
            }
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            return;
        }
    }
}

fn error_json(e: ApiError) -> String {
    if e.status.is_server_error() {
        tracing::error!(message = %e.message, "stream ingest over WebSocket failed");
    }
    json!({"error_code": e.code, "message": e.message}).to_string()
}
