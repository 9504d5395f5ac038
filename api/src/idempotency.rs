//! `Idempotency-Key` on POSTs that create work: the key is claimed, the work done and the
//! answer saved in one transaction; a repeat of the same request gets the saved answer, a
//! different request under the same key is refused. Keys are scoped by account and route.

use axum::http::StatusCode;
use herald_shared::db::idempotency;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;

/// Where a request with a key stands.
pub enum Claim {
    /// No key, or a new one (now held by this transaction): do the work.
    Proceed,
    /// The same request was answered before: send this again.
    Replay(StatusCode, Value),
}

/// Claims `key` for this request (identified by route and body).
pub async fn claim(
    conn: &mut PgConnection,
    account_id: Uuid,
    route: &str,
    key: Option<&str>,
    body: &[u8],
) -> Result<Claim, ApiError> {
    let Some(key) = key else {
        return Ok(Claim::Proceed);
    };
    let request_hash = Sha256::digest(body).to_vec();
    match idempotency::claim(conn, account_id, route, key, &request_hash).await? {
        None => Ok(Claim::Proceed),
        Some(saved) if saved.request_hash != request_hash => Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            detail: "this Idempotency-Key was used for a different request".to_owned(),
        }),
        Some(saved) => match (saved.response_status, saved.response_body) {
            (Some(status), Some(body)) => Ok(Claim::Replay(
                StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
                    .unwrap_or(StatusCode::OK),
                body,
            )),
            _ => Err(ApiError::Conflict {
                code: "request_in_progress",
                detail: "a request with this Idempotency-Key is still being processed".to_owned(),
            }),
        },
    }
}

/// Saves the answer under `key` (when there is one), in the caller's transaction.
pub async fn save(
    conn: &mut PgConnection,
    account_id: Uuid,
    route: &str,
    key: Option<&str>,
    status: StatusCode,
    body: &Value,
) -> Result<(), ApiError> {
    if let Some(key) = key {
        idempotency::save(conn, account_id, route, key, status.as_u16(), body).await?;
    }
    Ok(())
}
