//! Outreach campaigns (`/api/v1/campaigns`): created as a `draft` and changed only while one;
//! generation, launch, pause, resume and stop move the state later. A campaign names the
//! account's senders (rotated in the given order), a weekly send window read on each
//! prospect's own clock (the campaign's `default_timezone` for prospects without one), caps,
//! and its steps: the first goes at once (`delay_days` 0), each later one `delay_days` after
//! the previous step was sent to that prospect. A step's `prompt` is a template over the
//! prospect's fields and the earlier steps' texts (`herald_shared::campaign_prompts`); a
//! variable it may not name is refused here, by name.
//!
//! A send window is one span of the day (`end` after `start`, not across midnight). Who a
//! campaign writes to is in `prospects`.

pub mod generation;
pub mod launch;
pub mod prospects;
pub mod schedule;

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveTime, Utc};
use herald_shared::campaign_prompts;
use herald_shared::db::campaigns::{self as db, Campaign, CampaignFields, Refusal, StepFields};
use herald_shared::domain::{int_in, parse_line};
use herald_shared::money::{micro_usd, usd};
use herald_shared::time_rules::parse_region_zone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(get_campaign, update_campaign, delete_campaign))
        .merge(prospects::router())
        .merge(generation::router())
        .merge(launch::router())
        .merge(schedule::router())
}

const MAX_SENDERS: usize = 20;
const MAX_STEPS: usize = 10;
const MAX_PROMPT_CHARS: usize = 20_000;
const MAX_CAP: i64 = 100_000;
const MAX_COST_USD: f64 = 1_000_000.0;
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A campaign, as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignIn {
    /// 1–200 characters.
    pub name: String,
    /// 1–20 of the account's senders, each once; e-mails rotate over them in this order.
    pub sender_ids: Vec<Uuid>,
    /// IANA region zone for prospects without a `timezone` of their own.
    pub default_timezone: String,
    pub send_window: SendWindow,
    /// Most e-mails the campaign sends per day, 1–100,000 (each sender's own cap holds too).
    pub daily_cap: i64,
    /// Most prospects who get their first e-mail per day, 1–100,000.
    pub new_prospects_per_day: i64,
    /// Generation stops once the campaign's LLM cost reaches this, in US dollars.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// 1–10 steps; the first with `delay_days` 0.
    pub steps: Vec<StepIn>,
}

