//! Sending campaigns: launched e-mails going out through the SMTP stand-in (aiosmtpd) or
//! SendGrid (wiremock), threaded follow-ups planned by the follow-up pass, and everything that
//! stops a prospect's sequence — a reply, a suppression, a lost answer.

use chrono::{DateTime, Utc};
use herald_shared::db::campaign_sends::{self, SentSend};
use herald_shared::db::email_events::{self, ReplyKind};
use herald_shared::effects::EffectKind;
use herald_shared::secrets::SecretBox;
use herald_testing::campaigns::{self, CampaignFixture, CampaignSpec, SenderTransport};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{PATIENCE, TestWorker, wait_for, wait_until};

/// Settings every test here runs with: senders on 127.0.0.1, a quick follow-up pass.
fn settings() -> Vec<(&'static str, Value)> {
    vec![
        ("email.allow_private_smtp_hosts", Value::from(true)),
        ("campaigns.follow_up_interval_secs", Value::from(1)),
        ("api.public_url", Value::from("https://herald.example/")),
    ]
}

/// One campaign e-mail as the tests look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Send {
    effect_id: Uuid,
    person_id: Uuid,
    position: i32,
    sender_id: Uuid,
    message_id: String,
    due_at: DateTime<Utc>,
}

async fn sends(db: &PgPool, campaign_id: Uuid) -> Vec<Send> {
    sqlx::query_as(
        "select cs.effect_id, cs.person_id, cs.position, cs.sender_id, cs.message_id,
                e.due_at
         from campaign_sends cs join effects e on e.id = cs.effect_id
         where cs.campaign_id = $1 order by cs.person_id, cs.position",
    )
    .bind(campaign_id)
    .fetch_all(db)
    .await
    .unwrap()
}

