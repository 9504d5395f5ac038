//! People: the account's CRM contacts that campaigns write to (seed 003). Create, list with
//! search, get, replace, delete; many at once by CSV in `import`. `fields` holds the checks
//! both share. An e-mail is unique per account in any case (409 `person_exists` on `email`).

pub mod fields;
pub mod import;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::people::{self as db, NewPerson, PersonRow};
use herald_shared::db::{campaign_messages, campaign_sends, on_unique_violation};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::fields::{RawPerson, check_attributes, check_person};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

/// Longest search text.
pub const MAX_SEARCH_CHARS: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_person, list_people))
        .routes(routes!(get_person, update_person, delete_person))
        .merge(import::router())
}

/// A person. `PUT` takes the same fields and replaces them all: a field left out is cleared.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonIn {
    /// Unique in the account whatever its case; stored trimmed and lower-cased.
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// Up to 200 characters (default empty); also `last_name`, `company` and `title`.
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// IANA zone name of the person's home, e.g. `Europe/London`; abbreviations (`EST`) and
    /// fixed offsets (`Etc/GMT+5`) are refused. Absent or null: the campaign's zone applies.
    #[serde(default)]
    #[schema(example = "Europe/London")]
    pub timezone: Option<String>,
    /// Free-form text values for templates: at most 50, names of 1–100 characters, values
    /// of at most 1,000 (default none).
    #[serde(default)]
    #[schema(example = json!({"linkedin": "https://www.linkedin.com/in/ada"}))]
    pub attributes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonOut {
    pub id: Uuid,
    /// Lower-cased.
    pub email: String,
    /// Empty when not given, as `last_name`, `company` and `title`.
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub title: String,
    /// Null: the campaign's zone applies.
    pub timezone: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PersonRow> for PersonOut {
    fn from(row: PersonRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            company: row.company,
            title: row.title,
            timezone: row.timezone,
            attributes: row.attributes.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonPage {
    pub items: Vec<PersonOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PersonPageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (of the same search).
    pub cursor: Option<String>,
    /// Only people whose e-mail, name (first, last or both) or company contains this text,
    /// in any case; up to 200 characters, trimmed.
    pub q: Option<String>,
}

/// The person a body describes, or every field at fault.
fn check_body(body: PersonIn) -> Result<NewPerson, ApiError> {
    let attributes = body.attributes.unwrap_or_default();
    let mut errors = Vec::new();
    check_attributes(&attributes, &mut errors);
    let raw = RawPerson {
        email: &body.email,
        first_name: body.first_name.as_deref().unwrap_or_default(),
        last_name: body.last_name.as_deref().unwrap_or_default(),
        company: body.company.as_deref().unwrap_or_default(),
        title: body.title.as_deref().unwrap_or_default(),
        timezone: body.timezone.as_deref(),
    };
    match check_person(raw, attributes) {
        Ok(person) if errors.is_empty() => Ok(person),
        Ok(_) => Err(ApiError::Validation(errors)),
        Err(found) => Err(ApiError::Validation([found, errors].concat())),
    }
}

fn person_exists(email: &str) -> ApiError {
    ApiError::Taken {
        code: "person_exists",
        field: "email",
        detail: format!("a person with e-mail {email} is already in the account"),
    }
}

/// Adds a person to the account. An e-mail another person of the account has (in any case)
/// answers 409 `person_exists` naming `email`.
#[utoipa::path(post, path = "/api/v1/people", tag = "people", operation_id = "v1.people.create",
    security(("bearer" = [])), request_body = PersonIn,
    responses((status = 201, body = PersonOut),
        (status = 409, description = "the account has a person with the e-mail", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_person(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<PersonIn>,
) -> Result<(StatusCode, Json<PersonOut>), ApiError> {
    let person = check_body(body)?;
    let inserted = db::insert_person(&state.db, auth.account_id, &person).await;
    let row = on_unique_violation(inserted, db::UNIQUE_EMAIL)?
        .ok_or_else(|| person_exists(&person.email))?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Lists the account's people, newest first; `q` searches them.
#[utoipa::path(get, path = "/api/v1/people", tag = "people", operation_id = "v1.people.list",
    security(("bearer" = [])), params(PersonPageQuery),
    responses((status = 200, body = PersonPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_people(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PersonPageQuery>,
) -> Result<Json<PersonPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    let search = match query.q.as_deref() {
        Some(q) if q.chars().count() > MAX_SEARCH_CHARS => {
            errors.add(
                "q",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            );
            None
        }
        Some(q) if q.contains('\0') => {
            errors.add("q", "must not contain the NUL character");
            None
        }
        Some(q) => Some(q.trim()).filter(|q| !q.is_empty()),
        None => None,
    };
    errors.finish()?;
    let rows = db::list_people(
        &state.db,
        auth.account_id,
        search,
        page.after,
        page.fetch_limit(),
    )
    .await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(PersonPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One person.
#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "people", operation_id = "v1.people.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PersonOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_person(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PersonOut>, ApiError> {
    let id = path_id(&id, "person")?;
    let row = db::get_person(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("person"))?;
    Ok(Json(row.into()))
}

/// Replaces every field of a person (a field left out is cleared). An e-mail another person
/// of the account has answers 409 `person_exists` naming `email`.
#[utoipa::path(put, path = "/api/v1/people/{id}", tag = "people", operation_id = "v1.people.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = PersonIn,
    responses((status = 200, body = PersonOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another person of the account has the e-mail", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_person(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PersonIn>,
) -> Result<Json<PersonOut>, ApiError> {
    let id = path_id(&id, "person")?;
    let person = check_body(body)?;
    let updated = db::update_person(&state.db, auth.account_id, id, &person).await;
    let row = on_unique_violation(updated, db::UNIQUE_EMAIL)?
        .ok_or_else(|| person_exists(&person.email))?
        .ok_or(ApiError::NotFound("person"))?;
    Ok(Json(row.into()))
}

/// Deletes a person.
#[utoipa::path(delete, path = "/api/v1/people/{id}", tag = "people", operation_id = "v1.people.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn delete_person(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "person")?;
    let mut tx = state.db.begin().await?;
    // their campaign messages go with them: a campaign generating only for them is ready
    let campaigns =
        campaign_messages::lock_campaigns_of_person(&mut tx, auth.account_id, id).await?;
    // and their campaign e-mails not yet sent are canceled (a held one would stay held)
    campaign_sends::cancel_for_person(&mut tx, id).await?;
    if !db::delete_person(&mut *tx, auth.account_id, id).await? {
        return Err(ApiError::NotFound("person"));
    }
    campaign_messages::mark_ready_after_removal(&mut tx, &campaigns).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