/// When e-mails may go out, on the prospect's clock.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWindow {
    /// Weekdays: `mon` … `sun`, each once.
    pub days: Vec<String>,
    /// `HH:MM`, 24-hour.
    pub start: String,
    /// `HH:MM`, after `start`.
    pub end: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepIn {
    /// 0 for the first step; 1–365 days after the previous step was sent, for later ones.
    pub delay_days: i64,
    /// One of the account's models.
    pub model_id: Uuid,
    /// A template (1–20,000 characters) over `email`, `first_name`, `last_name`, `company`,
    /// `title`, `timezone`, `attributes.<name>` and, from step 2, `step1.subject`,
    /// `step1.body`, … of the earlier steps.
    pub prompt: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignOut {
    pub id: Uuid,
    pub name: String,
    /// `draft`, `generating`, `ready`, `running`, `paused`, `completed` or `stopped`.
    pub state: String,
    pub sender_ids: Vec<Uuid>,
    pub default_timezone: String,
    pub send_window: SendWindow,
    pub daily_cap: i32,
    pub new_prospects_per_day: i32,
    pub max_cost_usd: Option<f64>,
    pub steps: Vec<StepOut>,
    /// What writing its messages has cost so far.
    pub spent: Spending,
    /// Each step's messages by state: only in `GET /api/v1/campaigns/{id}` (and the answers
    /// of its state changes), not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Vec<generation::StepProgressOut>>,
    /// Each step's e-mails by state once launched (empty before): only where `progress` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sending: Option<Vec<generation::StepSendingOut>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Spending {
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// At the models' prices.
    pub cost_usd: f64,
    /// `max_cost_usd` is set and reached: generation stopped, pending messages are `blocked`.
    pub limit_reached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepOut {
    /// 1-based.
    pub position: i32,
    pub delay_days: i32,
    pub model_id: Uuid,
    pub prompt: String,
}

impl From<Campaign> for CampaignOut {
    fn from(campaign: Campaign) -> Self {
        let row = campaign.row;
        let days = row
            .window_days
            .iter()
            .filter_map(|day| {
                usize::try_from(*day - 1)
                    .ok()
                    .and_then(|index| WEEKDAYS.get(index))
            })
            .map(|day| (*day).to_owned())
            .collect();
        Self {
            id: row.id,
            name: row.name,
            state: row.state,
            sender_ids: campaign.sender_ids,
            default_timezone: row.default_timezone,
            send_window: SendWindow {
                days,
                start: row.window_start.format("%H:%M").to_string(),
                end: row.window_end.format("%H:%M").to_string(),
            },
            daily_cap: row.daily_cap,
            new_prospects_per_day: row.new_prospects_per_day,
            max_cost_usd: row.max_cost_microusd.map(usd),
            spent: Spending {
                input_tokens: row.input_tokens,
                output_tokens: row.output_tokens,
                cost_usd: usd(row.cost_microusd),
                limit_reached: row
                    .max_cost_microusd
                    .is_some_and(|max| row.cost_microusd >= max),
            },
            progress: None,
            sending: None,
            steps: campaign
                .steps
                .into_iter()
                .map(|step| StepOut {
                    position: step.position,
                    delay_days: step.delay_days,
                    model_id: step.model_id,
                    prompt: step.prompt,
                })
                .collect(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    pub items: Vec<CampaignOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn clock(raw: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| "must be a time of day as HH:MM, like 09:00".to_owned())
}

/// The window's weekdays as ISO numbers (Monday 1), each once.
fn weekdays(days: &[String], errors: &mut FieldErrors) -> Vec<i16> {
    if days.is_empty() {
        errors.add("send_window.days", "must name at least one weekday");
    }
    let mut seen = HashSet::new();
    let mut numbers = Vec::new();
    for (index, day) in days.iter().enumerate() {
        let field = format!("send_window.days[{index}]");
        match WEEKDAYS
            .iter()
            .position(|known| *known == day.trim().to_lowercase())
        {
            None => errors.add(&field, "must be one of mon, tue, wed, thu, fri, sat, sun"),
            Some(_) if !seen.insert(day.trim().to_lowercase()) => {
                errors.add(&field, "is listed twice");
            }
            Some(position) => numbers.push(i16::try_from(position + 1).unwrap_or(1)),
        }
    }
    numbers.sort_unstable();
    numbers
}

fn check_steps(steps: &[StepIn], errors: &mut FieldErrors) -> Vec<StepFields> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        errors.add("steps", format!("must have 1 to {MAX_STEPS} steps"));
    }
    let mut checked = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let delay = if index == 0 {
            (step.delay_days == 0)
                .then_some(0)
                .ok_or_else(|| "must be 0: the first step goes at once".to_owned())
        } else {
            int_in(step.delay_days, 1..=365)
        };
        let delay_days = errors.check(&format!("steps[{index}].delay_days"), delay);
        let field = format!("steps[{index}].prompt");
        let prompt = step.prompt.trim();
        if prompt.is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
            errors.add(&field, format!("must be 1–{MAX_PROMPT_CHARS} characters"));
        } else if let Err(problem) = campaign_prompts::check(prompt, index + 1) {
            errors.add(&field, problem);
        }
        if let Some(delay_days) = delay_days {
            checked.push(StepFields {
                delay_days,
                model_id: step.model_id,
                prompt: prompt.to_owned(),
            });
        }
    }
    checked
}

/// Checks a campaign's fields; every invalid field is named. Whether the senders and models
/// are the account's is checked when it is written.
fn check(body: &CampaignIn) -> Result<CampaignFields, ApiError> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", parse_line(&body.name, 200));
    if body.sender_ids.is_empty() || body.sender_ids.len() > MAX_SENDERS {
        errors.add(
            "sender_ids",
            format!("must name 1 to {MAX_SENDERS} senders"),
        );
    }
    let mut seen = HashSet::new();
    for (index, id) in body.sender_ids.iter().enumerate() {
        if !seen.insert(id) {
            errors.add(&format!("sender_ids[{index}]"), "is listed twice");
        }
    }
    let zone = errors.check(
        "default_timezone",
        parse_region_zone(&body.default_timezone),
    );
    let window_days = weekdays(&body.send_window.days, &mut errors);
    let start = errors.check("send_window.start", clock(&body.send_window.start));
    let end = errors.check("send_window.end", clock(&body.send_window.end));
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        errors.add(
            "send_window.end",
            "must be after start (a window does not cross midnight)",
        );
    }
    let daily_cap = errors.check("daily_cap", int_in(body.daily_cap, 1..=MAX_CAP));
    let new_per_day = errors.check(
        "new_prospects_per_day",
        int_in(body.new_prospects_per_day, 1..=MAX_CAP),
    );
    let max_cost = body
        .max_cost_usd
        .map(|usd| errors.check("max_cost_usd", micro_usd(usd, MAX_COST_USD)));
    let steps = check_steps(&body.steps, &mut errors);
    errors.finish()?;
    match (name, zone, start, end, daily_cap, new_per_day) {
        (Some(name), Some(zone), Some(start), Some(end), Some(daily_cap), Some(new_per_day)) => {
            Ok(CampaignFields {
                name,
                default_timezone: zone,
                window_days,
                window_start: start,
                window_end: end,
                daily_cap,
                new_prospects_per_day: new_per_day,
                max_cost_microusd: max_cost.flatten(),
                sender_ids: body.sender_ids.clone(),
                steps,
            })
        }
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "a campaign field failed its check without an error"
        ))),
    }
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound => ApiError::NotFound("campaign"),
        // another account's sender or model is answered exactly like one that does not exist
        Refusal::UnknownSender(index) => {
            ApiError::field(format!("sender_ids[{index}]"), "no such sender")
        }
        Refusal::UnknownModel(index) => {
            ApiError::field(format!("steps[{index}].model_id"), "no such model")
        }
        Refusal::NotDraft(state) => ApiError::Conflict {
            code: "campaign_not_draft",
            detail: format!(
                "the campaign is {state}; only a draft can be changed (a completed or stopped one can be deleted)"
            ),
        },
    }
}

