//! Accounts and sign-in: signup, login, rotating refresh, logout, the current user (read and
//! rename), e-mail verification, password reset and change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use herald_shared::db::{sessions, user_tokens, users};
use herald_shared::domain::{self, EmailAddress};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{emails, limiter, tokens};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, AuthUser, ClientIp};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(verify_email))
}

/// A new account and its first user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupIn {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 8 to 256 characters.
    pub password: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordIn {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordIn {
    /// The token from the reset e-mail.
    pub token: String,
    /// The new password, 8 to 256 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordIn {
    /// The password in use now.
    pub current_password: String,
    /// The new password, 8 to 256 characters.
    pub new_password: String,
}

/// Changes to the signed-in user; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeIn {
    /// 1 to 100 characters once trimmed.
    #[schema(example = "Ada Lovelace")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailIn {
    /// The token from the verification e-mail.
    pub token: String,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<users::User> for UserOut {
    fn from(user: users::User) -> Self {
        Self {
            id: user.id,
            account_id: user.account_id,
            email: user.email,
            name: user.name,
            email_verified: user.email_verified_at.is_some(),
            created_at: user.created_at,
        }
    }
}

/// A signed-in session: a short-lived access token and a single-use refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub user: UserOut,
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Trade for a new pair at `/api/v1/auth/refresh`; works once.
    pub refresh_token: String,
}

/// Creates an account and its first user, signs them in and sends a verification e-mail. At
/// most `auth.max_signups_per_ip_per_hour` per client IP (IPv6: per /64).
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", operation_id = "v1.auth.signup",
    request_body = SignupIn,
    responses(
        (status = 201, body = SessionOut),
        (status = 409, description = "the e-mail is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many sign-ups from this client; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "every password-hashing slot is busy; see Retry-After", body = Problem, content_type = "application/problem+json")))]
async fn signup(
    State(state): State<AppState>,
    client: ClientIp,
    ApiJson(body): ApiJson<SignupIn>,
) -> Result<(StatusCode, Json<SessionOut>), ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors.check("email", EmailAddress::parse(&body.email));
    let name = errors.check("name", domain::parse_name(&body.name));
    errors.check("password", domain::check_password(&body.password));
    errors.finish()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(ApiError::Validation(vec![]));
    };

    limiter::allow_signup(&state, &client.limit_key()).await?;
    // A taken address costs one indexed read, never a hash; the insert still decides a race.
    if users::by_email(&state.db, email.as_str()).await?.is_some() {
        return Err(email_taken());
    }
    let password_hash = state.hasher.hash(body.password).await?;
    let mut tx = state.db.begin().await?;
    let user = users::create_with_account(&mut tx, email.as_str(), &name, &password_hash)
        .await?
        .ok_or_else(email_taken)?;
    let (token, token_hash) = tokens::random_token();
    let expires = Utc::now() + secs(state.config.auth.verify_token_ttl_secs);
    user_tokens::create(
        &mut *tx,
        user.id,
        user_tokens::Purpose::VerifyEmail,
        &token_hash,
        expires,
    )
    .await?;
    emails::plan_verification(
        &mut tx,
        &state,
        user.account_id,
        &user.email,
        &user.name,
        &token,
    )
    .await?;
    let session = start_session(&mut tx, &state, user).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Signs in. Wrong e-mail and wrong password answer the same. Attempts are counted before the
/// password is checked, per (account, client IP) and per client IP (see `auth::limiter`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = "v1.auth.login",
    request_body = LoginIn,
    responses(
        (status = 200, body = SessionOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many failed attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "every password-hashing slot is busy; see Retry-After", body = Problem, content_type = "application/problem+json")))]
