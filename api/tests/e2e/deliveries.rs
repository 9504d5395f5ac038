use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
    let group: Uuid =
        sqlx::query_scalar("insert into groups (account_id, name) values ($1, 'g') returning id")
            .bind(account)
            .fetch_one(&stack.db)
            .await
            .unwrap();
    for (index, zone) in ZONES.iter().enumerate() {
        sqlx::query("insert into students (group_id, name, phone, channel, timezone) values ($1, $2, $3, 'sms', $4)")
            .bind(group)
            .bind(format!("student {index}"))
            .bind(format!("+1415555{index:04}"))
            .bind(zone)
            .execute(&stack.db)
            .await
            .unwrap();
    }
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
    wait_until(Duration::from_secs(30), "all six messages sent", || async {
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
