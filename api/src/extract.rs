//! Request extractors that answer bad input with problem+json: `ApiJson` (strict JSON body,
//! the failing field named), `ApiQuery`, `AuthUser` (bearer JWT of a live session),
//! `IdempotencyKey` and `ClientIp`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::auth::{client_ip, tokens};
use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// Largest JSON body read: axum's default body limit (`DefaultBodyLimit`), which `Bytes`
/// enforces. A larger body answers 413 `too_large`.
pub const MAX_JSON_BYTES: usize = 2 * 1024 * 1024;

/// A JSON body, deserialized strictly (unknown fields are refused by the DTOs), of at most
/// `MAX_JSON_BYTES`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|err| unreadable_body(&err, "a JSON request"))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A body that could not be read, as problem+json: 413 over the body limit
/// ([`MAX_JSON_BYTES`], axum's default for every body), 400 otherwise. `what` names the kind
/// of request in the 413's detail.
pub fn unreadable_body(err: &BytesRejection, what: &str) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the body is larger than the {} MiB {what} may have",
            MAX_JSON_BYTES / (1024 * 1024)
        ))
    } else {
        ApiError::BadRequest {
            code: "unreadable_body",
            detail: err.body_text(),
            errors: Vec::new(),
        }
    }
}

/// Deserializes JSON, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul(bytes)?;
    refuse_non_object(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest {
                code: "malformed_json",
                detail: format!("the body is not valid JSON: {inner}"),
                errors: Vec::new(),
            };
        }
        let message = strip_position(&inner.to_string());
        // The path already ends with an unknown field's name; a missing field is reported at
        // its parent, so its name comes from the message.
        let field = match (unknown_field_name(&message), missing_field_name(&message)) {
            (Some(name), _) if path == "." => name.to_owned(),
            (_, Some(name)) if path == "." => name.to_owned(),
            (_, Some(name)) => format!("{path}.{name}"),
            _ if path == "." => "body".to_owned(),
            _ => path,
        };
        ApiError::Validation(vec![FieldError::new(field, message)])
    })
}

/// Every body Herald takes is a JSON object. serde would also read a struct from an array
/// of its fields in order (`[null, null]` for one whose fields are all optional), which no
/// client means and the documented schema forbids: refused as 422. A body that is not JSON
/// at all is left to the strict parse, which answers 400.
fn refuse_non_object(bytes: &[u8]) -> Result<(), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, None | Some(b'{')) {
        return Ok(());
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Ok(()); // malformed: the strict parse reports it
    }
    Err(ApiError::field("body", "must be a JSON object"))
}

/// PostgreSQL cannot store the NUL character in text, so a string holding one (JSON `\u0000`)
/// is refused here, by field, rather than failing at the database. The full walk runs only
/// when the escape appears in the body at all.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    let escaped = bytes
        .windows(6)
        .any(|window| window.eq_ignore_ascii_case(b"\\u0000"));
    if !escaped {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // malformed: the strict parse reports it
    };
    match nul_path(&value, String::new()) {
        Some(path) => Err(ApiError::Validation(vec![FieldError::new(
            if path.is_empty() {
                "body".to_owned()
            } else {
                path
            },
            "must not contain the NUL character (\\u0000)",
        )])),
        None => Ok(()),
    }
}

/// The path (`action.text`, `students[2].name`) of the first string or key holding NUL.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::String(text) => text.contains('\0').then_some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, format!("{path}[{index}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let at = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(at)
            } else {
                nul_path(item, at)
            }
        }),
        _ => None,
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn unknown_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

fn missing_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Query parameters, with problem+json errors naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = unknown_field_name(&message)
                    .or_else(|| missing_field_name(&message))
                    .map(str::to_owned)
                    .unwrap_or(path);
                ApiError::Validation(vec![FieldError::new(field, message)])
            })
    }
}

/// The signed-in caller: a valid access token of a session that is not revoked.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub session_id: Uuid,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized(
                "send `Authorization: Bearer <access token>`",
            ))?;
        let claims = tokens::decode_access(&state.jwt, token)
            .map_err(|_| ApiError::Unauthorized("the access token is invalid or expired"))?;
        // The session must be the token's own: a live session of someone else, named in a
        // token signed with the right key, is no session of this caller.
        if !herald_shared::db::sessions::is_active_for(
            &state.db, claims.sid, claims.sub, claims.acc,
        )
        .await?
        {
            return Err(ApiError::Unauthorized(
                "the session has ended; sign in again",
            ));
        }
        Ok(Self {
            user_id: claims.sub,
            account_id: claims.acc,
            session_id: claims.sid,
        })
    }
}

/// The optional `Idempotency-Key` header (1–255 visible ASCII characters).
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|key| {
                (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// The client's IP address: the TCP peer, or behind `api.trusted_proxies` the address they
/// put in `X-Forwarded-For` (see `auth::client_ip`).
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key of this client in per-IP limits (IPv6: its /64).
    pub fn limit_key(&self) -> String {
        client_ip::limit_key(self.0)
    }
}

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let forwarded_for = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(Self(client_ip::resolve(
            peer,
            forwarded_for,
            &state.config.api.trusted_proxies,
        )))
    }
}

/// A resource id from the path. An id that is not a UUID names nothing of the caller's, so it
/// answers the same 404 as an unknown id.
pub fn path_id(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}
