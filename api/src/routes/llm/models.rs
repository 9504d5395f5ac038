//! `/api/v1/llm/models`: a model on one of the account's providers with its prices, from which
//! each generated message's cost is recorded. Prices are US dollars per million tokens, stored
//! exactly as micro-dollars (at most six decimals).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::llm::{self as db, ModelFields, ModelRow};
use herald_shared::db::written::Written;
use herald_shared::domain::parse_line;
use herald_shared::money::{micro_usd, usd};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::PageRequest;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_model, list_models))
        .routes(routes!(get_model, update_model, delete_model))
}

/// The highest price accepted, in US dollars per million tokens.
const MAX_USD_PER_MTOK: f64 = 10_000.0;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelIn {
    /// One of the account's providers.
    pub provider_id: Uuid,
    /// The provider's model name (`gpt-4o-mini`), 1–200 characters; unique per provider.
    pub model: String,
    /// US dollars per million prompt tokens, 0–10,000, at most six decimals.
    pub input_usd_per_mtok: f64,
    /// US dollars per million completion tokens, 0–10,000, at most six decimals.
    pub output_usd_per_mtok: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelOut {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub model: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ModelRow> for ModelOut {
    fn from(row: ModelRow) -> Self {
        Self {
            id: row.id,
            provider_id: row.provider_id,
            model: row.model,
            input_usd_per_mtok: usd(row.input_microusd_per_mtok),
            output_usd_per_mtok: usd(row.output_microusd_per_mtok),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPage {
    pub items: Vec<ModelOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelPageQuery {
    /// Only this provider's models.
    pub provider_id: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn check(body: &ModelIn) -> Result<ModelFields, ApiError> {
    let mut errors = FieldErrors::default();
    let model = errors.check("model", parse_line(&body.model, 200));
    let input = errors.check(
        "input_usd_per_mtok",
        micro_usd(body.input_usd_per_mtok, MAX_USD_PER_MTOK),
    );
    let output = errors.check(
        "output_usd_per_mtok",
        micro_usd(body.output_usd_per_mtok, MAX_USD_PER_MTOK),
    );
    errors.finish()?;
    match (model, input, output) {
        (Some(model), Some(input), Some(output)) => Ok(ModelFields {
            provider_id: body.provider_id,
            model,
            input_microusd_per_mtok: input,
            output_microusd_per_mtok: output,
        }),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "a model field failed its check without an error"
        ))),
    }
}

/// The answer to a write of a model; `NotFound` there means its provider is not one of the
/// account's (another account's provider id is answered exactly like one that does not exist).
fn written(result: Written<ModelRow>) -> Result<ModelRow, ApiError> {
    match result {
        Written::Done(row) => Ok(*row),
        Written::Refused(db::MODEL_NAME_TAKEN) => Err(ApiError::Taken {
            code: "model_exists",
            field: "model",
            detail: "the provider has a model of this name".to_owned(),
        }),
        Written::Refused(_) | Written::NotFound => {
            Err(ApiError::field("provider_id", "no such provider"))
        }
    }
}

/// Adds a model to one of the account's providers.
#[utoipa::path(post, path = "/api/v1/llm/models", tag = "llm", operation_id = "v1.llm.models.create",
    security(("bearer" = [])), request_body = ModelIn,
    responses((status = 201, body = ModelOut),
        (status = 409, description = "the provider has a model of this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_model(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<ModelIn>,
) -> Result<(StatusCode, Json<ModelOut>), ApiError> {
    let fields = check(&body)?;
    let row = written(db::insert_model(&state.db, auth.account_id, &fields).await?)?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Lists the account's models, newest first, of one provider when `provider_id` is given.
#[utoipa::path(get, path = "/api/v1/llm/models", tag = "llm", operation_id = "v1.llm.models.list",
    security(("bearer" = [])), params(ModelPageQuery),
    responses((status = 200, body = ModelPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_models(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<ModelPageQuery>,
) -> Result<Json<ModelPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    let provider_id = query.provider_id.as_deref().and_then(|raw| {
        errors.check(
            "provider_id",
            raw.parse::<Uuid>().map_err(|_| "must be a UUID".to_owned()),
        )
    });
    errors.finish()?;
    let rows = db::list_models(
        &state.db,
        auth.account_id,
        provider_id,
        page.after,
        page.fetch_limit(),
    )
    .await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(ModelPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One model.
#[utoipa::path(get, path = "/api/v1/llm/models/{id}", tag = "llm", operation_id = "v1.llm.models.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ModelOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_model(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ModelOut>, ApiError> {
    let id = path_id(&id, "model")?;
    let row = db::get_model(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("model"))?;
    Ok(Json(row.into()))
}

/// Replaces a model's fields; it may move to another of the account's providers.
#[utoipa::path(put, path = "/api/v1/llm/models/{id}", tag = "llm", operation_id = "v1.llm.models.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ModelIn,
    responses((status = 200, body = ModelOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the provider has a model of this name", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_model(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ModelIn>,
) -> Result<Json<ModelOut>, ApiError> {
    let id = path_id(&id, "model")?;
    let fields = check(&body)?;
    let mut tx = state.db.begin().await?;
    // the model or its new provider is missing: tell which
    let result = db::update_model(&mut *tx, auth.account_id, id, &fields).await?;
    if matches!(result, Written::NotFound)
        && db::get_model(&mut *tx, auth.account_id, id)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound("model"));
    }
    let row = written(result)?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Deletes a model; 409 `model_in_use` while a campaign step writes with it.
#[utoipa::path(delete, path = "/api/v1/llm/models/{id}", tag = "llm", operation_id = "v1.llm.models.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a campaign step writes with the model", body = Problem, content_type = "application/problem+json")))]
async fn delete_model(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "model")?;
    match db::delete_model(&state.db, auth.account_id, id).await? {
        Written::Done(_) => Ok(StatusCode::NO_CONTENT),
        Written::Refused(_) => Err(ApiError::Conflict {
            code: "model_in_use",
            detail: "a campaign step writes with this model; change the step first".to_owned(),
        }),
        Written::NotFound => Err(ApiError::NotFound("model")),
    }
}
