//! The e-mails the auth flows send. Each is planned as an `email` effect in the same
//! transaction as the token it carries, so a token is never created without its e-mail (or
//! the reverse); the worker sends it.
//!
//! The token never sits in the database in the clear: the text holds a placeholder and the
//! payload the token sealed with `secrets.encryption_key` (AES-256-GCM); the worker opens it
//! at send time and the sealed copy is removed once the e-mail is sent. The token also
//! appears alone on a short `code:` line, which stays readable in the stored mail whatever
//! transfer encoding the body gets (a long link line makes it quoted-printable, and `=` in
//! the link becomes `=3D`, with soft line breaks).

use herald_shared::db::outbound_messages;
use herald_shared::effects::{EffectKind, EmailPayload, MessageSource, SECRET_PLACEHOLDER};
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
    let link = link(state, "verify-email");
    // a name cannot smuggle the placeholder in and be sent the token in its place
    let name = name.replace(SECRET_PLACEHOLDER, "");
    let email = EmailPayload {
        to: to.to_owned(),
        subject: "Confirm your e-mail address".to_owned(),
        text: format!(
            "Hello {name},\n\nconfirm your e-mail address for Herald by opening this link:\n\n{link}\n\n\
             or by entering this code:\n\ncode: {SECRET_PLACEHOLDER}\n\n\
             The link works once and expires in {} hours.\n",
            state.config.auth.verify_token_ttl_secs / 3600
        ),
        sealed_secret: Some(seal(state, token)?),
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
    let link = link(state, "reset-password");
    let email = EmailPayload {
        to: to.to_owned(),
        subject: "Reset your Herald password".to_owned(),
        text: format!(
            "Someone asked to reset the password of this Herald account.\n\n\
             To choose a new password, open:\n\n{link}\n\n\
             or enter this code:\n\ncode: {SECRET_PLACEHOLDER}\n\n\
             The link works once and expires in {} minutes. If it was not you, ignore this e-mail.\n",
            state.config.auth.reset_token_ttl_secs / 60
        ),
        sealed_secret: Some(seal(state, token)?),
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

/// Plans the notice that the password was changed (no secret in it).
pub async fn plan_password_changed(
    conn: &mut PgConnection,
    state: &AppState,
    account_id: Uuid,
    to: &str,
) -> Result<(), ApiError> {
    let email = EmailPayload {
        to: to.to_owned(),
        subject: "Your Herald password was changed".to_owned(),
        text: "The password of this Herald account was just changed, and every other \
               session was signed out.\n\n\
               If it was not you, reset your password at once with \"Forgot password\".\n"
            .to_owned(),
        sealed_secret: None,
    };
    plan(
        conn,
        state,
        account_id,
        format!("password-changed:{}", Uuid::new_v4()),
        &email,
    )
    .await
}

/// The link with the placeholder where the token goes.
fn link(state: &AppState, path: &str) -> String {
    let mut url = state.config.auth.frontend_url.clone();
    url.set_path(path);
    url.set_query(None);
    format!("{url}?token={SECRET_PLACEHOLDER}")
}

fn seal(state: &AppState, token: &str) -> Result<String, ApiError> {
    state
        .secrets
        .seal(token)
        .map_err(|err| ApiError::Internal(err.into()))
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
    let queue = &state.jobs.get(EffectKind::Email).queue;
    outbound_messages::plan_email(
        conn,
        account_id,
        MessageSource::AuthEmail,
        queue,
        idempotency_key,
        email,
    )
    .await?;
    Ok(())
}
