use base64::Engine;
use herald_testing::fixtures;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const PUBLIC: &str = "https://herald.example.com";
/// The platform's shared default SMS sender in these tests.
pub const SHARED: &str = "+15005550006";

pub async fn app() -> TestApp {
    TestApp::spawn_with(&[
        ("twilio.account_sid", json!(format!("AC{}", "1".repeat(32)))),
        ("twilio.auth_token", json!(TOKEN)),
        ("twilio.sms_from", json!(SHARED)),
        ("twilio.public_base_url", json!(PUBLIC)),
    ])
    .await
}

pub fn sign(path: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut payload = format!("{PUBLIC}{path}");
    for (k, v) in sorted {
        payload.push_str(k);
        payload.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub async fn post_form(
    app: &TestApp,
    path: &str,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> reqwest::Response {
    let mut request = app.request(reqwest::Method::POST, path).form(params);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Posts a signed inbound message.
pub async fn inbound(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    let path = "/webhooks/twilio/inbound";
    post_form(app, path, params, Some(sign(path, params))).await
}

/// Posts a signed inbound SMS `sid` from `from` to `to`.
pub async fn reply(app: &TestApp, sid: &str, from: &str, to: &str, body: &str) -> StatusCode {
    let params = [
        ("MessageSid", sid),
        ("From", from),
        ("To", to),
        ("Body", body),
    ];
    inbound(app, &params).await.status()
}

/// A scheduled delivery of a one-day course with a choice and an open question to one
/// student; returns (delivery id, student id, access token).
async fn delivery(app: &TestApp, phone: &str) -> (String, Uuid, String) {
    delivery_for(app, "ada@example.com", phone).await
}

/// [`delivery`] by a new account signed up as `email`.
pub async fn delivery_for(app: &TestApp, email: &str, phone: &str) -> (String, Uuid, String) {
    let ada = app.signup(email).await;
    let student = fixtures::student("S", phone, "sms", "Asia/Kolkata");
    let (group, students) = fixtures::create_group(&app.db, ada.account_id, &[student]).await;
    let student = students[0];
    let course: Value = app
        .post(
            "/api/v1/courses",
            &json!({"name": "C", "author": "A", "days": [
                {"text": "one", "questions": [
                    {"question": "Capital of France?", "type": "choice", "options": ["Lima", "Paris"], "correct_answer": "Paris"},
                    {"question": "Why?", "type": "open"}]},
                {"text": "two"}]}),
            Some(&ada.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let start = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d 09:00:00")
        .to_string();
    let created: Value = app
        .post(
            "/api/v1/deliveries",
            &json!({"group_id": group, "course_id": course["id"], "start_at": start}),
            Some(&ada.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        student,
        ada.access_token,
    )
}

/// Marks the message (day, seq) as handed to Twilio under `sid` from the shared sender.
pub async fn mark_sent(app: &TestApp, delivery: &str, day: i32, seq: i32, sid: &str) {
    mark_sent_from(app, delivery, day, seq, sid, SHARED).await;
}

/// Marks the message (day, seq) as handed to Twilio under `sid`, sent from `from`.
pub async fn mark_sent_from(
    app: &TestApp,
    delivery: &str,
    day: i32,
    seq: i32,
    sid: &str,
    from: &str,
) {
    sqlx::query(
        "with sent as (
             update effects e set state = 'sent', provider_id = $4,
                 finished_at = now() + make_interval(secs => $3)
             from delivery_messages m
             where m.effect_id = e.id and m.delivery_id = $1::uuid and m.day = $2 and m.seq = $3
             returning e.id)
         update outbound_messages o set sent_from = $5 from sent where o.effect_id = sent.id",
    )
    .bind(delivery)
    .bind(day)
    .bind(seq)
    .bind(sid)
    .bind(from)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn provider_status(app: &TestApp, sid: &str) -> (Option<String>, Option<i32>) {
    sqlx::query_as(
        "select m.provider_status, m.error_code from outbound_messages m join effects e on e.id = m.effect_id where e.provider_id = $1",
    )
    .bind(sid)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn status_callbacks_are_recorded_and_never_move_backwards() {
    let app = app().await;
    let (delivery, _, _) = delivery(&app, "+14155550100").await;
    mark_sent(&app, &delivery, 1, 0, "SM0001").await;
    let path = "/webhooks/twilio/status";
    let delivered = [("MessageSid", "SM0001"), ("MessageStatus", "delivered")];
    let response = post_form(&app, path, &delivered, Some(sign(path, &delivered))).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        provider_status(&app, "SM0001").await,
        (Some("delivered".to_owned()), None)
    );
    // Twilio retrying the same callback (same MessageSid and status) changes nothing
    let retried = post_form(&app, path, &delivered, Some(sign(path, &delivered))).await;
    assert_eq!(retried.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        provider_status(&app, "SM0001").await,
        (Some("delivered".to_owned()), None)
    );
    // a late "sent" arrives after "delivered": ignored
    let late = [("MessageSid", "SM0001"), ("MessageStatus", "sent")];
    post_form(&app, path, &late, Some(sign(path, &late))).await;
    assert_eq!(
        provider_status(&app, "SM0001").await.0.as_deref(),
        Some("delivered")
    );

    // a callback that beats the worker's recording of the SID finds its message by the
    // effect id in its (signed) URL, and names the SID
    let effect_id: Uuid = sqlx::query_scalar(
        "select effect_id from delivery_messages where delivery_id = $1::uuid and day = 1 and seq = 2",
    )
    .bind(&delivery)
    .fetch_one(&app.db)
    .await
    .unwrap();
    sqlx::query("update effects set state = 'sending' where id = $1")
        .bind(effect_id)
        .execute(&app.db)
        .await
        .unwrap();
    let early_path = format!("{path}?effect_id={effect_id}");
    let early = [("MessageSid", "SM9999"), ("MessageStatus", "sent")];
    assert_eq!(
        post_form(&app, &early_path, &early, Some(sign(&early_path, &early)))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        provider_status(&app, "SM9999").await,
        (Some("sent".to_owned()), None)
    );
    // a malformed effect id is refused by name
    let bad_path = format!("{path}?effect_id=nope");
    let bad = post_form(&app, &bad_path, &early, Some(sign(&bad_path, &early))).await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    mark_sent(&app, &delivery, 2, 0, "SM0002").await;
    let failed = [
        ("MessageSid", "SM0002"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    post_form(&app, path, &failed, Some(sign(path, &failed))).await;
    assert_eq!(
        provider_status(&app, "SM0002").await,
        (Some("undelivered".to_owned()), Some(30003))
    );
}

#[tokio::test]
async fn forged_or_missing_signatures_are_refused_and_change_nothing() {
    let app = app().await;
    let (delivery, student, _) = delivery(&app, "+14155550101").await;
    mark_sent(&app, &delivery, 1, 0, "SM0003").await;
    let path = "/webhooks/twilio/status";
    let params = [("MessageSid", "SM0003"), ("MessageStatus", "failed")];
    let forged = sign(
        path,
        &[("MessageSid", "SM0003"), ("MessageStatus", "delivered")],
    );
    assert_problem(
        post_form(&app, path, &params, Some(forged)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        post_form(&app, path, &params, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(provider_status(&app, "SM0003").await.0, None);

    let inbound = "/webhooks/twilio/inbound";
    let stop = [("From", "+14155550101"), ("Body", "STOP")];
    let wrong_path_signature = sign("/webhooks/twilio/status", &stop);
    assert_eq!(
        post_form(&app, inbound, &stop, Some(wrong_path_signature))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let subscribed: bool = sqlx::query_scalar("select subscribed from students where id = $1")
        .bind(student)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(subscribed);
}

#[tokio::test]
async fn stop_unsubscribes_and_skips_unsent_messages_and_start_resubscribes() {
    let app = app().await;
    let (delivery, student, token) = delivery(&app, "+14155550102").await;
    mark_sent(&app, &delivery, 1, 0, "SM0004").await;
    let stop = [
        ("MessageSid", "SMin1"),
        ("From", "+14155550102"),
        ("To", SHARED),
        ("Body", " stop "),
    ];
    let response = inbound(&app, &stop).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("<Response>"));
    let subscribed: bool = sqlx::query_scalar("select subscribed from students where id = $1")
        .bind(student)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!subscribed);
    let progress: Value = app
        .get(&format!("/api/v1/deliveries/{delivery}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        progress["progress"],
        json!({"sent": 1, "canceled": 3}),
        "{progress}"
    );

    assert_eq!(
        reply(&app, "SMin2", "+14155550102", SHARED, "START").await,
        StatusCode::OK
    );
    let subscribed: bool = sqlx::query_scalar("select subscribed from students where id = $1")
        .bind(student)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(subscribed);
}

#[tokio::test]
async fn replies_answer_the_latest_question_and_choice_answers_are_graded() {
    let app = app().await;
    let (delivery, student, token) = delivery(&app, "+14155550103").await;
    mark_sent(&app, &delivery, 1, 0, "SM0005").await;
    mark_sent(&app, &delivery, 1, 1, "SM0006").await;
    for (sid, body) in [("SMin1", "b"), ("SMin2", "Lima")] {
        assert_eq!(
            reply(&app, sid, "+14155550103", SHARED, body).await,
            StatusCode::OK
        );
    }
    mark_sent(&app, &delivery, 1, 2, "SM0007").await;
    let open = "Because it is the capital";
    assert_eq!(
        reply(&app, "SMin3", "+14155550103", SHARED, open).await,
        StatusCode::OK
    );

    let answers: Value = app
        .get(
            &format!("/api/v1/deliveries/{delivery}/answers"),
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = answers["items"].as_array().unwrap();
    let graded: Vec<(&str, Value)> = items
        .iter()
        .map(|a| (a["body"].as_str().unwrap(), a["correct"].clone()))
        .collect();
    assert_eq!(
        graded,
        [
            ("b", json!(true)),
            ("Lima", json!(false)),
            ("Because it is the capital", Value::Null)
        ]
    );
    assert!(items.iter().all(|a| a["student_id"] == student.to_string()));
}
