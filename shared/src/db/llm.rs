//! `llm_providers` and `llm_models`: the OpenAI-compatible endpoints an account's campaigns
//! generate text with (each with its request and token limits per minute) and the models it
//! prices on them. A provider's API key is stored sealed (`crate::secrets`); this module never
//! sees it in clear. Prices are micro-dollars per million tokens.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::written::Written;

/// A provider's fields as written; `sealed_api_key` `None` on update keeps the stored key.
#[derive(Debug, Clone)]
pub struct ProviderFields {
    pub name: String,
    pub base_url: String,
    pub sealed_api_key: Option<String>,
    pub requests_per_minute: i32,
    pub tokens_per_minute: i32,
}

/// The id of the deployment's own provider (`llm.default_provider`): the one row of
/// `llm_providers` with no account.
pub const DEPLOYMENT_PROVIDER_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001);

#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub id: Uuid,
    /// The deployment's provider, shared by every account and changed only by its
    /// configuration.
    pub deployment: bool,
    pub name: String,
    pub base_url: String,
    pub sealed_api_key: String,
    pub requests_per_minute: i32,
    pub tokens_per_minute: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ModelFields {
    pub provider_id: Uuid,
    pub model: String,
    pub input_microusd_per_mtok: i64,
    pub output_microusd_per_mtok: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct ModelRow {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub model: String,
    pub input_microusd_per_mtok: i64,
    pub output_microusd_per_mtok: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The account has a provider of this name (compared case-insensitively).
pub const PROVIDER_NAME_TAKEN: &str = "llm_providers_account_name";
/// The provider has a model of this name.
pub const MODEL_NAME_TAKEN: &str = "llm_models_provider_model";
/// A model names the provider being deleted.
pub const PROVIDER_IN_USE: &str = "llm_models_provider_id_fkey";
const CONSTRAINTS: &[&str] = &[PROVIDER_NAME_TAKEN, MODEL_NAME_TAKEN, PROVIDER_IN_USE];

/// Adds a provider (its key sealed by the caller).
pub async fn insert_provider(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    fields: &ProviderFields,
) -> Result<Written<ProviderRow>, sqlx::Error> {
    let inserted = sqlx::query_as!(
        ProviderRow,
        r#"insert into llm_providers (id, account_id, name, base_url, sealed_api_key,
                                    requests_per_minute, tokens_per_minute)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, account_id is null as "deployment!", name, base_url, sealed_api_key,
                   requests_per_minute, tokens_per_minute, created_at, updated_at"#,
        Uuid::now_v7(),
        account_id,
        fields.name,
        fields.base_url,
        fields.sealed_api_key,
        fields.requests_per_minute,
        fields.tokens_per_minute,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(inserted, CONSTRAINTS)
}

/// The account's provider `id`, or the deployment's.
pub async fn get_provider(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<ProviderRow>, sqlx::Error> {
    sqlx::query_as!(
        ProviderRow,
        r#"select id, account_id is null as "deployment!", name, base_url, sealed_api_key,
                requests_per_minute, tokens_per_minute, created_at, updated_at
         from llm_providers where (account_id = $1 or account_id is null) and id = $2"#,
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// A page of the account's providers and the deployment's, newest first.
pub async fn list_providers(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ProviderRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ProviderRow,
        r#"select id, account_id is null as "deployment!", name, base_url, sealed_api_key,
                requests_per_minute, tokens_per_minute, created_at, updated_at
         from llm_providers
         where (account_id = $1 or account_id is null)
           and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc
         limit $4"#,
        account_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Replaces one of the account's providers' fields (not the deployment's); a `None` key keeps
/// the stored one.
pub async fn update_provider(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
    fields: &ProviderFields,
) -> Result<Written<ProviderRow>, sqlx::Error> {
    let updated = sqlx::query_as!(
        ProviderRow,
        r#"update llm_providers set name = $3, base_url = $4,
             sealed_api_key = coalesce($5, sealed_api_key),
             requests_per_minute = $6, tokens_per_minute = $7
         where account_id = $1 and id = $2
         returning id, account_id is null as "deployment!", name, base_url, sealed_api_key,
                   requests_per_minute, tokens_per_minute, created_at, updated_at"#,
        account_id,
        id,
        fields.name,
        fields.base_url,
        fields.sealed_api_key,
        fields.requests_per_minute,
        fields.tokens_per_minute,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(updated, CONSTRAINTS)
}

/// Deletes a provider that no model names.
pub async fn delete_provider(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Written<Uuid>, sqlx::Error> {
    let deleted = sqlx::query_scalar!(
        "delete from llm_providers where account_id = $1 and id = $2 returning id",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(deleted, CONSTRAINTS)
}

/// Adds a model to one of the account's providers or the deployment's; `NotFound` when the
/// account has no provider `fields.provider_id` (another account's included).
pub async fn insert_model(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    fields: &ModelFields,
) -> Result<Written<ModelRow>, sqlx::Error> {
    // the provider is looked up within the account: another account's provider id is
    // refused exactly like one that does not exist
    let inserted = sqlx::query_as!(
        ModelRow,
        "insert into llm_models (id, account_id, provider_id, model, input_microusd_per_mtok,
                                 output_microusd_per_mtok)
         select $1, $2, p.id, $4, $5, $6 from llm_providers p
         where (p.account_id = $2 or p.account_id is null) and p.id = $3
         returning id, provider_id, model, input_microusd_per_mtok, output_microusd_per_mtok,
                   created_at, updated_at",
        Uuid::now_v7(),
        account_id,
        fields.provider_id,
        fields.model,
        fields.input_microusd_per_mtok,
        fields.output_microusd_per_mtok,
    )
    .fetch_optional(executor)
    .await;
    // `NotFound`: the account has no such provider
    Written::from_result(inserted, CONSTRAINTS)
}

pub async fn get_model(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<ModelRow>, sqlx::Error> {
    sqlx::query_as!(
        ModelRow,
        "select id, provider_id, model, input_microusd_per_mtok, output_microusd_per_mtok,
                created_at, updated_at
         from llm_models where account_id = $1 and id = $2",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await
}

/// A page of the account's models, newest first, of one provider when `provider_id` is given.
pub async fn list_models(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    provider_id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ModelRow>, sqlx::Error> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        ModelRow,
        "select id, provider_id, model, input_microusd_per_mtok, output_microusd_per_mtok,
                created_at, updated_at
         from llm_models
         where account_id = $1 and ($2::uuid is null or provider_id = $2)
           and ($3::timestamptz is null or (created_at, id) < ($3, $4))
         order by created_at desc, id desc
         limit $5",
        account_id,
        provider_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// Replaces a model's fields (its provider may change, to another of the account's);
/// `NotFound` when the account has no such model or no such provider.
pub async fn update_model(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
    fields: &ModelFields,
) -> Result<Written<ModelRow>, sqlx::Error> {
    let updated = sqlx::query_as!(
        ModelRow,
        "update llm_models m set provider_id = p.id, model = $4,
             input_microusd_per_mtok = $5, output_microusd_per_mtok = $6
         from llm_providers p
         where m.account_id = $1 and m.id = $2 and (p.account_id = $1 or p.account_id is null)
           and p.id = $3
         returning m.id, m.provider_id, m.model, m.input_microusd_per_mtok,
                   m.output_microusd_per_mtok, m.created_at, m.updated_at",
        account_id,
        id,
        fields.provider_id,
        fields.model,
        fields.input_microusd_per_mtok,
        fields.output_microusd_per_mtok,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(updated, CONSTRAINTS)
}

/// A campaign step writes with the model being deleted.
pub const MODEL_IN_USE: &str = "campaign_steps_model_id_fkey";

/// Deletes the account's model `id` (`Refused(MODEL_IN_USE)` while a campaign step uses it).
pub async fn delete_model(
    executor: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Written<Uuid>, sqlx::Error> {
    let deleted = sqlx::query_scalar!(
        "delete from llm_models where account_id = $1 and id = $2 returning id",
        account_id,
        id,
    )
    .fetch_optional(executor)
    .await;
    Written::from_result(deleted, &[MODEL_IN_USE])
}

/// Writes the deployment's provider ([`DEPLOYMENT_PROVIDER_ID`]) as configured (its key
/// sealed by the caller). Without one configured nothing changes: a provider written before
/// stays, since accounts' models may name it.
pub async fn sync_deployment_provider(
    executor: impl PgExecutor<'_>,
    fields: &ProviderFields,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into llm_providers (id, account_id, name, base_url, sealed_api_key,
                                    requests_per_minute, tokens_per_minute)
         values ($1, null, $2, $3, $4, $5, $6)
         on conflict (id) do update set name = excluded.name, base_url = excluded.base_url,
             sealed_api_key = excluded.sealed_api_key,
             requests_per_minute = excluded.requests_per_minute,
             tokens_per_minute = excluded.tokens_per_minute",
        DEPLOYMENT_PROVIDER_ID,
        fields.name,
        fields.base_url,
        fields.sealed_api_key,
        fields.requests_per_minute,
        fields.tokens_per_minute,
    )
    .execute(executor)
    .await?;
    Ok(())
}
