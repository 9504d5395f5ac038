//! Queries on `idempotency_keys`: the saved answer of a POST sent with an `Idempotency-Key`.

use serde_json::Value;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// A key already seen.
#[derive(Debug, Clone, FromRow)]
pub struct Saved {
    pub request_hash: Vec<u8>,
    pub response_status: Option<i16>,
    pub response_body: Option<Value>,
}

/// Claims the key inside the caller's transaction. `None`: the key is new and now held
/// (a concurrent request with the same key waits on the row lock until this transaction
/// ends). `Some`: the key was used before.
pub async fn claim(
    conn: &mut PgConnection,
    account_id: Uuid,
    route: &str,
    key: &str,
    request_hash: &[u8],
) -> Result<Option<Saved>, sqlx::Error> {
    let inserted = sqlx::query!(
        "insert into idempotency_keys (account_id, route, key, request_hash) values ($1, $2, $3, $4)
         on conflict do nothing",
        account_id,
        route,
        key,
        request_hash,
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    sqlx::query_as!(
        Saved,
        "select request_hash, response_status, response_body from idempotency_keys
         where account_id = $1 and route = $2 and key = $3",
        account_id,
        route,
        key,
    )
    .fetch_optional(&mut *conn)
    .await
}

/// Saves the answer for a claimed key, in the same transaction as the work.
pub async fn save(
    conn: &mut PgConnection,
    account_id: Uuid,
    route: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update idempotency_keys set response_status = $4, response_body = $5
         where account_id = $1 and route = $2 and key = $3",
        account_id,
        route,
        key,
        i16::try_from(status).unwrap_or(500),
        body,
    )
    .execute(conn)
    .await?;
    Ok(())
}