async fn login(
    State(state): State<AppState>,
    client: ClientIp,
    ApiJson(body): ApiJson<LoginIn>,
) -> Result<Json<SessionOut>, ApiError> {
    let email = body.email.trim().to_lowercase();
    if email.is_empty() {
        return Err(ApiError::field("email", "must not be empty"));
    }
    let credentials = users::credentials_by_email(&state.db, &email).await?;
    let matches = check_password_counted(
        &state,
        &email,
        &client,
        body.password,
        credentials.as_ref().map(|c| c.password_hash.clone()),
    )
    .await?;
    let Some(credentials) = credentials.filter(|_| matches) else {
        return Err(ApiError::InvalidCredentials);
    };
    let user = users::by_id(&state.db, credentials.id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    let mut tx = state.db.begin().await?;
    let session = start_session(&mut tx, &state, user).await?;
    tx.commit().await?;
    Ok(Json(session))
}

/// Trades a refresh token for a new pair. Each refresh token works once: presenting a used
/// one again ends the whole session (it was probably stolen).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "v1.auth.refresh",
    request_body = RefreshIn,
    responses(
        (status = 200, body = SessionOut),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshIn>,
) -> Result<Json<SessionOut>, ApiError> {
    let mut tx = state.db.begin().await?;
    let spent = sessions::spend_refresh_token(
        &mut tx,
        &tokens::hash_token(&body.refresh_token),
        state.config.auth.session_max_age_secs,
    )
    .await?
    .ok_or(ApiError::Unauthorized("the refresh token is not valid"))?;
    if spent.reused {
        sessions::revoke(&mut *tx, spent.session_id).await?;
        tx.commit().await?;
        return Err(ApiError::Unauthorized(
            "the refresh token was already used; the session is ended",
        ));
    }
    if spent.too_old {
        // past its absolute lifetime: ended for good, whatever refresh tokens it has left
        sessions::revoke(&mut *tx, spent.session_id).await?;
    }
    if spent.revoked || spent.expired || spent.too_old {
        tx.commit().await?;
        return Err(ApiError::Unauthorized(
            "the session has ended; sign in again",
        ));
    }
    let user = users::by_id(&mut *tx, spent.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let session = issue_tokens(&mut tx, &state, user, spent.session_id).await?;
    tx.commit().await?;
    Ok(Json(session))
}

/// Ends the caller's session: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "v1.auth.logout",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    sessions::revoke(&state.db, auth.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", operation_id = "v1.me.get",
    security(("bearer" = [])),
    responses((status = 200, body = UserOut), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<UserOut>, ApiError> {
    let user = users::by_id(&state.db, auth.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(user.into()))
}

/// Changes the signed-in user's profile (the name, validated as at sign-up).
#[utoipa::path(patch, path = "/api/v1/me", tag = "auth", operation_id = "v1.me.update",
    security(("bearer" = [])), request_body = UpdateMeIn,
    responses(
        (status = 200, body = UserOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UpdateMeIn>,
) -> Result<Json<UserOut>, ApiError> {
    let user = match body.name {
        Some(raw) => {
            let name =
                domain::parse_name(&raw).map_err(|message| ApiError::field("name", message))?;
            users::set_name(&state.db, auth.user_id, &name).await?
        }
        None => users::by_id(&state.db, auth.user_id).await?,
    };
    Ok(Json(user.ok_or(ApiError::NotFound("user"))?.into()))
}

/// Changes the signed-in user's password. The current one is checked like a sign-in (and
/// counted by the same limiter); every other session of the user ends, this one stays, and a
/// notice is e-mailed to the user.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth",
    operation_id = "v1.auth.change_password", security(("bearer" = [])),
    request_body = ChangePasswordIn,
    responses(
        (status = 204),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the new password is invalid or the current one is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many wrong passwords; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "every password-hashing slot is busy; see Retry-After", body = Problem, content_type = "application/problem+json")))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientIp,
    ApiJson(body): ApiJson<ChangePasswordIn>,
) -> Result<StatusCode, ApiError> {
    domain::check_password(&body.new_password)
        .map_err(|message| ApiError::field("new_password", message))?;
    let user = users::by_id(&state.db, auth.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let stored = users::credentials_by_email(&state.db, &user.email)
        .await?
        .map(|credentials| credentials.password_hash);
    let matches =
        check_password_counted(&state, &user.email, &client, body.current_password, stored).await?;
    if !matches {
        return Err(ApiError::field("current_password", "is wrong"));
    }
    let password_hash = state.hasher.hash(body.new_password).await?;
    let mut tx = state.db.begin().await?;
    users::set_password(&mut *tx, user.id, &password_hash).await?;
    sessions::revoke_all_but(&mut *tx, user.id, auth.session_id).await?;
    // a reset link mailed for the old password must not undo this change
    user_tokens::end_all(&mut *tx, user.id, user_tokens::Purpose::ResetPassword).await?;
    emails::plan_password_changed(&mut tx, &state, user.account_id, &user.email).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a password-reset e-mail if the address has an account (at most
/// `auth.max_reset_emails_per_hour` per address). Answers 202 either way, so the answer does
/// not tell whether an account exists; nor does its timing: the lookup and the planning run
/// after the answer, in a task of their own, so a known and an unknown address answer after
/// the same work (reading the body). The price: a failure (database down) is logged, not
/// answered, and a request in flight at shutdown may be lost — the user asks again. At most
/// `auth.max_pending_reset_requests` are worked on at once; beyond, 503 for every address.
#[utoipa::path(post, path = "/api/v1/auth/forgot-password", tag = "auth",
    operation_id = "v1.auth.forgot_password", request_body = ForgotPasswordIn,
    responses((status = 202), (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "too many password-reset requests in progress; see Retry-After", body = Problem, content_type = "application/problem+json")))]
async fn forgot_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ForgotPasswordIn>,
) -> Result<StatusCode, ApiError> {
    let email =
        EmailAddress::parse(&body.email).map_err(|message| ApiError::field("email", message))?;
    let permit = state
        .pending_resets
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::ServiceUnavailable {
            detail: "too many password-reset requests are in progress; try again shortly",
            retry_after_secs: 1,
        })?;
    // the spawned task keeps the request's id (task-locals do not follow a spawn)
    let request_id = herald_shared::telemetry::request_id().unwrap_or_default();
    tokio::spawn(herald_shared::telemetry::with_request_id(
        request_id,
        async move {
            if let Err(err) = mail_reset_link(&state, email.as_str()).await {
                tracing::error!(error = %err, "password-reset request failed");
            }
            drop(permit);
        },
    ));
    Ok(StatusCode::ACCEPTED)
}

