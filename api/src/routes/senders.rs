//! E-mail senders (`/api/v1/senders`): the mailboxes campaigns send from, each with its
//! transport — an SMTP server or a SendGrid API key — and its pace: `daily_cap` sends in any
//! rolling 24 hours (default 200) and at least `min_gap_secs` between two sends (default 60;
//! the sender adds random jitter on top).
//!
//! The transport's secret (the SMTP password, the SendGrid key) is sealed with
//! `secrets.encryption_key` before it is stored and is never returned: a sender shows only
//! whether it has one (`password_set`, `api_key_set`). On `PUT`, an omitted secret keeps the
//! stored one as long as the transport type stays the same, so a client can edit a sender
//! without knowing its password; `"password": ""` removes an SMTP password.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::email_senders::{self as db, Secret, SenderFields, SenderRow, Transport};
use herald_shared::db::written::Written;
use herald_shared::domain::{EmailAddress, int_in, parse_line};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_sender, list_senders))
        .routes(routes!(get_sender, update_sender, delete_sender))
}

const DEFAULT_DAILY_CAP: i64 = 200;
const MAX_DAILY_CAP: i64 = 100_000;
const DEFAULT_MIN_GAP_SECS: i64 = 60;
const MAX_MIN_GAP_SECS: i64 = 86_400;
const MAX_SECRET_CHARS: usize = 1_024;

/// A sender, as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderIn {
    /// The display name in `From`, 1–200 characters, one line.
    pub from_name: String,
    /// The address e-mail is sent from; unique among the account's senders.
    pub from_email: String,
    /// Where replies should go, when not to `from_email`.
    #[serde(default)]
    pub reply_to: Option<String>,
    pub transport: TransportIn,
    /// Most sends in any rolling 24 hours, 1–100,000 (default 200).
    #[serde(default)]
    pub daily_cap: Option<i64>,
    /// Least seconds between two sends, 0–86,400 (default 60), plus random jitter.
    #[serde(default)]
    pub min_gap_secs: Option<i64>,
}

