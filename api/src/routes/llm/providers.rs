//! `/api/v1/llm/providers`: an OpenAI-compatible chat-completions endpoint (`base_url`), its
//! API key and the limits it grants per minute, which generation keeps to across every
//! replica. The key is sealed with `secrets.encryption_key` before it is stored and never
//! returned (`api_key_set`); on `PUT` an omitted key keeps the stored one. The deployment's
//! own provider (`llm.default_provider`) is listed to every account, read-only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use herald_shared::db::llm::{self as db, ProviderFields, ProviderRow};
use herald_shared::db::written::Written;
use herald_shared::domain::{int_in, parse_line};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::base_url;
use crate::error::{ApiError, FieldErrors, Problem};
use crate::extract::{ApiJson, ApiQuery, AuthUser, path_id};
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_provider, list_providers))
        .routes(routes!(get_provider, update_provider, delete_provider))
}

const MAX_PER_MINUTE: i64 = 1_000_000_000;
const MAX_KEY_CHARS: usize = 1_024;

/// A provider, as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderIn {
    /// 1–100 characters, unique among the account's providers (in any case).
    pub name: String,
    /// The API root, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    pub base_url: String,
    /// Required on create; omitted on `PUT`, the stored key stays.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Requests the provider allows per minute, 1–1,000,000,000.
    pub requests_per_minute: i64,
    /// Tokens (prompt + completion) the provider allows per minute, 1–1,000,000,000.
    pub tokens_per_minute: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderOut {
    pub id: Uuid,
    /// The deployment's own provider (`llm.default_provider`): every account may put models on
    /// it; it is not changed or deleted through the API (409 `provider_read_only`).
    pub deployment: bool,
    pub name: String,
    pub base_url: String,
    /// Always true: a provider has a key, which is never shown.
    pub api_key_set: bool,
    pub requests_per_minute: i32,
    pub tokens_per_minute: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProviderRow> for ProviderOut {
    fn from(row: ProviderRow) -> Self {
        Self {
            id: row.id,
            deployment: row.deployment,
            name: row.name,
            base_url: row.base_url,
            api_key_set: !row.sealed_api_key.is_empty(),
            requests_per_minute: row.requests_per_minute,
            tokens_per_minute: row.tokens_per_minute,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderPage {
    pub items: Vec<ProviderOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Checks a provider's fields and seals its key; `key_required` on create.
fn check(
    state: &AppState,
    body: &ProviderIn,
    key_required: bool,
) -> Result<ProviderFields, ApiError> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", parse_line(&body.name, 100));
    let base_url = errors.check(
        "base_url",
        base_url::check(&body.base_url, state.config.llm.allow_private_base_urls),
    );
    let requests_per_minute = errors.check(
        "requests_per_minute",
        int_in(body.requests_per_minute, 1..=MAX_PER_MINUTE),
    );
    let tokens_per_minute = errors.check(
        "tokens_per_minute",
        int_in(body.tokens_per_minute, 1..=MAX_PER_MINUTE),
    );
    let api_key = match body.api_key.as_deref().map(str::trim) {
        None if key_required => {
            errors.add("api_key", "is required");
            None
        }
        None => None,
        Some(key)
            if key.is_empty()
                || key.chars().count() > MAX_KEY_CHARS
                || key.chars().any(char::is_control) =>
        {
            errors.add(
                "api_key",
                format!("must be 1–{MAX_KEY_CHARS} characters without control characters"),
            );
            None
        }
        Some(key) => Some(key),
    };
    errors.finish()?;
    let sealed_api_key = api_key
        .map(|key| state.secrets.seal(key))
        .transpose()
        .map_err(|err| ApiError::Internal(err.into()))?;
    match (name, base_url, requests_per_minute, tokens_per_minute) {
        (Some(name), Some(base_url), Some(requests_per_minute), Some(tokens_per_minute)) => {
            Ok(ProviderFields {
                name,
                base_url,
                sealed_api_key,
                requests_per_minute,
                tokens_per_minute,
            })
        }
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "a provider field failed its check without an error"
        ))),
    }
}

fn written(result: Written<ProviderRow>) -> Result<ProviderRow, ApiError> {
    match result {
        Written::Done(row) => Ok(*row),
        Written::Refused(_) => Err(ApiError::Taken {
            code: "provider_exists",
            field: "name",
            detail: "another provider of this account has this name".to_owned(),
        }),
        Written::NotFound => Err(ApiError::NotFound("provider")),
    }
}

/// Adds a provider. Its key is sealed before it is stored and never shown again.
#[utoipa::path(post, path = "/api/v1/llm/providers", tag = "llm", operation_id = "v1.llm.providers.create",
    security(("bearer" = [])), request_body = ProviderIn,
    responses((status = 201, body = ProviderOut),
        (status = 409, description = "another provider of the account has the name, or it is the deployment's", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<ProviderIn>,
) -> Result<(StatusCode, Json<ProviderOut>), ApiError> {
    let fields = check(&state, &body, true)?;
    let row = written(db::insert_provider(&state.db, auth.account_id, &fields).await?)?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Lists the account's providers, newest first.
#[utoipa::path(get, path = "/api/v1/llm/providers", tag = "llm", operation_id = "v1.llm.providers.list",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ProviderPage),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn list_providers(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ProviderPage>, ApiError> {
    let mut errors = FieldErrors::default();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let rows =
        db::list_providers(&state.db, auth.account_id, page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |row| (row.created_at, row.id));
    Ok(Json(ProviderPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One provider.
#[utoipa::path(get, path = "/api/v1/llm/providers/{id}", tag = "llm", operation_id = "v1.llm.providers.get",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ProviderOut),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ProviderOut>, ApiError> {
    let id = path_id(&id, "provider")?;
    let row = db::get_provider(&state.db, auth.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("provider"))?;
    Ok(Json(row.into()))
}

/// Replaces a provider's fields; an omitted `api_key` keeps the stored key.
#[utoipa::path(put, path = "/api/v1/llm/providers/{id}", tag = "llm", operation_id = "v1.llm.providers.update",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ProviderIn,
    responses((status = 200, body = ProviderOut),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "another provider of the account has the name, or it is the deployment's", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn update_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderIn>,
) -> Result<Json<ProviderOut>, ApiError> {
    let id = path_id(&id, "provider")?;
    refuse_deployment(id)?;
    let fields = check(&state, &body, false)?;
    let row = written(db::update_provider(&state.db, auth.account_id, id, &fields).await?)?;
    Ok(Json(row.into()))
}

/// 409 `provider_read_only` for the deployment's provider: its operator configures it.
fn refuse_deployment(id: Uuid) -> Result<(), ApiError> {
    if id == db::DEPLOYMENT_PROVIDER_ID {
        return Err(ApiError::Conflict {
            code: "provider_read_only",
            detail: "this is the deployment's provider (llm.default_provider): its operator \
                     configures it"
                .to_owned(),
        });
    }
    Ok(())
}

/// Deletes a provider; 409 `provider_in_use` while a model names it (delete the models first).
#[utoipa::path(delete, path = "/api/v1/llm/providers/{id}", tag = "llm", operation_id = "v1.llm.providers.delete",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "a model names the provider, or it is the deployment's", body = Problem, content_type = "application/problem+json")))]
async fn delete_provider(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "provider")?;
    refuse_deployment(id)?;
    match db::delete_provider(&state.db, auth.account_id, id).await? {
        Written::Done(_) => Ok(StatusCode::NO_CONTENT),
        Written::Refused(_) => Err(ApiError::Conflict {
            code: "provider_in_use",
            detail: "models name this provider; delete them first".to_owned(),
        }),
        Written::NotFound => Err(ApiError::NotFound("provider")),
    }
}
