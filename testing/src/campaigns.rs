//! Campaign fixtures: an LLM provider (on a stand-in's URL) and model, people, and a campaign
//! of theirs, written with the `db` functions the API uses, and generation started as
//! `POST /api/v1/campaigns/{id}/generate` starts it.

#![expect(
    clippy::expect_used,
    reason = "a fixture that cannot be written fails the test at once, saying which"
)]

use chrono::{NaiveTime, Utc};
use herald_shared::campaign_launch::{self, Launched};
use herald_shared::db::campaigns::{self, CampaignFields, StepFields};
use herald_shared::db::written::Written;
use herald_shared::db::{campaign_messages, campaign_prospects, email_senders, llm, people};
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
    /// The campaign's senders, in rotation order (none: it cannot be launched).
    pub sender_ids: Vec<Uuid>,
    /// The send window: ISO weekdays, start and end on the prospect's clock.
    pub window: (Vec<i16>, NaiveTime, NaiveTime),
    pub default_timezone: String,
    /// The campaign's caps: daily and new prospects per day.
    pub caps: (i32, i32),
    /// Days between steps (step 1 has none).
    pub delay_days: i32,
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
            sender_ids: Vec::new(),
            window: (
                vec![1, 2, 3, 4, 5],
                NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
                NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
            ),
            default_timezone: "Europe/Berlin".to_owned(),
            caps: (1_000, 1_000),
            delay_days: 3,
        }
    }

    /// A window open all day every day (but the last millisecond): a send is never held for
    /// its window.
    pub fn always_open(mut self) -> Self {
        self.window = (
            vec![1, 2, 3, 4, 5, 6, 7],
            NaiveTime::MIN,
            NaiveTime::from_hms_milli_opt(23, 59, 59, 999).expect("time"),
        );
        self
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
            delay_days: if index == 0 { 0 } else { spec.delay_days },
            model_id: model.id,
            prompt: prompt.clone(),
        })
        .collect();
    let fields = CampaignFields {
        name: "outreach".to_owned(),
        default_timezone: spec.default_timezone.clone(),
        window_days: spec.window.0.clone(),
        window_start: spec.window.1,
        window_end: spec.window.2,
        daily_cap: spec.caps.0,
        new_prospects_per_day: spec.caps.1,
        max_cost_microusd: spec.max_cost_microusd,
        sender_ids: spec.sender_ids.clone(),
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

/// How a test sender sends.
#[derive(Debug, Clone)]
pub enum SenderTransport {
    /// Plain SMTP on 127.0.0.1 at this port (the SMTP stand-in).
    Smtp { port: u16 },
    /// SendGrid with this API key.
    Sendgrid { api_key: String },
}

/// Writes a sender `from_email` of the account; its id.
pub async fn create_sender(
    db: &PgPool,
    secrets: &SecretBox,
    account_id: Uuid,
    from_email: &str,
    transport: &SenderTransport,
    (daily_cap, min_gap_secs): (i32, i32),
) -> Uuid {
    let (transport, secret) = match transport {
        SenderTransport::Smtp { port } => (
            email_senders::Transport::Smtp {
                host: "127.0.0.1".to_owned(),
                port: i32::from(*port),
                tls: "none".to_owned(),
                username: None,
            },
            email_senders::Secret::Clear,
        ),
        SenderTransport::Sendgrid { api_key } => (
            email_senders::Transport::Sendgrid,
            email_senders::Secret::Set(secrets.seal(api_key).expect("seal the key")),
        ),
    };
    let fields = email_senders::SenderFields {
        from_name: "Ann Seller".to_owned(),
        from_email: from_email.to_owned(),
        reply_to: Some(format!("replies+{from_email}")),
        transport,
        secret,
        daily_cap,
        min_gap_secs,
    };
    let Written::Done(row) = email_senders::insert(db, account_id, &fields)
        .await
        .expect("insert the sender")
    else {
        panic!("the sender was refused");
    };
    row.id
}

/// Writes every prospect's e-mail of every step as if generated (`Step {n} for P{i}`) and
/// makes the campaign `ready`.
pub async fn write_all(db: &PgPool, account_id: Uuid, fixture: &CampaignFixture, steps: i32) {
    sqlx::query(
        "insert into campaign_messages (account_id, campaign_id, person_id, position, state,
                                        subject, body, written_at)
         select $1, $2, p.id, s.n, 'done', 'Step ' || s.n || ' for ' || p.first_name,
                'Hello ' || p.first_name || ', this is step ' || s.n || '.', now()
         from people p cross join generate_series(1, $4) as s(n)
         where p.id = any($3)",
    )
    .bind(account_id)
    .bind(fixture.campaign_id)
    .bind(&fixture.person_ids)
    .bind(steps)
    .execute(db)
    .await
    .expect("write the messages");
    sqlx::query("update campaigns set state = 'ready' where id = $1")
        .bind(fixture.campaign_id)
        .execute(db)
        .await
        .expect("make the campaign ready");
}

/// Launches the ready campaign as `POST /api/v1/campaigns/{id}/launch` does, from now.
pub async fn launch(db: &PgPool, account_id: Uuid, campaign_id: Uuid, queue: &str) -> Launched {
    let mut tx = db.begin().await.expect("begin");
    campaigns::lock(&mut tx, account_id, campaign_id)
        .await
        .expect("lock the campaign");
    let campaign = campaigns::get(&mut tx, account_id, campaign_id)
        .await
        .expect("read the campaign")
        .expect("the campaign exists");
    let launched = campaign_launch::launch(&mut tx, account_id, &campaign, queue, Utc::now())
        .await
        .expect("launch")
        .expect("something to send");
    tx.commit().await.expect("commit");
    launched
}