async fn prospect_state(db: &PgPool, campaign_id: Uuid, person_id: Uuid) -> String {
    sqlx::query_scalar(
        "select state from campaign_prospects where campaign_id = $1 and person_id = $2",
    )
    .bind(campaign_id)
    .bind(person_id)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn campaign_state(db: &PgPool, campaign_id: Uuid) -> String {
    sqlx::query_scalar("select state from campaigns where id = $1")
        .bind(campaign_id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Waits for the send of `person_id`'s step `position` to exist.
async fn wait_for_send(db: &PgPool, campaign_id: Uuid, person_id: Uuid, position: i32) -> Send {
    wait_for(
        &format!("step {position} of {person_id} is planned"),
        PATIENCE,
        || async move {
            sends(db, campaign_id)
                .await
                .into_iter()
                .find(|send| send.person_id == person_id && send.position == position)
        },
    )
    .await
}

/// The campaign's first-planned and last-planned e-mails.
async fn earliest_and_latest(db: &PgPool, campaign_id: Uuid) -> (Send, Send) {
    let mut all = sends(db, campaign_id).await;
    all.sort_by_key(|send| send.due_at);
    let earliest = all.first().unwrap().clone();
    let latest = all.last().unwrap().clone();
    (earliest, latest)
}

/// Moves a planned follow-up's time to now (the test does not wait days for it).
async fn bring_forward(db: &PgPool, effect_id: Uuid) {
    sqlx::query(
        "update effects set due_at = now(), next_attempt_at = now()
         where id = $1 and state = 'planned'",
    )
    .bind(effect_id)
    .execute(db)
    .await
    .unwrap();
}

/// A ready campaign of `spec` (all `steps` written) from one sender, launched.
async fn launched(
    test: &TestWorker,
    mut spec: CampaignSpec,
    steps: i32,
    transport: &SenderTransport,
    pace: (i32, i32),
) -> CampaignFixture {
    let secrets = SecretBox::from_config(&test.env.config);
    let sender = campaigns::create_sender(
        test.db(),
        &secrets,
        test.account_id,
        "ann@seller.example",
        transport,
        pace,
    )
    .await;
    spec.sender_ids = vec![sender];
    spec.prompts = (1..=steps).map(|n| format!("Step {n}")).collect();
    spec.delay_days = 2;
    let fixture = campaigns::create_campaign(test.db(), &secrets, test.account_id, &spec).await;
    campaigns::write_all(test.db(), test.account_id, &fixture, steps).await;
    let queue = &test.jobs.get(EffectKind::CampaignEmail).queue;
    campaigns::launch(test.db(), test.account_id, fixture.campaign_id, queue).await;
    fixture
}

fn spec(prospects: usize) -> CampaignSpec {
    CampaignSpec::new("http://unused.invalid/v1".to_owned(), prospects).always_open()
}

/// Each step goes out over SMTP with its own Message-ID and one-click unsubscribe; the
/// follow-up is planned two days after step 1 at the same time of day, from the same sender,
/// and answers step 1's thread; after the last step the prospect and campaign complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steps_go_out_threaded_with_one_click_unsubscribe_and_the_campaign_completes() {
    let test = TestWorker::spawn_smtp(&settings(), |jobs| jobs).await;
    let port = test.smtp().port;
    let fixture = launched(&test, spec(1), 2, &SenderTransport::Smtp { port }, (200, 0)).await;
    let person = fixture.person_ids[0];
    let db = test.db();

    let first = wait_for_send(db, fixture.campaign_id, person, 1).await;
    let first = test.wait_for_state(first.effect_id, "sent").await;
    let second = wait_for_send(db, fixture.campaign_id, person, 2).await;
    // two days later at the same wall time in Berlin (the campaign's zone), whatever the
    // date: 47, 48 or 49 hours across a DST change
    let berlin = chrono_tz::Europe::Berlin;
    let sent_at = first.finished_at.unwrap().with_timezone(&berlin);
    let expected = herald_shared::time_rules::resolve_local(
        berlin,
        sent_at.naive_local() + chrono::Days::new(2),
    );
    assert_eq!(second.due_at, expected);
    let step1 = sends(db, fixture.campaign_id).await.remove(0);
    assert_eq!(second.sender_id, step1.sender_id);

    bring_forward(db, second.effect_id).await;
    test.wait_for_state(second.effect_id, "sent").await;

    let mails = test.smtp().messages();
    assert_eq!(mails.len(), 2, "{mails:?}");
    let (one, two) = (&mails[0], &mails[1]);
    assert_eq!(one.header("message-id"), Some(step1.message_id.as_str()));
    assert_eq!(
        step1.message_id,
        format!("<{}@seller.example>", step1.effect_id)
    );
    assert_eq!(one.header("subject"), Some("Step 1 for P0"));
    assert_eq!(one.header("in-reply-to"), None);
    let unsubscribe = one.header("list-unsubscribe").unwrap();
    assert!(
        unsubscribe.starts_with("<https://herald.example/u/") && unsubscribe.ends_with('>'),
        "{unsubscribe}"
    );
    assert_eq!(
        one.header("list-unsubscribe-post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(one.header("reply-to"), Some("replies+ann@seller.example"));
    assert_eq!(two.header("in-reply-to"), Some(step1.message_id.as_str()));
    assert_eq!(two.header("references"), Some(step1.message_id.as_str()));

    wait_until("the campaign completes", PATIENCE, || async move {
        campaign_state(db, fixture.campaign_id).await == "completed"
    })
    .await;
    assert_eq!(
        prospect_state(db, fixture.campaign_id, person).await,
        "completed"
    );
    test.finish().await;
}

/// A reply to step 1 cancels the follow-up already planned: it is never sent, and the prospect
/// is `replied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_stops_the_follow_ups() {
    let test = TestWorker::spawn_smtp(&settings(), |jobs| jobs).await;
    let port = test.smtp().port;
    let fixture = launched(&test, spec(1), 3, &SenderTransport::Smtp { port }, (200, 0)).await;
    let person = fixture.person_ids[0];
    let db = test.db();
    let first = wait_for_send(db, fixture.campaign_id, person, 1).await;
    test.wait_for_state(first.effect_id, "sent").await;
    let second = wait_for_send(db, fixture.campaign_id, person, 2).await;

    // the reply, as the inbound webhook records it
    let send = SentSend {
        effect_id: first.effect_id,
        account_id: test.account_id,
        campaign_id: fixture.campaign_id,
        person_id: person,
        email: "p0@example.com".to_owned(),
        transport: "smtp".to_owned(),
    };
    let mut conn = db.acquire().await.unwrap();
    email_events::record_reply(&mut conn, &send, ReplyKind::Reply, None, None)
        .await
        .unwrap();
    drop(conn);

    let second = test.wait_for_state(second.effect_id, "canceled").await;
    assert!(second.last_error.unwrap().contains("replied"));
    assert_eq!(
        prospect_state(db, fixture.campaign_id, person).await,
        "replied"
    );
    wait_until("the campaign completes", PATIENCE, || async move {
        campaign_state(db, fixture.campaign_id).await == "completed"
    })
    .await;
    assert_eq!(test.smtp().messages().len(), 1);
    assert_eq!(sends(db, fixture.campaign_id).await.len(), 2, "no step 3");
    test.finish().await;
}

/// An address suppressed after launch is not written to: its e-mail is canceled when it comes
/// up, and the prospect's sequence ends with the suppression's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_suppressed_address_is_not_sent_to() {
    let test = TestWorker::spawn_smtp(&settings(), |jobs| jobs).await;
    let port = test.smtp().port;
    // two prospects an hour apart (the sender's gap): the second is suppressed meanwhile
    let fixture = launched(
        &test,
        spec(2),
        1,
        &SenderTransport::Smtp { port },
        (200, 3600),
    )
    .await;
    let db = test.db();
    let (earlier, later) = earliest_and_latest(db, fixture.campaign_id).await;
    assert!(later.due_at - earlier.due_at >= chrono::Duration::seconds(3600));
    test.wait_for_state(earlier.effect_id, "sent").await;
    sqlx::query(
        "insert into suppressions (account_id, email, reason, source)
         select $1, email, 'bounced', 'test' from people where id = $2",
    )
    .bind(test.account_id)
    .bind(later.person_id)
    .execute(db)
    .await
    .unwrap();
    bring_forward(db, later.effect_id).await;
    let row = test.wait_for_state(later.effect_id, "canceled").await;
    assert!(row.last_error.unwrap().contains("suppressed (bounced)"));
    assert_eq!(
        prospect_state(db, fixture.campaign_id, later.person_id).await,
        "bounced"
    );
    assert_eq!(test.smtp().messages().len(), 1);
    test.finish().await;
}

/// A follow-up due while the sender's last send is within its gap waits for the gap (the
/// sender's slot is shared by every campaign and replica): two e-mails of one sender brought
/// due together go out at least the gap apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_of_one_sender_keep_its_gap() {
    let test = TestWorker::spawn_smtp(&settings(), |jobs| jobs).await;
    let port = test.smtp().port;
    let fixture = launched(&test, spec(2), 1, &SenderTransport::Smtp { port }, (200, 2)).await;
    let db = test.db();
    for send in sends(db, fixture.campaign_id).await {
        bring_forward(db, send.effect_id).await;
    }
    let mut finished = Vec::new();
    for send in sends(db, fixture.campaign_id).await {
        finished.push(
            test.wait_for_state(send.effect_id, "sent")
                .await
                .finished_at
                .unwrap(),
        );
    }
    finished.sort();
    // the slots are 2 s apart; the sends' own lengths (the first opens the connection) can
    // bring their ends a little closer: without the gap they would end milliseconds apart
    let gap = finished[1] - finished[0];
    assert!(
        gap >= chrono::Duration::milliseconds(1500),
        "sent {gap} apart"
    );
    test.finish().await;
}

/// Through SendGrid: the request carries the threading and unsubscribe headers and the
/// effect as a custom argument; SendGrid's message id is recorded. A 500 (SendGrid may have
/// taken it) leaves the e-mail `unknown` after one call, never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sendgrid_sends_once_and_a_lost_answer_is_never_resent() {
    let sendgrid = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("x-message-id", "sg-1"))
        .up_to_n_times(1)
        .mount(&sendgrid)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&sendgrid)
        .await;
    let mut overrides = settings();
    overrides.push(("sendgrid.base_url", Value::from(sendgrid.uri())));
    let test = TestWorker::spawn(&overrides, |jobs| jobs).await;
    let transport = SenderTransport::Sendgrid {
        api_key: "SG.test-key".to_owned(),
    };
    let fixture = launched(&test, spec(2), 1, &transport, (200, 2)).await;
    let db = test.db();
    let mut all = sends(db, fixture.campaign_id).await;
    all.sort_by_key(|send| send.due_at);
    let first = test.wait_for_state(all[0].effect_id, "sent").await;
    assert_eq!(first.provider_id.as_deref(), Some("sg-1"));
    bring_forward(db, all[1].effect_id).await;
    let lost = test.wait_for_state(all[1].effect_id, "unknown").await;
    assert_eq!(lost.attempts, 1);
    test.wait_for_idle().await;
    let requests = sendgrid.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        2,
        "one call each, the lost one not repeated"
    );
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body["personalizations"][0]["custom_args"]["effect_id"],
        Value::from(all[0].effect_id.to_string())
    );
    assert_eq!(
        body["headers"]["List-Unsubscribe-Post"],
        Value::from("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        requests[0].headers.get("authorization").unwrap(),
        "Bearer SG.test-key"
    );
    // the prospect whose e-mail may not have gone out gets no follow-up: the sequence ends
    let person = all[1].person_id;
    wait_until(
        "the unknown send ends the sequence",
        PATIENCE,
        || async move { prospect_state(db, fixture.campaign_id, person).await == "skipped" },
    )
    .await;
    test.finish().await;
}

