//! `GET/PUT /api/v1/account/twilio`: the account's own Twilio senders.
//!
//! Numbers or a Messaging Service on the platform's Twilio account that belong to this
//! account alone: its messages go out from them and replies to them reach it only. A sender
//! another account holds, or the platform's shared default sender, is a 409. Herald does not
//! ask Twilio whether the platform owns a number: the operator buys numbers and tells each
//! account which are its own.

use axum::Json;
use axum::extract::State;
use herald_shared::config::{TwilioConfig, is_sid};
use herald_shared::db::account_senders::{self, AccountSenders};
use herald_shared::phone::PhoneNumber;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, AuthUser};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_twilio, put_twilio))
}

/// The account's own senders; a field left out (or null) uses the platform's shared
/// default sender for that channel. Numbers are E.164 (`+` and the country code).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwilioSendersIn {
    /// SMS sender: an E.164 number.
    #[schema(example = "+14155550123", pattern = r"^\+[1-9][0-9]{3,14}$")]
    #[serde(default)]
    pub sms_from: Option<String>,
    /// WhatsApp sender: an E.164 number, without `whatsapp:`.
    #[schema(example = "+14155238886", pattern = r"^\+[1-9][0-9]{3,14}$")]
    #[serde(default)]
    pub whatsapp_from: Option<String>,
    /// A Messaging Service (`MG` + 32 hex digits); when set it sends both channels.
    #[schema(
        example = "MG0123456789abcdef0123456789abcdef",
        pattern = "^MG[0-9a-fA-F]{32}$"
    )]
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
}

/// The account's own senders, and whether each channel uses the shared default sender.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwilioSendersOut {
    pub sms_from: Option<String>,
    pub whatsapp_from: Option<String>,
    pub messaging_service_sid: Option<String>,
    /// True when SMS go out from the platform's shared sender (replies there are attributed
    /// only when this account alone asked that phone recently).
    pub sms_uses_shared_sender: bool,
    /// The same for WhatsApp.
    pub whatsapp_uses_shared_sender: bool,
}

impl From<AccountSenders> for TwilioSendersOut {
    fn from(senders: AccountSenders) -> Self {
        let service = senders.messaging_service_sid.is_some();
        Self {
            sms_uses_shared_sender: !service && senders.sms_from.is_none(),
            whatsapp_uses_shared_sender: !service && senders.whatsapp_from.is_none(),
            sms_from: senders.sms_from,
            whatsapp_from: senders.whatsapp_from,
            messaging_service_sid: senders.messaging_service_sid,
        }
    }
}

/// The account's own Twilio senders.
#[utoipa::path(get, path = "/api/v1/account/twilio", tag = "account", operation_id = "v1.account.twilio.get",
    security(("bearer" = [])),
    responses((status = 200, body = TwilioSendersOut),
        (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn get_twilio(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<TwilioSendersOut>, ApiError> {
    let senders = account_senders::get(&state.db, auth.account_id).await?;
    Ok(Json(senders.into()))
}

/// Replaces the account's own Twilio senders. Messages sent from now on use them.
#[utoipa::path(put, path = "/api/v1/account/twilio", tag = "account", operation_id = "v1.account.twilio.put",
    security(("bearer" = [])), request_body = TwilioSendersIn,
    responses((status = 200, body = TwilioSendersOut),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another account (or the platform's shared default) holds a sender",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn put_twilio(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<TwilioSendersIn>,
) -> Result<Json<TwilioSendersOut>, ApiError> {
    let senders = parse(body)?;
    refuse_shared(&state.config.twilio, &senders)?;
    account_senders::put(&state.db, auth.account_id, &senders)
        .await
        .map_err(|err| match account_senders::taken_field(&err) {
            Some(field) => taken(field),
            None => err.into(),
        })?;
    Ok(Json(senders.into()))
}

fn parse(body: TwilioSendersIn) -> Result<AccountSenders, ApiError> {
    let mut errors = FieldErrors::default();
    // null (or leaving a field out) clears it; an empty string is not a sender
    let mut number = |field: &str, raw: Option<String>| {
        let raw = raw?;
        let parsed = if is_e164(&raw) {
            PhoneNumber::parse(&raw, None).map(|number| number.as_str().to_owned())
        } else {
            Err("must be an E.164 number: + and 4 to 15 digits, e.g. +14155550123".to_owned())
        };
        errors.check(field, parsed)
    };
    let sms_from = number("sms_from", body.sms_from);
    let whatsapp_from = number("whatsapp_from", body.whatsapp_from);
    let messaging_service_sid = body.messaging_service_sid;
    if let Some(sid) = &messaging_service_sid
        && !is_sid(sid, "MG")
    {
        errors.add(
            "messaging_service_sid",
            "must be MG followed by 32 hex digits",
        );
    }
    errors.finish()?;
    Ok(AccountSenders {
        sms_from,
        whatsapp_from,
        messaging_service_sid,
    })
}

/// Exactly E.164 as the schema states it (`^\+[1-9][0-9]{3,14}$`): a sender is written as
/// Twilio writes it, no spaces or punctuation to normalise.
fn is_e164(raw: &str) -> bool {
    raw.strip_prefix('+').is_some_and(|digits| {
        (4..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// The platform's default sender serves every account without its own: no account may take
/// it as its own, or replies to the others would reach it.
fn refuse_shared(config: &TwilioConfig, senders: &AccountSenders) -> Result<(), ApiError> {
    let number = |own: &Option<String>, whatsapp| {
        own.as_deref()
            .is_some_and(|own| config.is_shared_number(whatsapp, own))
    };
    if number(&senders.sms_from, false) {
        return Err(taken("sms_from"));
    }
    if number(&senders.whatsapp_from, true) {
        return Err(taken("whatsapp_from"));
    }
    if senders
        .messaging_service_sid
        .as_deref()
        .is_some_and(|sid| config.is_shared_service(sid))
    {
        return Err(taken("messaging_service_sid"));
    }
    Ok(())
}

fn taken(field: &str) -> ApiError {
    ApiError::Conflict {
        code: "sender_taken",
        detail: format!(
            "{field}: this sender belongs to another account or is the platform's shared sender"
        ),
    }
}
