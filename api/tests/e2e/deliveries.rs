use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_testing::fixtures;
use herald_testing::twilio_standin::TwilioStandin;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::stack::{Stack, wait_until};

/// Three zones that share an offset right now (UTC−5 in November, UTC−4 in summer), so one
/// near-future wall-clock start is a few seconds away for every student.
const ZONES: [&str; 3] = ["America/New_York", "America/Toronto", "America/Nassau"];

#[tokio::test]
async fn a_delivery_reaches_students_in_three_zones_once_each_at_their_instant_with_two_replicas() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/2010-04-01/Accounts/AC0+/Messages\.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "SM00000000000000000000000000000000", "status": "queued"}),
        ))
        .mount(&twilio)
        .await;
    let mut stack = Stack::new(0.0).await;
    stack.twilio_url = Some(twilio.uri());
    stack.start_api().await;
    let _one = stack.start_worker("one").await;
    let _two = stack.start_worker("two").await;
    let client = reqwest::Client::new();
    let api = stack.api_url.clone();

    let session: Value = client
        .post(format!("{api}/api/v1/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse", "name": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let account: Uuid = session["user"]["account_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let students = fixtures::one_per_zone(&ZONES, "sms");
    let (group, _) = fixtures::create_group(&stack.db, account, &students).await;
    let course: Value = client
        .post(format!("{api}/api/v1/courses"))
        .bearer_auth(&token)
        .json(&json!({"name": "C", "author": "A", "days": [{"text": "Day one", "questions": [
            {"question": "Ready?", "type": "choice", "options": ["yes", "no"], "correct_answer": "yes"}]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let start =
        (Utc::now() + chrono::Duration::seconds(4)).with_timezone(&chrono_tz::America::New_York);
    let created = client
        .post(format!("{api}/api/v1/deliveries"))
        .bearer_auth(&token)
        .json(&json!({"group_id": group, "course_id": course["id"], "start_at": start.format("%Y-%m-%d %H:%M:%S").to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let delivery: Value = created.json().await.unwrap();
    assert_eq!(delivery["message_count"], 6);

    let sent_messages = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from effects where kind = 'message' and state = 'sent'",
        )
        .fetch_one(&stack.db)
        .await
        .unwrap()
    };
    wait_until("all six messages sent", Duration::from_secs(30), || async {
        sent_messages().await == 6
    })
    .await;
    let requests = twilio.received_requests().await.unwrap_or_default();
    assert_eq!(
        requests.len(),
        6,
        "each message was handed to Twilio exactly once"
    );
    let pairs: HashSet<String> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(pairs.len(), 6, "no request repeated");
    // every send started at or after its planned instant, and promptly
    let timings: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("select next_attempt_at, sending_at from effects where kind = 'message'")
            .fetch_all(&stack.db)
            .await
            .unwrap();
    for (planned, started) in timings {
        let late = (started - planned).num_milliseconds();
        assert!(
            (0..3_000).contains(&late),
            "started {late} ms after its instant"
        );
    }
    let done: Value = client
        .get(format!(
            "{api}/api/v1/deliveries/{}",
            delivery["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_and_restarted_sends_nothing_twice_and_loses_nothing() {
    // Twilio (a stateful stand-in that lists what it created) answers 700 ms after creating
    // each message, so a kill lands while sends are in flight: Twilio has messages Herald
    // never heard back about
    let twilio = TwilioStandin::start().await.unwrap();
    twilio.answer_after(Duration::from_millis(700));
    let mut stack = Stack::new(0.0).await;
    stack.twilio_url = Some(twilio.base_url.clone());
    stack.start_api().await;
    let client = reqwest::Client::new();
    let api = stack.api_url.clone();
    let signup: Value = client
        .post(format!("{api}/api/v1/auth/signup"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse", "name": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account: Uuid = signup["user"]["account_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let students: Vec<_> = (0..20)
        .map(|index| {
            fixtures::student(
                "s",
                &format!("+1415555{index:04}"),
                "sms",
                "America/New_York",
            )
        })
        .collect();
    let (group, _) = fixtures::create_group(&stack.db, account, &students).await;
    let course: Value = client
        .post(format!("{api}/api/v1/courses"))
        .bearer_auth(signup["access_token"].as_str().unwrap())
        .json(&json!({"name": "C", "author": "A", "days": [{"text": "Day one"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let start =
        (Utc::now() + chrono::Duration::seconds(3)).with_timezone(&chrono_tz::America::New_York);
    let created = client
        .post(format!("{api}/api/v1/deliveries"))
        .bearer_auth(signup["access_token"].as_str().unwrap())
        .json(&json!({"group_id": group, "course_id": course["id"], "start_at": start.format("%Y-%m-%d %H:%M:%S").to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let db = stack.db.clone();
    let message_states = || async {
        sqlx::query_as::<_, (Uuid, String, Option<String>)>(
            "select e.id, e.state, s.phone from effects e
             join outbound_messages m on m.effect_id = e.id join students s on s.id = m.student_id
             where e.kind = 'message'",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    let count = |rows: &[(Uuid, String, Option<String>)], state: &str| {
        rows.iter().filter(|r| r.1 == state).count()
    };
    let worker = stack.start_worker("doomed").await;
    wait_until(
        "some messages sent, some in flight",
        Duration::from_secs(30),
        || async {
            let rows = message_states().await;
            count(&rows, "sent") >= 2 && count(&rows, "sending") >= 1
        },
    )
    .await;
    worker.kill_hard();
    let at_kill = message_states().await;
    assert!(
        at_kill.iter().any(|r| r.1 == "planned" || r.1 == "queued"),
        "some work was left for the replacement"
    );

    let _replacement = stack.start_worker("replacement").await;
    // the rows in `sending` at the kill are found stuck, looked up at Twilio, and sent only
    // when Twilio has nothing
    wait_until("every message sent", Duration::from_secs(90), || async {
        message_states().await.iter().all(|r| r.1 == "sent")
    })
    .await;
    for (id, _, phone) in message_states().await {
        let phone = phone.unwrap();
        let created = twilio.created_for(&phone);
        let before = &at_kill.iter().find(|r| r.0 == id).unwrap().1;
        assert_eq!(
            created.len(),
            1,
            "{phone} ({before} at the kill) was created {} times",
            created.len()
        );
        let sid: Option<String> =
            sqlx::query_scalar("select provider_id from effects where id = $1")
                .bind(id)
                .fetch_one(&stack.db)
                .await
                .unwrap();
        assert_eq!(sid.as_deref(), Some(created[0].sid.as_str()), "{phone}");
    }
}
