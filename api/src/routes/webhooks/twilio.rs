//! `POST /webhooks/twilio/status` (delivery status callbacks) and
//! `POST /webhooks/twilio/inbound` (replies, opt-out and opt-in keywords).
//!
//! Both check `X-Twilio-Signature` against `twilio.public_base_url` + the request path, with
//! the auth token; a bad or missing signature (or no auth token configured) answers 403 and
//! changes nothing.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_shared::courses;
use herald_shared::db::{student_messages, twilio_events};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::signature;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status_callback))
        .routes(routes!(inbound_message))
}

/// Keywords that unsubscribe a student (Twilio's standard opt-out words).
const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
/// Keywords that subscribe them again.
const START_WORDS: [&str; 2] = ["START", "UNSTOP"];

/// Records a message's delivery status (`sent`, `delivered`, `undelivered`, `failed`, …) with
/// Twilio's error code. A callback older than what is recorded changes nothing; one that
/// arrives before the worker has recorded the message's SID is kept and applied shortly after.
#[utoipa::path(post, path = "/webhooks/twilio/status", tag = "webhooks", operation_id = "webhooks.twilio.status",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback parameters (MessageSid, MessageStatus, ErrorCode, …)"),
    params(("X-Twilio-Signature" = String, Header)),
    responses((status = 204), (status = 403, description = "missing or bad signature")))]
async fn status_callback(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(params) = verified_params(&state, &uri, &headers, &body) else {
        return Ok(forbidden());
    };
    let (Some(sid), Some(status)) = (
        param(&params, "MessageSid"),
        param(&params, "MessageStatus"),
    ) else {
        return Err(ApiError::field(
            "MessageSid",
            "MessageSid and MessageStatus are required",
        ));
    };
    let error_code = param(&params, "ErrorCode").and_then(|code| code.parse::<i32>().ok());
    let error_message = param(&params, "ErrorMessage");
    let mut conn = state.db.acquire().await?;
    twilio_events::record_or_keep_status(&mut conn, sid, status, error_code, error_message).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A message from a student: an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
/// QUIT) unsubscribes every student with that phone and skips their unsent messages; START or
/// UNSTOP subscribes them again; anything else is the answer to the latest question sent to
/// them, graded for `choice` questions.
#[utoipa::path(post, path = "/webhooks/twilio/inbound", tag = "webhooks", operation_id = "webhooks.twilio.inbound",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's incoming-message parameters (From, Body, …)"),
    params(("X-Twilio-Signature" = String, Header)),
    responses((status = 200, description = "empty TwiML", content_type = "text/xml", body = String),
        (status = 403, description = "missing or bad signature")))]
async fn inbound_message(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(params) = verified_params(&state, &uri, &headers, &body) else {
        return Ok(forbidden());
    };
    let Some(from) = param(&params, "From") else {
        return Err(ApiError::field("From", "is required"));
    };
    let phone = from
        .strip_prefix("whatsapp:")
        .unwrap_or(from)
        .trim()
        .to_owned();
    let text = param(&params, "Body").unwrap_or_default().trim().to_owned();
    let keyword = text.to_uppercase();
    let mut tx = state.db.begin().await?;
    if STOP_WORDS.contains(&keyword.as_str()) {
        let students = twilio_events::set_subscribed(&mut *tx, &phone, false).await?;
        student_messages::skip_unsent_for_students(
            &mut *tx,
            &students,
            "student unsubscribed (STOP)",
        )
        .await?;
        tracing::info!(students = students.len(), "opt-out keyword received");
    } else if START_WORDS.contains(&keyword.as_str()) {
        let students = twilio_events::set_subscribed(&mut *tx, &phone, true).await?;
        tracing::info!(students = students.len(), "opt-in keyword received");
    } else if let Some(question) = twilio_events::latest_question(&mut tx, &phone).await? {
        let correct = match (
            question.kind.as_deref(),
            &question.options,
            &question.correct_answer,
        ) {
            (Some("choice"), Some(options), Some(answer)) => {
                Some(courses::is_correct(&text, &options.0, answer))
            }
            _ => None,
        };
        twilio_events::insert_answer(&mut *tx, &question, &text, correct).await?;
    }
    tx.commit().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response())
}

/// The form parameters, if the signature is right.
fn verified_params(
    state: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Vec<(String, String)>> {
    let token = state.config.twilio.auth_token.expose_secret();
    let given = headers.get("x-twilio-signature")?.to_str().ok()?;
    let base = state
        .config
        .twilio
        .public_base_url
        .trim()
        .trim_end_matches('/');
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    let url = format!("{base}{path}");
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    signature::verify(token.as_bytes(), &url, &params, given).then_some(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn forbidden() -> Response {
    ApiError::Forbidden("the X-Twilio-Signature header is missing or wrong").into_response()
}