/// A campaign paused holds what is not sent yet; the worker sends nothing of it until it is
/// resumed, and then sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_campaign_sends_nothing_until_resumed() {
    let test = TestWorker::spawn_smtp(&settings(), |jobs| jobs).await;
    let port = test.smtp().port;
    let fixture = launched(
        &test,
        spec(2),
        1,
        &SenderTransport::Smtp { port },
        (200, 3600),
    )
    .await;
    let db = test.db();
    let (earlier, later) = earliest_and_latest(db, fixture.campaign_id).await;
    test.wait_for_state(earlier.effect_id, "sent").await;

    // as `POST …/pause` does
    let mut tx = db.begin().await.unwrap();
    assert!(
        campaign_sends::pause(&mut tx, fixture.campaign_id)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(test.state(later.effect_id).await, "held");
    test.wait_for_idle().await;
    assert_eq!(test.smtp().messages().len(), 1);

    let mut tx = db.begin().await.unwrap();
    let campaign = herald_shared::db::campaigns::get(&mut tx, test.account_id, fixture.campaign_id)
        .await
        .unwrap()
        .unwrap();
    let resumed = herald_shared::campaign_launch::resume(&mut tx, &campaign, Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(resumed.planned, 1);
    // re-planned from now, and the sender's gap after the first send still holds
    let replanned = test.row(later.effect_id).await;
    assert_eq!(replanned.state, "planned");
    let first_sent = test.row(earlier.effect_id).await.finished_at.unwrap();
    assert!(
        replanned.due_at >= first_sent + chrono::Duration::seconds(3600),
        "re-planned at {} after a send at {first_sent}",
        replanned.due_at
    );
    // (the test does not wait the hour: the sender's gap is lifted and the e-mail brought due)
    sqlx::query("update email_senders set min_gap_secs = 0 where id = $1")
        .bind(later.sender_id)
        .execute(db)
        .await
        .unwrap();
    bring_forward(db, later.effect_id).await;
    test.wait_for_state(later.effect_id, "sent").await;
    assert_eq!(test.smtp().messages().len(), 2);
    test.finish().await;
}

/// An e-mail an operator cancels through the jobs API ends its prospect's sequence
/// (`skipped`, with the reason), so the campaign still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_canceled_by_an_operator_ends_the_sequence_and_the_campaign_completes() {
    let test = TestWorker::spawn_smtp(&settings(), |jobs| jobs).await;
    let port = test.smtp().port;
    let fixture = launched(
        &test,
        spec(2),
        1,
        &SenderTransport::Smtp { port },
        (200, 3600),
    )
    .await;
    let db = test.db();
    let (earlier, later) = earliest_and_latest(db, fixture.campaign_id).await;
    test.wait_for_state(earlier.effect_id, "sent").await;
    // as `POST /api/v1/jobs/{id}/cancel` does
    sqlx::query(
        "update effects set state = 'canceled', last_error = 'canceled by an operator',
             finished_at = now()
         where id = $1 and state = 'planned'",
    )
    .bind(later.effect_id)
    .execute(db)
    .await
    .unwrap();
    wait_until("the campaign completes", PATIENCE, || async move {
        campaign_state(db, fixture.campaign_id).await == "completed"
    })
    .await;
    assert_eq!(
        prospect_state(db, fixture.campaign_id, later.person_id).await,
        "skipped"
    );
    test.finish().await;
}

