//! The e-mails the auth flows send. Each is planned as an `email` effect in the same
//! transaction as the token it carries, so a token is never created without its e-mail (or
//! the reverse); the worker sends it.

use chrono::Utc;
use herald_shared::db::effects::{self, NewEffect};
use herald_shared::effects::{EffectKind, EmailPayload};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Plans the e-mail verification message.
pub async fn plan_verification(
    conn: &mut PgConnection,
    state: &AppState,
    account_id: Uuid,
    to: &str,
    name: &str,
    token: &str,
) -> Result<(), ApiError> {
    let link = link(state, "verify-email", token);
    let email = EmailPayload {
        to: to.to_owned(),
        subject: "Confirm your e-mail address".to_owned(),
        text: format!(
            "Hello {name},\n\nconfirm your e-mail address for Herald by opening this link:\n\n{link}\n\n\
             The link works once and expires in {} hours.\n",
            state.config.auth.verify_token_ttl_secs / 3600
        ),
    };
    plan(
        conn,
        state,
        account_id,
        format!("verify-email:{}", token_key(token)),
        &email,
    )
    .await
}

/// Plans the password-reset message.
pub async fn plan_password_reset(
    conn: &mut PgConnection,
    state: &AppState,
    account_id: Uuid,
    to: &str,
    token: &str,
) -> Result<(), ApiError> {
    let link = link(state, "reset-password", token);
    let email = EmailPayload {
        to: to.to_owned(),
        subject: "Reset your Herald password".to_owned(),
        text: format!(
            "Someone asked to reset the password of this Herald account.\n\n\
             To choose a new password, open:\n\n{link}\n\n\
             The link works once and expires in {} minutes. If it was not you, ignore this e-mail.\n",
            state.config.auth.reset_token_ttl_secs / 60
        ),
    };
    plan(
        conn,
        state,
        account_id,
        format!("reset-password:{}", token_key(token)),
        &email,
    )
    .await
}

fn link(state: &AppState, path: &str, token: &str) -> String {
    let mut url = state.config.auth.frontend_url.clone();
    url.set_path(path);
    url.query_pairs_mut().clear().append_pair("token", token);
    url.to_string()
}

/// A key derived from the token but not revealing it.
fn token_key(token: &str) -> String {
    hex::encode(&super::tokens::hash_token(token)[..16])
}

async fn plan(
    conn: &mut PgConnection,
    state: &AppState,
    account_id: Uuid,
    idempotency_key: String,
    email: &EmailPayload,
) -> Result<(), ApiError> {
    let effect = NewEffect {
        account_id,
        kind: EffectKind::Email,
        queue: state.jobs.get(EffectKind::Email).queue.clone(),
        idempotency_key,
        payload: serde_json::to_value(email).map_err(anyhow::Error::from)?,
        due_at: Utc::now(),
    };
    effects::plan(conn, &effect).await?;
    Ok(())
}