/// How the sender's e-mail leaves Herald.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum TransportIn {
    Smtp {
        /// Host name or IP address.
        host: String,
        /// 1–65535.
        port: i64,
        /// `none`, `starttls` or `tls` (implicit TLS, as on port 465).
        tls: String,
        #[serde(default)]
        username: Option<String>,
        /// Omitted on `PUT`: the stored password stays; `""` removes it.
        #[serde(default)]
        password: Option<String>,
    },
    Sendgrid {
        /// Required when creating a SendGrid sender or switching one to SendGrid; omitted on
        /// `PUT` of a SendGrid sender, the stored key stays.
        #[serde(default)]
        api_key: Option<String>,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SenderOut {
    pub id: Uuid,
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub transport: TransportOut,
    pub daily_cap: i32,
    pub min_gap_secs: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The transport without its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TransportOut {
    Smtp {
        host: String,
        port: i32,
        tls: String,
        username: Option<String>,
        /// Whether a password is stored (it is never shown).
        password_set: bool,
    },
    Sendgrid {
        /// Whether an API key is stored (it is never shown).
        api_key_set: bool,
    },
}

impl From<SenderRow> for SenderOut {
    fn from(row: SenderRow) -> Self {
        let secret_set = row.sealed_secret.is_some();
        let transport = match row.transport.as_str() {
            "sendgrid" => TransportOut::Sendgrid {
                api_key_set: secret_set,
            },
            _ => TransportOut::Smtp {
                host: row.smtp_host.unwrap_or_default(),
                port: row.smtp_port.unwrap_or_default(),
                tls: row.smtp_tls.unwrap_or_default(),
                username: row.smtp_username,
                password_set: secret_set,
            },
        };
        Self {
            id: row.id,
            from_name: row.from_name,
            from_email: row.from_email,
            reply_to: row.reply_to,
            transport,
            daily_cap: row.daily_cap,
            min_gap_secs: row.min_gap_secs,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SenderPage {
    pub items: Vec<SenderOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A secret given in the body: `None` keeps, `""` clears (where allowed), else sealed.
fn secret(
    state: &AppState,
    raw: Option<&str>,
    field: &str,
    errors: &mut FieldErrors,
) -> Result<Secret, ApiError> {
    let Some(raw) = raw else {
        return Ok(Secret::Keep);
    };
    if raw.is_empty() {
        return Ok(Secret::Clear);
    }
    if raw.chars().count() > MAX_SECRET_CHARS || raw.chars().any(char::is_control) {
        errors.add(
            field,
            format!("must be at most {MAX_SECRET_CHARS} characters, without control characters"),
        );
        return Ok(Secret::Keep);
    }
    let sealed = state
        .secrets
        .seal(raw)
        .map_err(|err| ApiError::Internal(err.into()))?;
    Ok(Secret::Set(sealed))
}

/// Checks a sender's fields and seals its secret; every invalid field is named.
fn check(state: &AppState, body: &SenderIn) -> Result<SenderFields, ApiError> {
    let mut errors = FieldErrors::default();
    let from_name = errors.check("from_name", parse_line(&body.from_name, 200));
    let from_email = errors.check("from_email", EmailAddress::parse(&body.from_email));
    let reply_to = match body.reply_to.as_deref() {
        Some(raw) => errors.check("reply_to", EmailAddress::parse(raw)).map(Some),
        None => Some(None),
    };
    let daily_cap = errors.check(
        "daily_cap",
        int_in(
            body.daily_cap.unwrap_or(DEFAULT_DAILY_CAP),
            1..=MAX_DAILY_CAP,
        ),
    );
    let min_gap_secs = errors.check(
        "min_gap_secs",
        int_in(
            body.min_gap_secs.unwrap_or(DEFAULT_MIN_GAP_SECS),
            0..=MAX_MIN_GAP_SECS,
        ),
    );
    let (transport, secret) = match &body.transport {
        TransportIn::Smtp {
            host,
            port,
            tls,
            username,
            password,
        } => {
            let allow_private = state.config.email.allow_private_smtp_hosts;
            let host = errors.check("transport.host", host_name(host, allow_private));
            let port = errors.check("transport.port", int_in(*port, 1..=65_535));
            if !matches!(tls.as_str(), "none" | "starttls" | "tls") {
                errors.add("transport.tls", "must be none, starttls or tls");
            }
            let username = match username.as_deref() {
                Some(raw) => errors
                    .check("transport.username", parse_line(raw, 256))
                    .map(Some),
                None => Some(None),
            };
            let secret = secret(
                state,
                password.as_deref(),
                "transport.password",
                &mut errors,
            )?;
            let transport = host
                .zip(port)
                .zip(username)
                .map(|((host, port), username)| Transport::Smtp {
                    host,
                    port,
                    tls: tls.clone(),
                    username,
                });
            (transport, secret)
        }
        TransportIn::Sendgrid { api_key } => {
            let secret = secret(state, api_key.as_deref(), "transport.api_key", &mut errors)?;
            if secret == Secret::Clear {
                errors.add("transport.api_key", "must not be empty");
            }
            (Some(Transport::Sendgrid), secret)
        }
    };
    errors.finish()?;
    match (
        from_name,
        from_email,
        reply_to,
        transport,
        daily_cap,
        min_gap_secs,
    ) {
        (
            Some(from_name),
            Some(from_email),
            Some(reply_to),
            Some(transport),
            Some(daily_cap),
            Some(min_gap_secs),
        ) => Ok(SenderFields {
            from_name,
            from_email: from_email.as_str().to_owned(),
            reply_to: reply_to.map(|address| address.as_str().to_owned()),
            transport,
            secret,
            daily_cap,
            min_gap_secs,
        }),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "a sender field failed its check without an error"
        ))),
    }
}

/// A host name (letters, digits, `-`, `.`) or an IP address, up to 253 characters; unless
/// `allow_private` (`email.allow_private_smtp_hosts`), not `localhost` nor an internal
/// address (see `herald_shared::net`). A name that resolves to an internal address is refused
/// by the worker when it connects.
fn host_name(raw: &str, allow_private: bool) -> Result<String, String> {
    let host = raw.trim();
    let lower = host.to_ascii_lowercase();
    let internal = lower == "localhost"
        || lower.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(herald_shared::net::is_internal);
    if internal && !allow_private {
        return Err(
            "must not name a loopback, private or link-local address (email.allow_private_smtp_hosts)"
                .to_owned(),
        );
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if valid {
        Ok(host.to_ascii_lowercase())
    } else {
        Err("must be a host name like smtp.example.com or an IP address".to_owned())
    }
}

/// The answer to a write that found no sender, a taken address or a missing key.
fn written(result: Written<SenderRow>) -> Result<SenderRow, ApiError> {
    match result {
        Written::Done(row) => Ok(*row),
        Written::NotFound => Err(ApiError::NotFound("sender")),
        Written::Refused(db::KEY_MISSING) => Err(ApiError::field(
            "transport.api_key",
            "is required for a SendGrid sender",
        )),
        Written::Refused(_) => Err(ApiError::Taken {
            code: "sender_exists",
            field: "from_email",
            detail: "another sender of this account has this address".to_owned(),
        }),
    }
}

/// Adds a sender. Its secret is sealed before it is stored and never shown again.
#[utoipa::path(post, path = "/api/v1/senders", tag = "senders", operation_id = "v1.senders.create",
    security(("bearer" = [])), request_body = SenderIn,
    responses((status = 201, body = SenderOut),
        (status = 409, description = "another sender of the account has the address", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_sender(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<SenderIn>,
) -> Result<(StatusCode, Json<SenderOut>), ApiError> {
    let fields = check(&state, &body)?;
    let row = written(db::insert(&state.db, auth.account_id, &fields).await?)?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Lists the account's senders, newest first.
#[utoipa::path(get, path = "/api/v1/senders", tag = "senders", operation_id = "v1.senders.list",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = SenderPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_senders(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SenderPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let rows = db::list(&state.db, auth.account_id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(SenderPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One sender.
#[utoipa::path(get, path = "/api/v1/senders/{id}", tag = "senders", operation_id = "v1.senders.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = SenderOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_sender(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<SenderOut>, ApiError> {
    let id = path_id(&id, "sender")?;
    let row = db::get(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("sender"))?;
    Ok(Json(row.into()))
}

/// Replaces a sender's fields; an omitted secret stays while the transport type does.
#[utoipa::path(put, path = "/api/v1/senders/{id}", tag = "senders", operation_id = "v1.senders.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = SenderIn,
    responses((status = 200, body = SenderOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another sender of the account has the address", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_sender(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SenderIn>,
) -> Result<Json<SenderOut>, ApiError> {
    let id = path_id(&id, "sender")?;
    let fields = check(&state, &body)?;
    let row = written(db::update(&state.db, auth.account_id, id, &fields).await?)?;
    Ok(Json(row.into()))
}

/// Deletes a sender; 409 `sender_in_use` while a campaign sends from it.
#[utoipa::path(delete, path = "/api/v1/senders/{id}", tag = "senders", operation_id = "v1.senders.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a campaign sends from the sender", body = Problem, content_type = "application/problem+json")))]
async fn delete_sender(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "sender")?;
    match db::delete(&state.db, auth.account_id, id).await? {
        Written::Done(_) => Ok(StatusCode::NO_CONTENT),
        Written::Refused(_) => Err(ApiError::Conflict {
            code: "sender_in_use",
            detail: "a campaign sends from this sender; remove it from the campaign first"
                .to_owned(),
        }),
        Written::NotFound => Err(ApiError::NotFound("sender")),
    }
}
