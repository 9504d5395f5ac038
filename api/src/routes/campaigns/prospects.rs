//! A campaign's prospects: `POST /api/v1/campaigns/{id}/prospects` adds the account's people
//! (each once per campaign; adding again changes nothing), and people the account has
//! suppressed are added `skipped` with the reason and listed as such in the answer;
//! `GET …/prospects` lists them with their state. People can be added until the campaign is
//! launched (409 `campaign_launched` while running or paused, `campaign_ended` after); those
//! added while the campaign is generating or ready get their messages written too.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herald_shared::db::campaign_prospects::{self as db, ProspectRow};
use herald_shared::db::{campaign_messages, campaigns, people};
use herald_shared::effects::EffectKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::csv_import::{CsvBody, ImportOut};
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_prospects, list_prospects))
        .routes(routes!(import_prospects))
}

const MAX_PEOPLE: usize = 10_000;
const STATES: [&str; 6] = [
    "active",
    "skipped",
    "replied",
    "unsubscribed",
    "bounced",
    "completed",
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProspectsIn {
    /// 1–10,000 of the account's people.
    pub person_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProspectsAdded {
    /// Added, to be written to.
    pub added: i64,
    /// Prospects of the campaign already (or given twice), left as they were.
    pub already: i64,
    /// Added but not to be written to: the account suppressed their address.
    pub skipped: Vec<SkippedProspect>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedProspect {
    pub person_id: Uuid,
    pub email: String,
    /// `suppressed: unsubscribed`, `suppressed: bounced`, …
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProspectOut {
    pub person_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `active`, `skipped`, `replied`, `unsubscribed`, `bounced` or `completed`.
    pub state: String,
    /// Why a `skipped` prospect is skipped.
    pub skip_reason: Option<String>,
    pub added_at: DateTime<Utc>,
}

impl From<ProspectRow> for ProspectOut {
    fn from(row: ProspectRow) -> Self {
        Self {
            person_id: row.person_id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            state: row.state,
            skip_reason: row.skip_reason,
            added_at: row.added_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProspectPage {
    pub items: Vec<ProspectOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProspectPageQuery {
    /// Only prospects in this state.
    pub state: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Adds people to the campaign, each once; suppressed ones are added `skipped`. An id that is
/// not one of the account's people (another account's included) fails the request with
/// nothing added.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/prospects", tag = "campaigns",
    operation_id = "v1.campaigns.prospects.add", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProspectsIn,
    responses((status = 200, body = ProspectsAdded),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign was launched, or is completed or stopped", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn add_prospects(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProspectsIn>,
) -> Result<Json<ProspectsAdded>, ApiError> {
    let id = path_id(&id, "campaign")?;
    if body.person_ids.is_empty() || body.person_ids.len() > MAX_PEOPLE {
        return Err(ApiError::field(
            "person_ids",
            format!("must name 1 to {MAX_PEOPLE} people"),
        ));
    }
    let mut seen = HashSet::new();
    let distinct: Vec<Uuid> = body
        .person_ids
        .iter()
        .copied()
        .filter(|person| seen.insert(*person))
        .collect();
    let mut tx = state.db.begin().await?;
    let campaign_state = lock_open(&mut tx, auth.account_id, id).await?;
    let unknown = db::unknown_people(&mut *tx, auth.account_id, &body.person_ids).await?;
    if !unknown.is_empty() {
        let mut errors = FieldErrors::default();
        for index in unknown {
            errors.add(&format!("person_ids[{index}]"), "no such person");
        }
        errors.finish()?;
    }
    let added = db::add(&mut tx, auth.account_id, id, &distinct).await?;
    write_for_new_prospects(&state, &mut tx, auth.account_id, id, &campaign_state).await?;
    tx.commit().await?;
    let given_twice = i64::try_from(body.person_ids.len() - distinct.len()).unwrap_or(0);
    Ok(Json(answer(added, given_twice)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProspectsImported {
    /// What the people import did (the rows of `POST /api/v1/people/import`).
    pub import: ImportOut,
    /// What adding the imported people to the campaign did.
    pub prospects: ProspectsAdded,
}

/// Locks the account's campaign for new prospects and answers its state: 404 when it has
/// none, 409 once it was launched or ended.
async fn lock_open(
    tx: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<String, ApiError> {
    match campaigns::lock(tx, account_id, id).await? {
        None => Err(ApiError::NotFound("campaign")),
        Some(state) if state == "completed" || state == "stopped" => Err(ApiError::Conflict {
            code: "campaign_ended",
            detail: format!("the campaign is {state}; it takes no more prospects"),
        }),
        // a launched campaign's plan is made: a prospect added now would have no e-mails
        Some(state) if state == "running" || state == "paused" => Err(ApiError::Conflict {
            code: "campaign_launched",
            detail: format!(
                "the campaign is {state}; prospects are added before launch (start another \
                 campaign for new people)"
            ),
        }),
        Some(state) => Ok(state),
    }
}

/// Prospects added once the campaign's messages are being written (or are written) get
/// theirs written too: their messages are created and their first steps planned, and a
/// `ready` campaign is `generating` again until they are done.
async fn write_for_new_prospects(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
    campaign_state: &str,
) -> Result<(), ApiError> {
    if campaign_state != "generating" && campaign_state != "ready" {
        return Ok(());
    }
    let queue = &state.jobs.get(EffectKind::Generation).queue;
    if campaign_messages::create_and_plan(tx, account_id, id, queue).await? > 0 {
        campaigns::set_state(tx, id, "generating").await?;
    }
    Ok(())
}

fn answer(added: db::Added, given_twice: i64) -> ProspectsAdded {
    ProspectsAdded {
        added: added.added,
        already: added.already + given_twice,
        skipped: added
            .skipped
            .into_iter()
            .map(|(person_id, email, reason)| SkippedProspect {
                person_id,
                email,
                reason,
            })
            .collect(),
    }
}

/// Imports people from CSV exactly as `POST /api/v1/people/import` does (creating or updating
/// them by e-mail, bad rows reported by line) and adds every person the file wrote to the
/// campaign, as `POST …/prospects` does; all in one transaction.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/prospects/import", tag = "campaigns",
    operation_id = "v1.campaigns.prospects.import", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = String, content_type = "text/csv",
        description = "the people CSV of POST /api/v1/people/import"),
    responses((status = 200, body = ProspectsImported),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign was launched, or is completed or stopped", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "more than 10,000 rows or 2 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "the header is wrong", body = Problem, content_type = "application/problem+json")))]
async fn import_prospects(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    CsvBody(bytes): CsvBody,
) -> Result<Json<ProspectsImported>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut tx = state.db.begin().await?;
    let campaign_state = lock_open(&mut tx, auth.account_id, id).await?;
    let (import, emails) =
        crate::routes::people::import::import(&mut tx, auth.account_id, bytes).await?;
    let person_ids = people::ids_by_email(&mut *tx, auth.account_id, &emails).await?;
    let added = if person_ids.is_empty() {
        db::Added::default()
    } else {
        db::add(&mut tx, auth.account_id, id, &person_ids).await?
    };
    write_for_new_prospects(&state, &mut tx, auth.account_id, id, &campaign_state).await?;
    tx.commit().await?;
    Ok(Json(ProspectsImported {
        import,
        prospects: answer(added, 0),
    }))
}

/// The campaign's prospects in the order they were added, optionally of one state.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/prospects", tag = "campaigns",
    operation_id = "v1.campaigns.prospects.list", security(("bearer" = [])),
    params(("id" = Uuid, Path), ProspectPageQuery),
    responses((status = 200, body = ProspectPage),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_prospects(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ProspectPageQuery>,
) -> Result<Json<ProspectPage>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    let wanted = query.state.as_deref().map(str::trim);
    if let Some(wanted) = wanted
        && !STATES.contains(&wanted)
    {
        errors.add("state", format!("must be one of {}", STATES.join(", ")));
    }
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    super::find(&mut conn, auth.account_id, id).await?;
    let rows = db::list(&mut *conn, id, wanted, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.added_at, row.person_id));
    Ok(Json(ProspectPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
