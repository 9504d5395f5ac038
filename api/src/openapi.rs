//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and
//! completed by [`finish`]. It is committed as `openapi.json` (`herald-api openapi >
//! openapi.json`); CI fails on drift, lints it with Redocly CLI and fuzzes the served copy
//! with schemathesis (`api/tests/e2e/contract.rs`).
//!
//! The answers every operation of a kind can give (401 without a token, 400/413/415/422 for a
//! JSON body, 404 for an id in the path, 422 for query parameters) are added here from what
//! the operation declares, instead of being repeated in every handler's annotation: a new
//! route gets them by declaring its security, body and parameters.

mod constraints;

use std::collections::BTreeSet;

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{
    Content, Header, HeaderBuilder, ObjectBuilder, PathItem, Ref, RefOr, Response, ResponseBuilder,
    Type,
};
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
        (name = "senders", description = "Mailboxes campaigns send e-mail from: SMTP or SendGrid, with a daily cap and a gap between sends"),
        (name = "campaigns", description = "Outreach campaigns: senders, a send window on each prospect's clock, caps and LLM-written steps"),
        (name = "llm", description = "LLM providers (OpenAI-compatible endpoints with their limits) and the models priced on them"),
        (name = "people", description = "People (CRM contacts) that campaigns write to: search, CSV import"),
        (name = "suppressions", description = "E-mail addresses the account must not send to, and why"),
        (name = "unsubscribe", description = "One-click unsubscribe links in campaign e-mails (RFC 8058), no login"),
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

/// The problem+json answers shared by many operations, as `#/components/responses/<name>`.
const SHARED_RESPONSES: [(&str, &str, &str); 6] = [
    (
        "401",
        "Unauthorized",
        "No `Authorization: Bearer <access token>`, or the token is invalid or expired, or its \
         session has ended.",
    ),
    (
        "400",
        "MalformedJson",
        "The body is not valid JSON (`/problems/malformed_json`).",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the server accepts.",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body was not sent with the content type the operation takes.",
    ),
    (
        "422",
        "ValidationFailed",
        "A field, query parameter or header is invalid; `errors` names each one \
         (`/problems/validation_failed`).",
    ),
    (
        "404",
        "NotFound",
        "Nothing of the caller's account has this id. An id that is not a UUID, or that \
         belongs to another account, answers the same.",
    ),
];

/// Completes the document generated from the routes. Run on the merged document (the
/// `#[openapi(modifiers)]` of [`ApiDoc`] run before the routes are added):
/// - `servers` is `/`: the document is served by the API it describes, so clients resolve
///   paths against the address they fetched it from;
/// - an operation without `security` is public and says so with `security: []`;
/// - every operation documents the problem+json answers it can give (see [`SHARED_RESPONSES`])
///   and every response has the `description` OpenAPI requires;
/// - request schemas of DTOs outside this module get the server's constraints
///   ([`constraints`]).
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    api.servers = Some(vec![Server::new("/")]);
    let mut used = BTreeSet::new();
    for item in api.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            used.extend(complete(operation));
        }
    }
    // only the referenced ones: an unused component is a lint error
    let components = api.components.get_or_insert_with(Default::default);
    for (status, name, description) in SHARED_RESPONSES {
        if used.contains(name) {
            components.responses.insert(
                name.to_owned(),
                RefOr::T(shared_response(status, description)),
            );
        }
    }
    // a rule that found nothing is a test failure (`constraints::tests`), not a server's
    let _unused = constraints::apply(&mut api);
    api
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn shared_response(status: &str, description: &str) -> Response {
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", problem_content());
    if status == "401" {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some("`Bearer`"))
                .build(),
        );
    }
    response.build()
}

fn retry_after() -> RefOr<Header> {
    RefOr::T(
        HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some("Seconds to wait before trying again."))
            .build(),
    )
}

fn problem_content() -> Content {
    Content::new(Some(Ref::from_schema_name("Problem")))
}

/// Adds the shared answers the operation can give, marks public operations, and fills in
/// missing descriptions and the problem+json body of error answers that name none. Returns the names of the shared responses it refers to.
fn complete(operation: &mut Operation) -> Vec<&'static str> {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    if operation.security.is_none() {
        operation.security = Some(Vec::new());
    }
    let json_body = matches!(&operation.request_body, Some(RefOr::T(body))
        if body.content.contains_key("application/json"));
    let located = |location: ParameterIn| {
        operation.parameters.iter().flatten().any(|parameter| {
            matches!(parameter, RefOr::T(parameter) if parameter.parameter_in == location)
        })
    };
    let (in_path, in_query, in_header) = (
        located(ParameterIn::Path),
        located(ParameterIn::Query),
        located(ParameterIn::Header),
    );

    let mut shared: Vec<&str> = Vec::new();
    if secured {
        shared.push("401");
    }
    if json_body {
        shared.extend(["400", "413", "415", "422"]);
    }
    if in_path {
        shared.push("404");
    }
    if in_query || in_header {
        shared.push("422");
    }
    let responses = &mut operation.responses.responses;
    let mut used = Vec::new();
    for status in shared {
        let Some((_, name, _)) = SHARED_RESPONSES.iter().find(|(s, ..)| *s == status) else {
            continue;
        };
        if !responses.contains_key(status) {
            let reference = Ref::new(format!("#/components/responses/{name}"));
            responses.insert(status.to_owned(), RefOr::Ref(reference));
            used.push(*name);
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if response.description.is_empty() {
            response.description = default_description(status);
        }
        // `ApiError::TooManyRequests` always says when to come back
        if status == "429" && !response.headers.contains_key("Retry-After") {
            response
                .headers
                .insert("Retry-After".to_owned(), retry_after());
        }
        // every error leaves through `ApiError`, so as problem+json
        if (status.starts_with('4') || status.starts_with('5')) && response.content.is_empty() {
            response.content.insert(
                "application/problem+json".to_owned(),
                RefOr::T(problem_content()),
            );
        }
    }
    used
}

/// The description of a response its annotation left without one: the shared answer's for
/// the problem statuses, the HTTP reason phrase otherwise.
fn default_description(status: &str) -> String {
    if let Some((_, _, description)) = SHARED_RESPONSES.iter().find(|(s, ..)| *s == status) {
        return (*description).to_owned();
    }
    status
        .parse::<u16>()
        .ok()
        .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Answer")
        .to_owned()
}
