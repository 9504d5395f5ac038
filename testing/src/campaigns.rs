//! Campaign fixtures: an LLM provider (on a stand-in's URL) and model, people, and a campaign
//! of theirs, written with the `db` functions the API uses, and generation started as
//! `POST /api/v1/campaigns/{id}/generate` starts it.

#![expect(
    clippy::expect_used,
    reason = "a fixture that cannot be written fails the test at once, saying which"
)]

use chrono::NaiveTime;
use herald_shared::db::campaigns::{self, CampaignFields, StepFields};
use herald_shared::db::written::Written;
use herald_shared::db::{campaign_messages, campaign_prospects, llm, people};
use herald_shared::secrets::SecretBox;
use sqlx::PgPool;
use uuid::Uuid;

/// What a campaign fixture is made of.
#[derive(Debug, Clone)]
pub struct CampaignSpec {
    /// The provider's base URL (a stand-in's `…/v1`).
    pub base_url: String,
    pub api_key: String,
    pub requests_per_minute: i32,
    pub tokens_per_minute: i32,
    /// Micro-dollars per million input and output tokens.
    pub prices: (i64, i64),
    /// One prompt per step; step 1 goes at once, each later one 3 days on.
    pub prompts: Vec<String>,
    /// Prospects `p0@example.com`, `p1@example.com`, … (first names `P0`, `P1`, …).
    pub prospects: usize,
    pub max_cost_microusd: Option<i64>,
}

impl CampaignSpec {
    /// One step, `prospects` prospects, generous limits, $1 / $2 per million tokens.
    pub fn new(base_url: String, prospects: usize) -> Self {
        Self {
            base_url,
            api_key: "sk-test-key".to_owned(),
            requests_per_minute: 60_000,
            tokens_per_minute: 100_000_000,
            prices: (1_000_000, 2_000_000),
            prompts: vec!["Write to {{ first_name }} at {{ company }}.".to_owned()],
            prospects,
            max_cost_microusd: None,
        }
    }
}

/// A campaign fixture's ids.
#[derive(Debug, Clone)]
pub struct CampaignFixture {
    pub campaign_id: Uuid,
    pub provider_id: Uuid,
    pub person_ids: Vec<Uuid>,
}

/// Writes the provider, model, people and draft campaign of `spec` for the account.
pub async fn create_campaign(
    db: &PgPool,
    secrets: &SecretBox,
    account_id: Uuid,
    spec: &CampaignSpec,
) -> CampaignFixture {
    let mut tx = db.begin().await.expect("begin");
    let provider = llm::ProviderFields {
        name: format!("provider {}", Uuid::new_v4()),
        base_url: spec.base_url.clone(),
        sealed_api_key: Some(secrets.seal(&spec.api_key).expect("seal the key")),
        requests_per_minute: spec.requests_per_minute,
        tokens_per_minute: spec.tokens_per_minute,
    };
    let Written::Done(provider) = llm::insert_provider(&mut *tx, account_id, &provider)
        .await
        .expect("insert the provider")
    else {
        panic!("the provider was refused");
    };
    let model = llm::ModelFields {
        provider_id: provider.id,
        model: "gpt-test".to_owned(),
        input_microusd_per_mtok: spec.prices.0,
        output_microusd_per_mtok: spec.prices.1,
    };
    let Written::Done(model) = llm::insert_model(&mut *tx, account_id, &model)
        .await
        .expect("insert the model")
    else {
        panic!("the model was refused");
    };
    let mut person_ids = Vec::with_capacity(spec.prospects);
    for index in 0..spec.prospects {
        let person = people::NewPerson {
            email: format!("p{index}@example.com"),
            first_name: format!("P{index}"),
            company: "Acme".to_owned(),
            ..people::NewPerson::default()
        };
        let row = people::insert_person(&mut *tx, account_id, &person)
            .await
            .expect("insert a person");
        person_ids.push(row.id);
    }
    let steps = spec
        .prompts
        .iter()
        .enumerate()
        .map(|(index, prompt)| StepFields {
            delay_days: if index == 0 { 0 } else { 3 },
            model_id: model.id,
            prompt: prompt.clone(),
        })
        .collect();
    let fields = CampaignFields {
        name: "outreach".to_owned(),
        default_timezone: "Europe/Berlin".to_owned(),
        window_days: vec![1, 2, 3, 4, 5],
        window_start: NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        window_end: NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
        daily_cap: 1_000,
        new_prospects_per_day: 1_000,
        max_cost_microusd: spec.max_cost_microusd,
        sender_ids: Vec::new(),
        steps,
    };
    let campaign_id = campaigns::insert(&mut tx, account_id, &fields)
        .await
        .expect("insert the campaign")
        .expect("the campaign was refused");
    campaign_prospects::add(&mut tx, account_id, campaign_id, &person_ids)
        .await
        .expect("add the prospects");
    tx.commit().await.expect("commit");
    CampaignFixture {
        campaign_id,
        provider_id: provider.id,
        person_ids,
    }
}

/// Starts generating the campaign as the API does; the number of jobs planned.
pub async fn start_generation(
    db: &PgPool,
    account_id: Uuid,
    campaign_id: Uuid,
    queue: &str,
) -> usize {
    let mut tx = db.begin().await.expect("begin");
    campaigns::lock(&mut tx, account_id, campaign_id)
        .await
        .expect("lock the campaign");
    let planned = campaign_messages::create_and_plan(&mut tx, account_id, campaign_id, queue)
        .await
        .expect("plan the generation");
    campaigns::set_state(&mut tx, campaign_id, "generating")
        .await
        .expect("set the state");
    tx.commit().await.expect("commit");
    planned
}
