//! `/api/tokens` (admin): mint, list and revoke access tokens from the dashboard.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use event_bus::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::node::Node;
use crate::store::{parse_role, role_name};
use crate::transport::http::{ApiJson, Caller};

/// The body of `POST /api/tokens`.
#[derive(Debug, Deserialize)]
pub struct CreateToken {
    /// `viewer`, `operator`, `admin` or `agent`.
    pub role: String,
    /// A label to recognise it by.
    #[serde(default)]
    pub label: String,
}

/// `GET /api/tokens` (admin): every token, never a secret.
#[utoipa::path(get, path = "/api/tokens", tag = "auth", responses((status = 200, description = "Tokens (admin)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
pub async fn list(State(state): State<Node>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let tokens = state.auth().tokens().await?;
    let tokens: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({"id": t.id, "role": role_name(t.role), "label": t.label, "created": t.created,
                   "revoked": t.revoked, "active": t.revoked.is_none()})
        })
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// `POST /api/tokens` (admin): mint a token; its secret is in this answer only.
#[utoipa::path(post, path = "/api/tokens", tag = "auth", request_body(content = Object, description = "{role, label}"), responses((status = 201, description = "Created; `token` is shown only here (admin)", body = Object), (status = 401, description = "No valid token or session", body = crate::error::schema::ErrorBody), (status = 403, description = "The role may not do this", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
pub async fn create(
    State(state): State<Node>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let role = parse_role(&body.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role must be viewer, operator, admin or agent, got {:?}",
            body.role
        ))
    })?;
    let label: String = body.label.chars().take(128).collect();
    let (record, secret) = state.auth().create_token(role, &label).await?;
    tracing::info!(token = %record.id, role = role_name(role), by = %caller.0.token_id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": record.id, "role": role_name(role), "label": record.label, "token": secret}),
        ),
    ))
}

/// `DELETE /api/tokens/{id}` (admin): revoke a token and end its sessions.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "auth", params(("id" = String, Path, description = "Token id")), responses((status = 204, description = "Revoked (admin)"), (status = 404, description = "No such live token", body = crate::error::schema::ErrorBody)), security(("token" = []), ("session" = [])))]
pub async fn revoke(
    State(state): State<Node>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    if id == caller.0.token_id {
        return Err(ApiError::bad_request(
            "revoke your own token with another admin token (or `vigil token revoke`)",
        ));
    }
    state.auth().revoke(&id).await?;
    state.announce_revocation(&id).await;
    tracing::info!(token = %id, by = %caller.0.token_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
