//! Course messages over Twilio, against a wiremock Twilio: the request's form and auth on
//! both channels, permanent and retryable refusals, messages that must not go out, a phone
//! changed before sending, and the per-sender rate limit across two replicas.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use herald_shared::effects::EffectKind;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{basic_auth, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{Mail, TestWorker, in_millis};

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "test-auth-token";
const SMS_FROM: &str = "+15005550006";
const WHATSAPP_FROM: &str = "+14155238886";
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

/// Settings pointing Twilio at `server`, with rates high enough not to slow a test down.
pub(crate) fn twilio(server: &MockServer) -> Vec<(&'static str, Value)> {
    vec![
        ("twilio.base_url", Value::from(server.uri())),
        ("twilio.account_sid", Value::from(ACCOUNT_SID)),
        ("twilio.auth_token", Value::from(AUTH_TOKEN)),
        ("twilio.sms_from", Value::from(SMS_FROM)),
        ("twilio.whatsapp_from", Value::from(WHATSAPP_FROM)),
        (
            "twilio.public_base_url",
            Value::from("https://herald.example.com"),
        ),
        ("twilio.sms_per_second", Value::from(100)),
        ("twilio.whatsapp_per_second", Value::from(100)),
    ]
}

/// Twilio's answer to a created message.
fn created(sid: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"sid": sid, "status": "queued"}))
}

