//! REST for scans, agents and alerts.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use event_bus::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::node::Node;
use crate::node::orchestrator::{AgentCommand, ScanAccepted, ScanRequest};
use crate::transport::http::{ApiJson, Caller};

fn who(caller: &Caller) -> String {
    if caller.0.label.is_empty() {
        format!("token:{}", caller.0.token_id)
    } else {
        format!("{} (token {})", caller.0.label, caller.0.token_id)
    }
}

#[utoipa::path(post, path = "/api/scans", tag = "scans", request_body(content = Object, description = "{targets, scan_types, ports (a specification string such as \"22,80,8000-8100\", or a list of port numbers), priority, retries}"), responses((status = 202, description = "Scheduled (operator); every target checked against the scope first", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `POST /api/scans` and the seed's `POST /api/scan` (operator): schedule a scan.
pub async fn create(
    State(state): State<Node>,
    caller: Caller,
    ApiJson(request): ApiJson<ScanRequest>,
) -> Result<(StatusCode, Json<ScanAccepted>), ApiError> {
    caller.require(Role::Operator)?;
    let accepted = state
        .orchestrator()
        .schedule(request, &who(&caller))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// `POST /api/scan` (operator): the seed's alias of `POST /api/scans`, with its `{target, scan_types}` body.
#[utoipa::path(post, path = "/api/scan", tag = "scans", request_body(content = Object, description = "{target, scan_types}"), responses((status = 202, description = "Scheduled", body = Object)), security(("token" = []), ("session" = [])))]
pub async fn create_seed_alias(
    state: State<Node>,
    caller: Caller,
    body: ApiJson<ScanRequest>,
) -> Result<(StatusCode, Json<ScanAccepted>), ApiError> {
    create(state, caller, body).await
}

#[utoipa::path(get, path = "/api/scans", tag = "scans", responses((status = 200, description = "Every scan with its tasks (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/scans` (viewer): every scan, newest first, in the seed's `{scans, total}` shape.
pub async fn list(State(state): State<Node>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let scans = state.orchestrator().scans().await?;
    Ok(Json(json!({"total": scans.len(), "scans": scans})))
}

#[utoipa::path(get, path = "/api/scans/{id}", tag = "scans", params(("id" = String, Path, description = "Scan id")), responses((status = 200, description = "One scan with its results (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/scans/{id}` (viewer): one scan, its tasks and its stored results.
pub async fn show(
    State(state): State<Node>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(state.orchestrator().scan(&id).await?))
}

#[utoipa::path(delete, path = "/api/scans/{id}", tag = "scans", params(("id" = String, Path, description = "Scan id")), responses((status = 200, description = "Unfinished tasks cancelled (operator)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `DELETE /api/scans/{id}` (operator): cancel what has not finished.
pub async fn cancel(
    State(state): State<Node>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator)?;
    let touched = state.orchestrator().cancel_scan(&id).await?;
    Ok(Json(json!({"scan_id": id, "cancelled_tasks": touched})))
}

#[utoipa::path(get, path = "/api/agents", tag = "agents", responses((status = 200, description = "Agents and their load (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/agents` (viewer).
pub async fn agents(State(state): State<Node>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(
        serde_json::to_value(state.orchestrator().agents().await?).unwrap_or(Value::Null),
    ))
}

/// The body of `POST /api/agents/{id}/command`.
#[derive(Debug, Deserialize)]
pub struct CommandRequest {
    /// `stop`, `cancel` or `health_check`.
    pub command: AgentCommand,
    /// The task, for `cancel`.
    #[serde(default)]
    pub task_id: Option<String>,
}

#[utoipa::path(post, path = "/api/agents/{id}/command", tag = "agents", params(("id" = String, Path, description = "Agent id")), request_body(content = Object, description = "{command: stop|cancel|health_check, task_id?}"), responses((status = 202, description = "Command sent (admin)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `POST /api/agents/{id}/command` (admin).
pub async fn command(
    State(state): State<Node>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommandRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    if body.command == AgentCommand::Cancel && body.task_id.is_none() {
        return Err(ApiError::bad_request("cancel needs a task_id"));
    }
    state
        .orchestrator()
        .command(&id, body.command, body.task_id)
        .await?;
    tracing::info!(agent = %id, command = ?body.command, by = %who(&caller), "agent command sent");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"agent_id": id, "command": body.command, "status": "sent"})),
    ))
}

/// Query of `GET /api/alerts`.
#[derive(Debug, Deserialize)]
pub struct AlertsQuery {
    /// Newest first, at most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/alerts", tag = "scans", params(("limit" = Option<u32>, Query, description = "At most 1000")), responses((status = 200, description = "Raised alerts, newest first (viewer)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
/// `GET /api/alerts` (viewer): raised alerts, newest first.
pub async fn alerts(
    State(state): State<Node>,
    caller: Caller,
    Query(q): Query<AlertsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(100).min(1000);
    let rows = state.store().alerts(limit).await?;
    let alerts: Vec<Value> = rows
        .into_iter()
        .map(|(raised, a)| {
            json!({"raised": raised, "scan_id": a.scan_id, "task_id": a.task_id, "target": a.target,
                   "signature_id": a.signature_id, "severity": a.severity,
                   "threat": serde_json::from_str::<Value>(&a.threat).unwrap_or(Value::Null)})
        })
        .collect();
    Ok(Json(json!({"alerts": alerts})))
}