/// The work behind `forgot_password`. Every address is counted by the per-address cap, known
/// or not.
async fn mail_reset_link(state: &AppState, email: &str) -> Result<(), ApiError> {
    let allowed = limiter::allow_reset_email(state, email).await?;
    let Some(user) = users::by_email(&state.db, email).await? else {
        return Ok(());
    };
    if !allowed {
        tracing::warn!(user_id = %user.id, "password-reset e-mail limit reached; nothing sent");
        return Ok(());
    }
    let (token, token_hash) = tokens::random_token();
    let expires = Utc::now() + secs(state.config.auth.reset_token_ttl_secs);
    let mut tx = state.db.begin().await?;
    user_tokens::create(
        &mut *tx,
        user.id,
        user_tokens::Purpose::ResetPassword,
        &token_hash,
        expires,
    )
    .await?;
    emails::plan_password_reset(&mut tx, state, user.account_id, &user.email, &token).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets a new password with a reset token (single use, expiring), ends every session and
/// every other reset token of the user. The token is checked before the password is hashed.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth",
    operation_id = "v1.auth.reset_password", request_body = ResetPasswordIn,
    responses(
        (status = 204),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "every password-hashing slot is busy; see Retry-After", body = Problem, content_type = "application/problem+json")))]
async fn reset_password(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetPasswordIn>,
) -> Result<StatusCode, ApiError> {
    domain::check_password(&body.password)
        .map_err(|message| ApiError::field("password", message))?;
    let token_hash = tokens::hash_token(&body.token);
    let invalid = || ApiError::field("token", "is invalid, expired or already used");
    // A bogus token costs one indexed read, never a hash.
    if !user_tokens::is_live(&state.db, user_tokens::Purpose::ResetPassword, &token_hash).await? {
        return Err(invalid());
    }
    let password_hash = state.hasher.hash(body.password).await?;
    let mut tx = state.db.begin().await?;
    // consumed only now: two requests with one token cannot both pass
    let user_id = user_tokens::consume(&mut *tx, user_tokens::Purpose::ResetPassword, &token_hash)
        .await?
        .ok_or_else(invalid)?;
    users::set_password(&mut *tx, user_id, &password_hash).await?;
    sessions::revoke_all(&mut *tx, user_id).await?;
    user_tokens::end_all(&mut *tx, user_id, user_tokens::Purpose::ResetPassword).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms the e-mail address with the token from the verification e-mail.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth",
    operation_id = "v1.auth.verify_email", request_body = VerifyEmailIn,
    responses((status = 200, body = UserOut), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn verify_email(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyEmailIn>,
) -> Result<Json<UserOut>, ApiError> {
    let mut tx = state.db.begin().await?;
    let user_id = user_tokens::consume(
        &mut *tx,
        user_tokens::Purpose::VerifyEmail,
        &tokens::hash_token(&body.token),
    )
    .await?
    .ok_or_else(|| ApiError::field("token", "is invalid, expired or already used"))?;
    let user = users::mark_verified(&mut *tx, user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    tx.commit().await?;
    Ok(Json(user.into()))
}

async fn start_session(
    conn: &mut PgConnection,
    state: &AppState,
    user: users::User,
) -> Result<SessionOut, ApiError> {
    let session_id = sessions::create(&mut *conn, user.id).await?;
    issue_tokens(conn, state, user, session_id).await
}

async fn issue_tokens(
    conn: &mut PgConnection,
    state: &AppState,
    user: users::User,
    session_id: Uuid,
) -> Result<SessionOut, ApiError> {
    let auth = &state.config.auth;
    let access_token = tokens::encode_access(
        &state.jwt,
        user.id,
        user.account_id,
        session_id,
        auth.access_token_ttl_secs,
    )
    .map_err(anyhow::Error::from)?;
    let (refresh_token, refresh_hash) = tokens::random_token();
    let expires = Utc::now() + secs(auth.refresh_token_ttl_secs);
    sessions::add_refresh_token(conn, session_id, &refresh_hash, expires).await?;
    Ok(SessionOut {
        user: user.into(),
        access_token,
        token_type: "Bearer",
        expires_in: auth.access_token_ttl_secs,
        refresh_token,
    })
}

/// Checks a password for `email` through the login limiter: the attempt is counted before
/// the hash is evaluated, given back if it was right (or never evaluated for lack of a
/// hashing slot). `stored` is `None` for an unknown address (a dummy hash is evaluated).
async fn check_password_counted(
    state: &AppState,
    email: &str,
    client: &ClientIp,
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    let client = client.limit_key();
    limiter::reserve_login(state, email, &client).await?;
    match state.hasher.verify(password, stored).await {
        Ok(true) => {
            limiter::login_succeeded(state, email, &client).await?;
            Ok(true)
        }
        Ok(false) => Ok(false),
        Err(err) => {
            limiter::give_back(state, email, &client).await?;
            Err(err)
        }
    }
}

fn email_taken() -> ApiError {
    ApiError::Conflict {
        code: "email_taken",
        detail: "an account with this e-mail already exists; sign in instead".to_owned(),
    }
}

fn secs(value: u64) -> Duration {
    Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX / 1000))
}