/// Twilio's answer to a refused message.
fn refused(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

/// The form fields of a request, in order.
fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn field(request: &Request, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// The Twilio requests to `to`.
async fn requests_to(server: &MockServer, to: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|request| field(request, "To").as_deref() == Some(to))
        .collect()
}

/// `error_code` and `error_message` of an outbound message.
async fn message_error(test: &TestWorker, effect_id: Uuid) -> (Option<i32>, Option<String>) {
    sqlx::query_as("select error_code, error_message from outbound_messages where effect_id = $1")
        .bind(effect_id)
        .fetch_one(test.db())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sms_and_whatsapp_messages_are_sent_once_with_twilios_form_fields_and_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(created("SM00000000000000000000000000000001"))
        .expect(2)
        .mount(&server)
        .await;
    let test = TestWorker::spawn(&twilio(&server), |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let sms_student = test.add_student(delivery, "+14155550101", "sms").await;
    let whatsapp_student = test.add_student(delivery, "+14155550102", "whatsapp").await;
    let sms = test
        .plan_message(delivery, sms_student, 0, "Day 1: hello", Utc::now())
        .await;
    let whatsapp = test
        .plan_message(
            delivery,
            whatsapp_student,
            0,
            "Día 1: ¡hola! & more",
            Utc::now(),
        )
        .await;

    let sms_row = test.wait_for_state(sms.effect_id, "sent").await;
    let whatsapp_row = test.wait_for_state(whatsapp.effect_id, "sent").await;

    for row in [&sms_row, &whatsapp_row] {
        assert_eq!(row.attempts, 1);
        assert_eq!(
            row.provider_id.as_deref(),
            Some("SM00000000000000000000000000000001")
        );
    }
    // the callback names the message's effect, so a callback that beats the SID finds it
    let callback = format!(
        "https://herald.example.com/webhooks/twilio/status?effect_id={}",
        sms.effect_id
    );
    let sent = requests_to(&server, "+14155550101").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        form(&sent[0]),
        [
            ("To", "+14155550101"),
            ("Body", "Day 1: hello"),
            ("From", SMS_FROM),
            ("StatusCallback", callback.as_str()),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
    );
    let sent = requests_to(&server, "whatsapp:+14155550102").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        field(&sent[0], "From"),
        Some(format!("whatsapp:{WHATSAPP_FROM}"))
    );
    assert_eq!(
        field(&sent[0], "Body").as_deref(),
        Some("Día 1: ¡hola! & more")
    );
    server.verify().await;
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_messaging_service_it_is_the_sender_instead_of_from() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(created("SM00000000000000000000000000000002"))
        .expect(1)
        .mount(&server)
        .await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let mut settings = twilio(&server);
    settings.push(("twilio.messaging_service_sid", Value::from(service)));
    let test = TestWorker::spawn(&settings, |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550103", "sms").await;
    let message = test
        .plan_message(delivery, student, 0, "hello", Utc::now())
        .await;

    test.wait_for_state(message.effect_id, "sent").await;

    let sent = requests_to(&server, "+14155550103").await;
    assert_eq!(
        field(&sent[0], "MessagingServiceSid").as_deref(),
        Some(service)
    );
    assert_eq!(field(&sent[0], "From"), None);
    test.finish().await;
}

/// The sender recorded with a sent message (replies are routed by it).
async fn sent_from(test: &TestWorker, effect_id: Uuid) -> Option<String> {
    sqlx::query_scalar("select sent_from from outbound_messages where effect_id = $1")
        .bind(effect_id)
        .fetch_one(test.db())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_with_its_own_senders_sends_from_them_and_the_sender_is_recorded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(created("SM00000000000000000000000000000003"))
        .expect(3)
        .mount(&server)
        .await;
    let test = TestWorker::spawn(&twilio(&server), |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let sms_student = test.add_student(delivery, "+14155550111", "sms").await;
    let whatsapp_student = test.add_student(delivery, "+14155550112", "whatsapp").await;
    // the account has its own SMS number only: WhatsApp stays on the shared default
    sqlx::query(
        "insert into account_twilio_senders (account_id, sms_from) values ($1, '+14155550199')",
    )
    .bind(test.account_id)
    .execute(test.db())
    .await
    .unwrap();
    let sms = test
        .plan_message(delivery, sms_student, 0, "own number", Utc::now())
        .await;
    let whatsapp = test
        .plan_message(delivery, whatsapp_student, 0, "shared", Utc::now())
        .await;
    test.wait_for_state(sms.effect_id, "sent").await;
    test.wait_for_state(whatsapp.effect_id, "sent").await;
    let sent = requests_to(&server, "+14155550111").await;
    assert_eq!(field(&sent[0], "From").as_deref(), Some("+14155550199"));
    assert_eq!(
        sent_from(&test, sms.effect_id).await.as_deref(),
        Some("+14155550199")
    );
    let sent = requests_to(&server, "whatsapp:+14155550112").await;
    assert_eq!(
        field(&sent[0], "From"),
        Some(format!("whatsapp:{WHATSAPP_FROM}"))
    );
    assert_eq!(
        sent_from(&test, whatsapp.effect_id).await,
        Some(format!("whatsapp:{WHATSAPP_FROM}"))
    );

    // its own Messaging Service then sends both channels
    let service = "MG0123456789abcdef0123456789abcdee";
    sqlx::query(
        "update account_twilio_senders set messaging_service_sid = $2 where account_id = $1",
    )
    .bind(test.account_id)
    .bind(service)
    .execute(test.db())
    .await
    .unwrap();
    let later = test
        .plan_message(delivery, whatsapp_student, 1, "service", Utc::now())
        .await;
    test.wait_for_state(later.effect_id, "sent").await;
    let sent = requests_to(&server, "whatsapp:+14155550112").await;
    let last = sent.last().unwrap();
    assert_eq!(field(last, "MessagingServiceSid").as_deref(), Some(service));
    assert_eq!(field(last, "From"), None);
    assert_eq!(
        sent_from(&test, later.effect_id).await.as_deref(),
        Some(service)
    );
    server.verify().await;
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_or_opted_out_number_fails_at_once_keeping_twilios_code_and_message() {
    let server = MockServer::start().await;
    let cases = [
        (
            "+14155550104",
            21211,
            "The 'To' number +14155550104 is not a valid phone number.",
        ),
        (
            "+14155550105",
            21610,
            "Attempt to send to unsubscribed recipient",
        ),
    ];
    for (to, code, text) in cases {
        Mock::given(method("POST"))
            .and(path(MESSAGES_PATH))
            .and(wiremock::matchers::body_string_contains(format!(
                "To=%2B{}",
                &to[1..]
            )))
            .respond_with(refused(400, code, text))
            .expect(1)
            .mount(&server)
            .await;
    }
    let test = TestWorker::spawn(&twilio(&server), |jobs| {
        jobs.with(EffectKind::Message, |settings| {
            settings.retry_schedule = vec![Duration::from_millis(50)];
        })
    })
    .await;
    let delivery = test.create_delivery().await;
    let mut planned = Vec::new();
    for (to, _, _) in cases {
        let student = test.add_student(delivery, to, "sms").await;
        planned.push(
            test.plan_message(delivery, student, 0, "hi", Utc::now())
                .await,
        );
    }

    for (message, (_, code, text)) in planned.iter().zip(cases) {
        let row = test.wait_for_state(message.effect_id, "failed").await;
        assert_eq!(row.attempts, 1, "no retry after a permanent refusal");
        let error = row.last_error.unwrap();
        assert!(error.contains(&code.to_string()), "{error}");
        assert!(error.contains(text), "{error}");
        let (error_code, error_message) = message_error(&test, message.effect_id).await;
        assert_eq!(error_code, Some(i32::try_from(code).unwrap()));
        assert_eq!(error_message.as_deref(), Some(text));
    }
    // every row is final and nothing is due, queued, sending or left in Redis: no retry
    // can come any more, so the counts are final
    test.wait_for_idle().await;
    server.verify().await;
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_503_is_looked_up_before_it_is_sent_again_and_a_429_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    // Twilio's List Messages: it has neither message
    Mock::given(method("GET"))
        .and(path(MESSAGES_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messages": [], "next_page_uri": null})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_string_contains(
            "To=%2B14155550106",
        ))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_string_contains(
            "To=%2B14155550107",
        ))
        .respond_with(refused(429, 20429, "Too Many Requests").insert_header("Retry-After", "2"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(created("SM00000000000000000000000000000003"))
        .mount(&server)
        .await;
    let test = TestWorker::spawn(&twilio(&server), |jobs| {
        jobs.with(EffectKind::Message, |settings| {
            settings.retry_schedule = vec![Duration::from_millis(100)];
        })
    })
    .await;
    let delivery = test.create_delivery().await;
    let unavailable = test.add_student(delivery, "+14155550106", "sms").await;
    let throttled = test.add_student(delivery, "+14155550107", "sms").await;
    let unavailable = test
        .plan_message(delivery, unavailable, 0, "hi", Utc::now())
        .await;
    let throttled = test
        .plan_message(delivery, throttled, 0, "hi", Utc::now())
        .await;

    let retrying = test.wait_for_state(throttled.effect_id, "retrying").await;
    let asked = retrying.next_attempt_at - retrying.sending_at.unwrap();
    assert!(
        asked >= chrono::Duration::seconds(2),
        "Retry-After: 2 honoured, not the 100 ms schedule: retry after {asked}"
    );
    assert!(retrying.last_error.unwrap().contains("429"));
    for (effect_id, to) in [
        (unavailable.effect_id, "+14155550106"),
        (throttled.effect_id, "+14155550107"),
    ] {
        let row = test.wait_for_state(effect_id, "sent").await;
        assert_eq!(row.attempts, 2, "{to}");
        assert_eq!(row.last_error, None);
        assert_eq!(requests_to(&server, to).await.len(), 2, "{to}");
    }
    // a 503 may come after Twilio created the message: it was asked before sending again; a
    // 429 is a refusal, so nothing was looked up for it
    let lookups: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|request| request.method == wiremock::http::Method::GET)
        .map(|request| request.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert!(lookups[0].contains("To=%2B14155550106"), "{lookups:?}");
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_to_removed_or_unsubscribed_students_or_of_stopped_or_paused_deliveries_never_reach_twilio()
 {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("SM00000000000000000000000000000004"))
        .expect(0)
        .mount(&server)
        .await;
    let test = TestWorker::spawn(&twilio(&server), |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let unsubscribed = test.add_student(delivery, "+14155550108", "sms").await;
    let removed = test.add_student(delivery, "+14155550109", "sms").await;
    // due in a second: the changes below happen between planning and sending
    let due = in_millis(1000);
    let to_unsubscribed = test
        .plan_message(delivery, unsubscribed, 0, "hi", due)
        .await;
    let to_removed = test.plan_message(delivery, removed, 0, "hi", due).await;
    sqlx::query("update students set subscribed = false where id = $1")
        .bind(unsubscribed)
        .execute(test.db())
        .await
        .unwrap();
    sqlx::query("delete from students where id = $1")
        .bind(removed)
        .execute(test.db())
        .await
        .unwrap();
    let stopped = test.create_delivery().await;
    let paused = test.create_delivery().await;
    let mut of_delivery = Vec::new();
    for (delivery, status) in [(stopped, "stopped"), (paused, "paused")] {
        sqlx::query("update deliveries set status = $2 where id = $1")
            .bind(delivery.delivery_id)
            .bind(status)
            .execute(test.db())
            .await
            .unwrap();
        let student = test.add_student(delivery, "+14155550110", "sms").await;
        of_delivery.push(test.plan_message(delivery, student, 0, "hi", due).await);
    }

    for (message, state, reason) in [
        (to_unsubscribed, "canceled", "the student unsubscribed"),
        (to_removed, "canceled", "the student was removed"),
        (of_delivery[0], "canceled", "the delivery is stopped"),
        (of_delivery[1], "held", "the delivery is paused"),
    ] {
        let row = test.wait_for_state(message.effect_id, state).await;
        let error = row.last_error.unwrap_or_default();
        assert!(error.contains(reason), "{state}: {error}");
        assert_eq!(row.provider_id, None);
    }
    // nothing left in flight: Twilio's count is final
    test.wait_for_idle().await;
    server.verify().await;
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_phone_and_channel_changed_after_planning_are_the_ones_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("SM00000000000000000000000000000005"))
        .expect(1)
        .mount(&server)
        .await;
    let test = TestWorker::spawn(&twilio(&server), |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550111", "sms").await;
    let message = test
        .plan_message(delivery, student, 0, "hi", in_millis(1500))
        .await;
    sqlx::query("update students set phone = '+14155550112', channel = 'whatsapp' where id = $1")
        .bind(student)
        .execute(test.db())
        .await
        .unwrap();

    test.wait_for_state(message.effect_id, "sent").await;

    let sent = requests_to(&server, "whatsapp:+14155550112").await;
    assert_eq!(sent.len(), 1, "sent to the new number on the new channel");
    assert_eq!(
        field(&sent[0], "From"),
        Some(format!("whatsapp:{WHATSAPP_FROM}"))
    );
    // planned with the old number and channel; the message records what it went out as
    let (recipient, channel): (Option<String>, Option<String>) =
        sqlx::query_as("select recipient, channel from outbound_messages where effect_id = $1")
            .bind(message.effect_id)
            .fetch_one(test.db())
            .await
            .unwrap();
    assert_eq!(recipient.as_deref(), Some("+14155550112"));
    assert_eq!(channel.as_deref(), Some("whatsapp"));
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_sandbox_mode_a_message_is_recorded_not_sent() {
    let test = TestWorker::spawn(&[], |jobs| jobs).await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550113", "whatsapp").await;
    let message = test
        .plan_message(delivery, student, 0, "hi", Utc::now())
        .await;

    let row = test.wait_for_state(message.effect_id, "sandboxed").await;

    assert_eq!(row.attempts, 1);
    assert_eq!(row.provider_id, None);
    test.finish().await;
}

/// Answers 201 and notes when each request arrived.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Respond for Arrivals {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        created("SM00000000000000000000000000000006")
    }
}

impl Arrivals {
    /// How many requests arrived so far.
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// How long after `start` each request from the `first`-th on arrived, earliest first.
    fn since(&self, first: usize, start: Instant) -> Vec<Duration> {
        let mut times = self.0.lock().unwrap()[first..].to_vec();
        times.sort();
        times.into_iter().map(|time| time - start).collect()
    }
}

/// Most rounds of [`three_sms_at_one_per_second`].
const ROUNDS: usize = 10;

/// Three SMS from one number at 1 per second, sent by two replicas: at least ~1 s apart,
/// each pushed and attempted once, whatever the job's timeout (the wait for a slot is never
/// part of the attempt). The test shows the limit shared only in a round where both
/// replicas sent: both poll Redis every 25 ms, so each task due at its slot goes to
/// whichever looks first, and a round in which one replica sent all three is followed by
/// another (at most [`ROUNDS`]; all of them must hold the limit).
async fn three_sms_at_one_per_second(job_timeout_secs: u64) {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    Mock::given(method("POST"))
        .respond_with(arrivals.clone())
        .mount(&server)
        .await;
    let mut settings = twilio(&server);
    settings.push(("twilio.sms_per_second", Value::from(1)));
    settings.push(("twilio.timeout_secs", Value::from(1)));
    settings.push(("worker.poll_interval_ms", Value::from(25)));
    let test = TestWorker::spawn_with(
        Mail::Sandbox,
        &settings,
        |jobs| {
            jobs.with(EffectKind::Message, |settings| {
                settings.timeout = Duration::from_secs(job_timeout_secs);
            })
        },
        &["a", "b"],
    )
    .await;
    let delivery = test.create_delivery().await;
    for round in 0..ROUNDS {
        let mut students = Vec::new();
        for i in 0..3 {
            let phone = format!("+14155550{}", 120 + round * 3 + i);
            students.push(test.add_student(delivery, &phone, "sms").await);
        }
        let ran_before = test.tasks_run_by_replica().await;
        let first = arrivals.count();
        let planned_at = Instant::now();
        let due = Utc::now();
        let mut messages = Vec::new();
        for student in students {
            messages.push(test.plan_message(delivery, student, 0, "hi", due).await);
        }

        for message in &messages {
            let row = test.wait_for_state(message.effect_id, "sent").await;
            assert_eq!(
                (row.attempts, row.dispatches),
                (1, 1),
                "waiting for a slot is neither an attempt nor a second push"
            );
        }

        // slots are exactly 1 s apart on Redis's clock, the first no earlier than the plan:
        // the n-th send comes n seconds after it at the earliest (a send picked up late can
        // come closer to the next one, never before its own slot); allow for clock reading
        // jitter
        let arrived = arrivals.since(first, planned_at);
        assert_eq!(arrived.len(), 3, "one request per message");
        for (n, at) in arrived.iter().enumerate() {
            let earliest = Duration::from_secs(n as u64).saturating_sub(Duration::from_millis(50));
            assert!(*at >= earliest, "arrivals after planning: {arrived:?}");
        }

        // the limit is shared, not one replica doing all the work
        if test.every_replica_ran_since(&ran_before).await {
            test.finish().await;
            return;
        }
        eprintln!("round {round}: one replica sent all three");
    }
    panic!("in none of {ROUNDS} rounds did both replicas send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_sms_per_second_per_sender_holds_across_two_replicas() {
    // 20 s job, 1 s Twilio timeout: a job may wait up to 18 s for its slot
    three_sms_at_one_per_second(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_whose_slot_is_further_away_than_its_job_timeout_waits_outside_the_attempt() {
    // 2 s job: the third message's slot is 2 s away, so it waits in PostgreSQL, not in a job
    three_sms_at_one_per_second(2).await;
}

/// Twilio refusing Herald's credentials (401) while `refusing` is set, then accepting.
#[derive(Clone, Default)]
struct RotatedToken {
    refusing: Arc<std::sync::atomic::AtomicBool>,
    refusals: Arc<std::sync::atomic::AtomicU32>,
}

impl Respond for RotatedToken {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        use std::sync::atomic::Ordering;
        if self.refusing.load(Ordering::SeqCst) {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            refused(401, 20003, "Authenticate")
        } else {
            created("SM00000000000000000000000000000401")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_credentials_are_an_outage_messages_wait_uncounted_and_go_once_they_work() {
    use std::sync::atomic::Ordering;
    let server = MockServer::start().await;
    let twilio_answers = RotatedToken::default();
    twilio_answers.refusing.store(true, Ordering::SeqCst);
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .respond_with(twilio_answers.clone())
        .mount(&server)
        .await;
    let mut settings = twilio(&server);
    settings.push(("twilio.auth_failure_retry_secs", Value::from(1)));
    // two attempts at most: a refused credential must not use them up
    let test = TestWorker::spawn(&settings, |jobs| {
        jobs.with(EffectKind::Message, |settings| settings.max_attempts = 2)
    })
    .await;
    let delivery = test.create_delivery().await;
    let student = test.add_student(delivery, "+14155550130", "sms").await;
    let message = test
        .plan_message(delivery, student, 0, "hello", Utc::now())
        .await;

    // refused more times than the message has attempts
    crate::helpers::wait_until(
        "Twilio refused the credentials three times",
        crate::helpers::PATIENCE,
        || async { twilio_answers.refusals.load(Ordering::SeqCst) >= 3 },
    )
    .await;
    let row = test.wait_for_state(message.effect_id, "retrying").await;
    assert_eq!(row.attempts, 0, "refused attempts are not counted");
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("credentials"), "{error}");
    let (status, ready) = test.health_get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["providers_failing"]["twilio"]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 401"),
        "{ready}"
    );
    let url = format!("http://{}/metrics", test.replicas[0].health);
    let metrics = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("herald_provider_auth_failures_total{provider=\"twilio\"}"),
        "{metrics}"
    );
    let (_, message_error) = message_error(&test, message.effect_id).await;
    assert_eq!(message_error, None, "not recorded as the message's refusal");

    // the credentials are fixed (say, the new token deployed at Twilio's end): the message
    // goes out by itself, once, and the worker is ready again
    twilio_answers.refusing.store(false, Ordering::SeqCst);
    let row = test.wait_for_state(message.effect_id, "sent").await;
    assert_eq!(row.attempts, 1);
    assert_eq!(
        row.provider_id.as_deref(),
        Some("SM00000000000000000000000000000401")
    );
    let accepted = requests_to(&server, "+14155550130").await.len() as u32
        - twilio_answers.refusals.load(Ordering::SeqCst);
    assert_eq!(accepted, 1, "sent once");
    let (status, ready) = test.health_get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    test.finish().await;
}
