//! `POST /webhooks/twilio/status` (delivery status callbacks) and
//! `POST /webhooks/twilio/inbound` (replies, opt-out and opt-in keywords).
//!
//! Both check `X-Twilio-Signature` against `twilio.public_base_url` + the request path, with
//! the auth token; a bad or missing signature (or no auth token configured) answers 403 and
//! changes nothing.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_shared::db::outbound_messages::{self, ProviderStatus};
use herald_shared::db::twilio_events;
use herald_shared::replies;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::signature;
use crate::error::{ApiError, Problem};
use crate::extract::unreadable_body;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status_callback))
        .routes(routes!(inbound_message))
}

/// Records a message's delivery status (`sent`, `delivered`, `undelivered`, `failed`, …) with
/// Twilio's error code. The message is named by the `effect_id` in the callback URL Herald
/// gave Twilio (signed with the rest of the URL), so a callback that arrives before the worker
/// has recorded the SID still finds it; a callback without one (a message sent before ids were
/// carried) is matched by its SID. A callback older than what is recorded changes nothing.
#[utoipa::path(post, path = "/webhooks/twilio/status", tag = "webhooks", operation_id = "webhooks.twilio.status",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's status callback parameters (MessageSid, MessageStatus, ErrorCode, …)"),
    params(("X-Twilio-Signature" = String, Header),
        ("effect_id" = Option<uuid::Uuid>, Query, description = "the message's effect, as Herald wrote it in the callback URL")),
    responses((status = 204), (status = 403, description = "missing or bad signature"),
        (status = 422, description = "a required parameter is missing or malformed", content_type = "application/problem+json", body = Problem)))]
async fn status_callback(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|err| unreadable_body(&err, "a webhook"))?;
    let Some(params) = verified_params(&state, &uri, &headers, &body) else {
        return Ok(forbidden());
    };
    refuse_nul(&params)?;
    let (Some(sid), Some(status)) = (
        param(&params, "MessageSid"),
        param(&params, "MessageStatus"),
    ) else {
        return Err(ApiError::field(
            "MessageSid",
            "MessageSid and MessageStatus are required",
        ));
    };
    let report = ProviderStatus {
        provider_id: sid,
        status,
        error_code: param(&params, "ErrorCode").and_then(|code| code.parse::<i32>().ok()),
        error_message: param(&params, "ErrorMessage"),
        sent_from: param(&params, "MessagingServiceSid").or(param(&params, "From")),
        recipient: param(&params, "To").map(|to| to.trim_start_matches("whatsapp:")),
    };
    let mut conn = state.db.acquire().await?;
    let effect_id = match callback_effect_id(&uri)? {
        Some(id) => Some(id),
        None => outbound_messages::effect_of_provider_id(&mut *conn, sid).await?,
    };
    if let Some(effect_id) = effect_id {
        outbound_messages::record_provider_status(&mut conn, effect_id, &report).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `effect_id` of the callback URL, if it has one.
fn callback_effect_id(uri: &axum::http::Uri) -> Result<Option<uuid::Uuid>, ApiError> {
    let query = uri.query().unwrap_or_default();
    let Some((_, value)) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "effect_id")
    else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| ApiError::field("effect_id", "must be a UUID"))
}

/// A message from a student, routed to the account that owns the sender it was sent to (see
/// `herald_shared::replies`): an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
/// QUIT) unsubscribes that phone in the accounts the sender serves and skips their unsent
/// messages; START or UNSTOP subscribes again the students an opt-out keyword unsubscribed;
/// anything else answers the latest question that account sent the phone from that sender,
/// graded for `choice` questions. Each `MessageSid` is handled once.
#[utoipa::path(post, path = "/webhooks/twilio/inbound", tag = "webhooks", operation_id = "webhooks.twilio.inbound",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Twilio's incoming-message parameters (MessageSid, From, To, Body, MessagingServiceSid, …)"),
    params(("X-Twilio-Signature" = String, Header)),
    responses((status = 200, description = "empty TwiML", content_type = "text/xml", body = String),
        (status = 403, description = "missing or bad signature"),
        (status = 422, description = "a required parameter is missing or holds the NUL character",
            body = Problem, content_type = "application/problem+json")))]
async fn inbound_message(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|err| unreadable_body(&err, "a webhook"))?;
    let Some(params) = verified_params(&state, &uri, &headers, &body) else {
        return Ok(forbidden());
    };
    refuse_nul(&params)?;
    let required = |name: &'static str| {
        param(&params, name).ok_or_else(|| ApiError::field(name, "is required"))
    };
    let (message_sid, from, to) = (required("MessageSid")?, required("From")?, required("To")?);
    let from_phone = from.strip_prefix("whatsapp:").unwrap_or(from).trim();
    let message = twilio_events::InboundMessage {
        message_sid,
        from_phone,
        to: to.trim(),
        messaging_service_sid: param(&params, "MessagingServiceSid").filter(|sid| !sid.is_empty()),
        body: param(&params, "Body").unwrap_or_default(),
    };
    let mut tx = state.db.begin().await?;
    let handled = replies::handle(&mut tx, &state.config.twilio, &message).await?;
    tx.commit().await?;
    tracing::debug!(?handled, "inbound message");
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

/// PostgreSQL text cannot hold the NUL character: a parameter carrying one (`%00`) is
/// refused by name before anything is stored.
fn refuse_nul(params: &[(String, String)]) -> Result<(), ApiError> {
    match params
        .iter()
        .find(|(key, value)| key.contains('\0') || value.contains('\0'))
    {
        Some((key, _)) => Err(ApiError::field(
            key.replace('\0', "\\0"),
            "must not contain the NUL character (%00)",
        )),
        None => Ok(()),
    }
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