/// SendGrid refusing the sender's key pauses the campaign (the e-mail held with the others)
/// instead of failing every prospect's sequence; nothing is lost, nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_sendgrid_key_pauses_the_campaign_and_holds_its_emails() {
    let sendgrid = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"errors": [{"message": "The provided authorization grant is invalid"}]}),
        ))
        .mount(&sendgrid)
        .await;
    let mut overrides = settings();
    overrides.push(("sendgrid.base_url", Value::from(sendgrid.uri())));
    let test = TestWorker::spawn(&overrides, |jobs| jobs).await;
    let transport = SenderTransport::Sendgrid {
        api_key: "SG.revoked".to_owned(),
    };
    let fixture = launched(&test, spec(2), 1, &transport, (200, 3600)).await;
    let db = test.db();
    let all = sends(db, fixture.campaign_id).await;
    let first = all.iter().min_by_key(|send| send.due_at).unwrap();
    let row = test.wait_for_state(first.effect_id, "held").await;
    assert!(row.last_error.unwrap().contains("paused"));
    assert_eq!(campaign_state(db, fixture.campaign_id).await, "paused");
    for send in sends(db, fixture.campaign_id).await {
        assert_eq!(test.state(send.effect_id).await, "held");
        assert_eq!(
            prospect_state(db, fixture.campaign_id, send.person_id).await,
            "active"
        );
    }
    assert_eq!(sendgrid.received_requests().await.unwrap().len(), 1);
    test.finish().await;
}
