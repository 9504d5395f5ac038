//! One-click unsubscribe (RFC 8058), no login: the link in each campaign e-mail's
//! `List-Unsubscribe` header and footer, `/u/{token}` (`herald_shared::unsubscribe`).
//!
//! - `POST /u/{token}` unsubscribes: the person's prospect of the campaign becomes
//!   `unsubscribed` and the address is suppressed for the whole account (reason
//!   `unsubscribed`), so no campaign of the account writes to it again. It answers 200 however
//!   often it is sent (mail providers send `List-Unsubscribe=One-Click` once, people press a
//!   button twice), also once the campaign or person is gone.
//! - `GET /u/{token}` only shows a page with a button that POSTs: link scanners and previews
//!   fetch every link in a mail, and must not unsubscribe anyone.
//!
//! A token Herald did not sign answers 404 (problem+json, as every refusal of the API), the
//! same for a forged and a malformed one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use herald_shared::db::campaign_prospects;
use herald_shared::db::campaign_sends::{self, Ending};
use herald_shared::db::suppressions::{self, SuppressionReason};
use herald_shared::unsubscribe;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(unsubscribe_page, unsubscribe_now))
}

/// A small page, readable without styles or scripts.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 32em; margin: 3em auto; padding: 0 1em\">\
         <h1>{title}</h1>{body}</body></html>\n"
    );
    (status, Html(html)).into_response()
}

/// A token Herald did not sign: a problem+json 404, as every refusal of the API.
fn not_valid() -> ApiError {
    ApiError::NotFound("unsubscribe link")
}

/// Shows a page with a button that unsubscribes; changes nothing.
#[utoipa::path(get, path = "/u/{token}", tag = "unsubscribe", operation_id = "unsubscribe.page",
    params(("token" = String, Path, description = "the token of the e-mail's unsubscribe link")),
    responses((status = 200, description = "a page with an unsubscribe button", content_type = "text/html", body = String),
        (status = 404, description = "not a link Herald made", body = Problem, content_type = "application/problem+json")))]
async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if unsubscribe::read(&state.secrets, &token).is_none() {
        return Err(not_valid());
    }
    Ok(page(
        StatusCode::OK,
        "Unsubscribe",
        "<p>Stop receiving these e-mails?</p>\
         <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>",
    ))
}

/// Unsubscribes the person the token names (RFC 8058 one-click, or the page's button).
#[utoipa::path(post, path = "/u/{token}", tag = "unsubscribe", operation_id = "unsubscribe.now",
    params(("token" = String, Path, description = "the token of the e-mail's unsubscribe link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`List-Unsubscribe=One-Click` from a mail provider, or nothing from the page"),
    responses((status = 200, description = "unsubscribed (also when already)", content_type = "text/html", body = String),
        (status = 404, description = "not a link Herald made", body = Problem, content_type = "application/problem+json")))]
async fn unsubscribe_now(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let Some((campaign_id, person_id)) = unsubscribe::read(&state.secrets, &token) else {
        return Err(not_valid());
    };
    let mut tx = state.db.begin().await?;
    if let Some(found) = campaign_prospects::unsubscribe(&mut tx, campaign_id, person_id).await? {
        let source = format!("one-click unsubscribe, campaign {campaign_id}");
        suppressions::suppress(
            &mut tx,
            found.account_id,
            &found.email,
            SuppressionReason::Unsubscribed,
            Some(&source),
        )
        .await?;
        // its e-mails not yet sent are canceled now, not only skipped when they come up
        campaign_sends::end_sequence(
            &mut tx,
            campaign_id,
            person_id,
            Ending::Unsubscribed,
            "not sent: the prospect unsubscribed",
        )
        .await?;
    }
    tx.commit().await?;
    Ok(page(
        StatusCode::OK,
        "Unsubscribed",
        "<p>You will not receive these e-mails any more.</p>",
    ))
}
