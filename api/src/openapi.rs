//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations. It is
//! committed as `openapi.json` (`herald-api openapi > openapi.json`); CI fails on drift.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald API",
        description = "Submit and follow background work: course deliveries, e-mails, syncs. \
            Errors are `application/problem+json` (RFC 9457) with a stable `type` and the fields at fault.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "The account's own settings: its Twilio senders"),
        (name = "auth", description = "Accounts, sign-in and tokens"),
        (name = "jobs", description = "Every outbound effect and its state, for operators"),
        (name = "courses", description = "Courses: days of content with quiz questions"),
        (name = "groups", description = "Student groups: students with a phone, a channel and a time zone"),
        (name = "deliveries", description = "A course sent to a group, day by day, on each student's clock"),
        (name = "schedules", description = "Recurring group messages on a cron expression, in one zone or each recipient's own"),
        (name = "webhooks", description = "Providers calling Herald, authenticated by their signatures"),
        (name = "cron", description = "Cron expressions under Herald's DST rules"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
