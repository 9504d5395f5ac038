//! `POST /webhooks/email/inbound/{secret}`: e-mails sent to a campaign's reply address, as
//! SendGrid's Inbound Parse posts them (multipart form: the parsed fields, or the whole
//! message in `email` when "raw" is on). The path's secret is `email.inbound_secret`; a wrong
//! one, or none configured, answers 404 like any unknown path.
//!
//! An e-mail is matched to the campaign e-mail it answers by the Message-IDs in its
//! `In-Reply-To` and `References` (Herald's are `<{effect_id}@{sender's domain}>`):
//! - a reply ends the prospect's sequence (`replied`): no later step is sent;
//! - an automatic reply (`Auto-Submitted` other than `no`, `X-Autoreply`, `Precedence:
//!   auto_reply|bulk|junk`) is recorded and the sequence goes on;
//! - a delivery report (`multipart/report`) is a bounce: it names the bounced e-mail by the
//!   Message-ID in the returned message; the address is suppressed and the sequence ends.
//!
//! Anything that matches no campaign e-mail is acknowledged (200, `matched: false`) and
//! dropped: SendGrid would otherwise post it again and again.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use herald_shared::db::campaign_sends;
use herald_shared::db::email_events::{self, ReplyKind};
use herald_shared::email_events::{InboundHeaders, classify, classify_raw, message_ids_in};
use herald_shared::providers::outreach::OutreachEmail;
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// SendGrid posts messages of up to 30 MB with their attachments; the attachments are not
/// read (only the header and text fields are kept), so this only bounds the upload.
const MAX_INBOUND_BYTES: usize = 32 * 1024 * 1024;

/// The fields kept, each at most this long (a text part longer than this is cut: the
/// Message-IDs a delivery report returns come first).
const MAX_FIELD_BYTES: usize = 256 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(inbound))
        .layer(DefaultBodyLimit::max(MAX_INBOUND_BYTES))
}

/// What Herald made of the e-mail.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundOut {
    /// Whether it answers a campaign e-mail.
    pub matched: bool,
    /// `reply`, `auto_reply` or `bounce`, when matched.
    pub kind: Option<String>,
}

/// Takes one e-mail from SendGrid's Inbound Parse (see the module doc).
#[utoipa::path(post, path = "/webhooks/email/inbound/{secret}", tag = "webhooks", operation_id = "webhooks.email.inbound",
    request_body(content = String, content_type = "multipart/form-data",
        description = "SendGrid Inbound Parse fields: `headers`, `from`, `subject`, `text`, … or `email` (raw)"),
    params(("secret" = String, Path, description = "email.inbound_secret")),
    responses((status = 200, body = InboundOut),
        (status = 404, description = "wrong secret", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "not a multipart form with headers or email", content_type = "application/problem+json", body = Problem)))]
async fn inbound(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<InboundOut>, ApiError> {
    if !secret_matches(state.config.email.inbound_secret.expose_secret(), &secret) {
        return Err(ApiError::NotFound("page"));
    }
    let mut multipart =
        multipart.map_err(|err| ApiError::field("body", format!("not a multipart form: {err}")))?;
    let form = read_form(&mut multipart).await?;
    let (headers, returned) = if let Some(raw) = &form.email {
        let headers = classify_raw(raw);
        let returned = headers.bounced_message_ids.clone();
        (headers, returned)
    } else if let Some(raw) = &form.headers {
        let headers = classify(raw);
        let returned = form.text.as_deref().map(message_ids_in).unwrap_or_default();
        (headers, returned)
    } else {
        return Err(ApiError::field(
            "headers",
            "the form has neither `headers` nor `email`",
        ));
    };
    let (kind, ids) = if headers.delivery_report {
        (ReplyKind::Bounce, returned)
    } else if headers.auto_reply {
        (ReplyKind::AutoReply, thread_of(&headers))
    } else {
        (ReplyKind::Reply, thread_of(&headers))
    };
    let effects: Vec<Uuid> = ids
        .iter()
        .filter_map(|id| OutreachEmail::effect_of(id))
        .collect();
    let mut tx = state.db.begin().await?;
    // found by its effect, and its stored Message-ID must be one of `ids` exactly (the domain
    // too), so an id Herald did not write matches nothing
    let send = if effects.is_empty() {
        None
    } else {
        campaign_sends::find_sent_by_message_ids(&mut *tx, &effects, &ids).await?
    };
    let Some(send) = send else {
        return Ok(Json(InboundOut {
            matched: false,
            kind: None,
        }));
    };
    let from = headers
        .from
        .or(form.from)
        .map(|text| text.replace('\0', ""));
    let subject = headers
        .subject
        .or(form.subject)
        .map(|text| text.replace('\0', ""));
    email_events::record_reply(&mut tx, &send, kind, from.as_deref(), subject.as_deref()).await?;
    tx.commit().await?;
    Ok(Json(InboundOut {
        matched: true,
        kind: Some(kind.as_str().to_owned()),
    }))
}

/// The Message-IDs a reply names, the one it answers first.
fn thread_of(headers: &InboundHeaders) -> Vec<String> {
    let mut ids = headers.in_reply_to.clone();
    ids.extend(headers.references.iter().rev().cloned());
    ids
}

/// The fields of the form Herald reads.
#[derive(Default)]
struct Form {
    headers: Option<String>,
    text: Option<String>,
    from: Option<String>,
    subject: Option<String>,
    email: Option<Vec<u8>>,
}

async fn read_form(multipart: &mut Multipart) -> Result<Form, ApiError> {
    let unreadable = |err: axum::extract::multipart::MultipartError| {
        ApiError::field("body", format!("the multipart form cannot be read: {err}"))
    };
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !matches!(
            name.as_str(),
            "headers" | "text" | "from" | "subject" | "email"
        ) {
            // attachments and the rest: drained by the next `next_field`, never kept
            continue;
        }
        let mut bytes = field.bytes().await.map_err(unreadable)?.to_vec();
        let limit = if name == "email" {
            MAX_INBOUND_BYTES
        } else {
            MAX_FIELD_BYTES
        };
        bytes.truncate(limit);
        // PostgreSQL's text cannot hold NUL: dropped rather than failing the reply's record
        let text = || String::from_utf8_lossy(&bytes).replace('\0', "");
        match name.as_str() {
            "headers" => form.headers = Some(text()),
            "text" => form.text = Some(text()),
            "from" => form.from = Some(text()),
            "subject" => form.subject = Some(text()),
            _ => form.email = Some(bytes),
        }
    }
    Ok(form)
}

/// Whether the path's secret is the configured one (never when none is configured). Compared
/// as SHA-256 digests, so the time taken says nothing about how much of the secret matched.
fn secret_matches(configured: &str, given: &str) -> bool {
    !configured.is_empty() && Sha256::digest(configured) == Sha256::digest(given)
}