/// The account's campaign `id`, or 404.
pub(crate) async fn find(
    conn: &mut sqlx::PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Campaign, ApiError> {
    db::get(conn, account_id, id)
        .await?
        .ok_or(ApiError::NotFound("campaign"))
}

/// Creates a draft campaign.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", operation_id = "v1.campaigns.create",
    security(("bearer" = [])), request_body = CampaignIn,
    responses((status = 201, body = CampaignOut),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_campaign(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CampaignIn>,
) -> Result<(StatusCode, Json<CampaignOut>), ApiError> {
    let fields = check(&body)?;
    let mut tx = state.db.begin().await?;
    let id = db::insert(&mut tx, auth.account_id, &fields)
        .await?
        .map_err(refused)?;
    let campaign = find(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(campaign.into())))
}

/// Lists the account's campaigns, newest first.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", operation_id = "v1.campaigns.list",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = CampaignPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_campaigns(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let mut conn = state.db.acquire().await?;
    let campaigns = db::list(&mut conn, auth.account_id, page.after, page.fetch_limit()).await?;
    let (campaigns, next_cursor) = page.finish(campaigns, |campaign| {
        (campaign.row.created_at, campaign.row.id)
    });
    Ok(Json(CampaignPage {
        items: campaigns.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One campaign with its senders, steps, spending and each step's progress.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "v1.campaigns.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = CampaignOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_campaign(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<CampaignOut>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        generation::with_progress(&mut conn, auth.account_id, id).await?,
    ))
}

/// Replaces a draft campaign's fields, senders and steps; 409 `campaign_not_draft` once it
/// has moved on.
#[utoipa::path(put, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "v1.campaigns.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = CampaignIn,
    responses((status = 200, body = CampaignOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign is not a draft", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_campaign(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CampaignIn>,
) -> Result<Json<CampaignOut>, ApiError> {
    let id = path_id(&id, "campaign")?;
    let fields = check(&body)?;
    let mut tx = state.db.begin().await?;
    db::update(&mut tx, auth.account_id, id, &fields)
        .await?
        .map_err(refused)?;
    let campaign = find(&mut tx, auth.account_id, id).await?;
    tx.commit().await?;
    Ok(Json(campaign.into()))
}

/// Deletes a campaign that is a draft, completed or stopped; 409 `campaign_not_draft` while
/// it is under way (stop it first).
#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns", operation_id = "v1.campaigns.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the campaign is under way", body = Problem, content_type = "application/problem+json")))]
async fn delete_campaign(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "campaign")?;
    db::delete(&state.db, auth.account_id, id)
        .await?
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT)
}
