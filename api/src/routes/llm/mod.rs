//! LLM providers and models (`/api/v1/llm/...`): the OpenAI-compatible endpoints an account's
//! campaigns generate text with, and the models it prices on them.

pub mod base_url;
pub mod models;
pub mod providers;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(providers::router())
        .merge(models::router())
}
