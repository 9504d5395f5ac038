//! Replies and keywords reach the account they are for, and no other: routing by sender,
//! the shared sender's reply window, opt-out scope, opt-in reasons, retried webhooks.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_field_error, assert_problem};
use crate::webhooks::{SHARED, app, delivery_for, inbound, mark_sent, mark_sent_from, reply};

/// An account's own number in these tests.
const OWN: &str = "+14155550199";

async fn answers(app: &TestApp, delivery: &str, token: &str) -> Vec<String> {
    let body: Value = app
        .get(
            &format!("/api/v1/deliveries/{delivery}/answers"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|answer| answer["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn inbound_outcome(app: &TestApp, sid: &str) -> (Option<Uuid>, String) {
    sqlx::query_as("select account_id, outcome from inbound_messages where message_sid = $1")
        .bind(sid)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn put_senders(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.request(reqwest::Method::PUT, "/api/v1/account/twilio")
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn subscribed(app: &TestApp, student: Uuid) -> (bool, Option<String>) {
    sqlx::query_as("select subscribed, unsubscribe_reason from students where id = $1")
        .bind(student)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn another_account_asking_the_same_phone_makes_shared_sender_replies_unattributed() {
    let app = app().await;
    // the process's metrics recorder is in place before anything is counted
    app.get("/metrics", None).await;
    let phone = "+14155550110";
    let (victim, _, victim_token) = delivery_for(&app, "victim@example.com", phone).await;
    mark_sent(&app, &victim, 1, 1, "SMv1").await;
    assert_eq!(
        reply(&app, "SMin1", phone, SHARED, "Paris").await,
        StatusCode::OK
    );
    assert_eq!(answers(&app, &victim, &victim_token).await, ["Paris"]);

    // the attack: another account adds the victim's student and asks one question
    let (attacker, _, attacker_token) = delivery_for(&app, "mallory@example.com", phone).await;
    mark_sent(&app, &attacker, 1, 1, "SMa1").await;
    assert_eq!(
        reply(&app, "SMin2", phone, SHARED, "secret").await,
        StatusCode::OK
    );
    assert!(answers(&app, &attacker, &attacker_token).await.is_empty());
    assert_eq!(answers(&app, &victim, &victim_token).await, ["Paris"]);
    assert_eq!(
        inbound_outcome(&app, "SMin2").await,
        (None, "unattributed".to_owned())
    );
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("herald_twilio_inbound_unattributed_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn replies_to_an_accounts_own_number_reach_only_that_account() {
    let app = app().await;
    let phone = "+14155550111";
    let (own, _, own_token) = delivery_for(&app, "own@example.com", phone).await;
    let (shared, _, shared_token) = delivery_for(&app, "shared@example.com", phone).await;
    assert_eq!(
        put_senders(&app, &own_token, &json!({"sms_from": OWN}))
            .await
            .status(),
        StatusCode::OK
    );
    mark_sent_from(&app, &own, 1, 1, "SMo1", OWN).await;
    mark_sent(&app, &shared, 1, 1, "SMs1").await;

    assert_eq!(
        reply(&app, "SMin1", phone, OWN, "to own").await,
        StatusCode::OK
    );
    assert_eq!(
        reply(&app, "SMin2", phone, SHARED, "to shared").await,
        StatusCode::OK
    );
    assert_eq!(answers(&app, &own, &own_token).await, ["to own"]);
    assert_eq!(answers(&app, &shared, &shared_token).await, ["to shared"]);

    // a number Herald does not send from names no account
    assert_eq!(
        reply(&app, "SMin3", phone, "+14155550198", "stray").await,
        StatusCode::OK
    );
    assert_eq!(inbound_outcome(&app, "SMin3").await.1, "unattributed");
    assert_eq!(answers(&app, &own, &own_token).await, ["to own"]);
}

#[tokio::test]
async fn a_question_older_than_the_reply_window_is_not_answered() {
    let app = app().await;
    let phone = "+14155550112";
    let (delivery, _, token) = delivery_for(&app, "ada@example.com", phone).await;
    mark_sent(&app, &delivery, 1, 1, "SM1").await;
    sqlx::query(
        "update effects set finished_at = now() - interval '8 days' where provider_id = 'SM1'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(
        reply(&app, "SMin1", phone, SHARED, "late").await,
        StatusCode::OK
    );
    assert!(answers(&app, &delivery, &token).await.is_empty());
    assert_eq!(inbound_outcome(&app, "SMin1").await.1, "unattributed");
}

#[tokio::test]
async fn a_retried_inbound_webhook_records_one_answer() {
    let app = app().await;
    let phone = "+14155550113";
    let (delivery, _, token) = delivery_for(&app, "ada@example.com", phone).await;
    mark_sent(&app, &delivery, 1, 1, "SM1").await;
    for _ in 0..3 {
        assert_eq!(
            reply(&app, "SMin1", phone, SHARED, "Paris").await,
            StatusCode::OK
        );
    }
    assert_eq!(answers(&app, &delivery, &token).await, ["Paris"]);
    assert_eq!(app.count("inbound_messages").await, 1);
}

#[tokio::test]
async fn start_resubscribes_only_students_an_opt_out_keyword_unsubscribed() {
    let app = app().await;
    let phone = "+14155550114";
    let (_, by_keyword, keyword_token) = delivery_for(&app, "one@example.com", phone).await;
    let (_, by_account, account_token) = delivery_for(&app, "two@example.com", phone).await;
    let response = app
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/students/{by_account}"),
        )
        .bearer_auth(&account_token)
        .json(&json!({"name": "S", "phone": phone, "channel": "sms",
            "timezone": "Asia/Kolkata", "subscribed": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    assert_eq!(
        subscribed(&app, by_account).await,
        (false, Some("api".to_owned()))
    );

    assert_eq!(
        reply(&app, "SMin1", phone, SHARED, "STOP").await,
        StatusCode::OK
    );
    assert_eq!(
        subscribed(&app, by_keyword).await,
        (false, Some("opt_out_keyword".to_owned()))
    );
    assert_eq!(
        subscribed(&app, by_account).await,
        (false, Some("api".to_owned()))
    );
    let student: Value = app
        .get(
            &format!("/api/v1/students/{by_keyword}"),
            Some(&keyword_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        student["unsubscribe_reason"], "opt_out_keyword",
        "{student}"
    );

    assert_eq!(
        reply(&app, "SMin2", phone, SHARED, "start").await,
        StatusCode::OK
    );
    assert_eq!(subscribed(&app, by_keyword).await, (true, None));
    assert_eq!(
        subscribed(&app, by_account).await,
        (false, Some("api".to_owned()))
    );
}

#[tokio::test]
async fn stop_on_an_own_number_speaks_to_its_account_and_stop_on_the_shared_sender_to_those_it_serves()
 {
    let app = app().await;
    let phone = "+14155550115";
    let (_, own_student, own_token) = delivery_for(&app, "own@example.com", phone).await;
    let (_, shared_student, _) = delivery_for(&app, "shared@example.com", phone).await;
    assert_eq!(
        put_senders(&app, &own_token, &json!({"sms_from": OWN}))
            .await
            .status(),
        StatusCode::OK
    );

    // STOP to the shared sender: the carrier blocks only that sender, so the account with
    // its own number keeps its student
    assert_eq!(
        reply(&app, "SMin1", phone, SHARED, "STOP").await,
        StatusCode::OK
    );
    assert!(!subscribed(&app, shared_student).await.0);
    assert!(subscribed(&app, own_student).await.0);

    assert_eq!(
        reply(&app, "SMin2", phone, SHARED, "START").await,
        StatusCode::OK
    );
    assert_eq!(
        reply(&app, "SMin3", phone, OWN, "STOP").await,
        StatusCode::OK
    );
    assert!(!subscribed(&app, own_student).await.0);
    assert!(subscribed(&app, shared_student).await.0);
    assert_eq!(
        inbound_outcome(&app, "SMin3").await,
        (
            Some(account_of(&app, own_student).await),
            "opt_out".to_owned()
        )
    );
}

async fn account_of(app: &TestApp, student: Uuid) -> Uuid {
    sqlx::query_scalar(
        "select g.account_id from students s join groups g on g.id = s.group_id where s.id = $1",
    )
    .bind(student)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_nul_in_a_webhook_parameter_is_refused_by_name_and_nothing_is_recorded() {
    let app = app().await;
    let params = [
        ("MessageSid", "SMin1"),
        ("From", "+14155550116"),
        ("To", SHARED),
        ("Body", "a\0b"),
    ];
    assert_field_error(inbound(&app, &params).await, "Body").await;
    assert_eq!(app.count("inbound_messages").await, 0);
    let missing = [("From", "+14155550116"), ("To", SHARED), ("Body", "hi")];
    assert_field_error(inbound(&app, &missing).await, "MessageSid").await;
}

#[tokio::test]
async fn account_senders_are_validated_unique_across_accounts_and_never_the_shared_one() {
    let app = app().await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let got: Value = app
        .get("/api/v1/account/twilio", Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        got,
        json!({"sms_from": null, "whatsapp_from": null, "messaging_service_sid": null,
            "sms_uses_shared_sender": true, "whatsapp_uses_shared_sender": true})
    );
    let service = format!("MG{}", "a".repeat(32));
    let response = put_senders(
        &app,
        &ada.access_token,
        &json!({"sms_from": "+14155550199", "messaging_service_sid": service}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["sms_from"], OWN);
    assert_eq!(put["sms_uses_shared_sender"], false);

    for taken in [
        json!({"sms_from": OWN}),
        json!({"messaging_service_sid": service}),
        json!({"sms_from": SHARED}),
    ] {
        let body = assert_problem(
            put_senders(&app, &bob.access_token, &taken).await,
            StatusCode::CONFLICT,
            "sender_taken",
        )
        .await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(taken.as_object().unwrap().keys().next().unwrap().as_str())
        );
    }
    let bob_now: Value = app
        .get("/api/v1/account/twilio", Some(&bob.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bob_now["sms_from"], Value::Null);

    assert_field_error(
        put_senders(
            &app,
            &bob.access_token,
            &json!({"whatsapp_from": "not a phone"}),
        )
        .await,
        "whatsapp_from",
    )
    .await;
    assert_field_error(
        put_senders(
            &app,
            &bob.access_token,
            &json!({"messaging_service_sid": "MG12"}),
        )
        .await,
        "messaging_service_sid",
    )
    .await;
    assert_field_error(
        put_senders(&app, &bob.access_token, &json!({"from": OWN})).await,
        "from",
    )
    .await;
    assert_field_error(
        put_senders(
            &app,
            &bob.access_token,
            &json!({"sms_from": "+1 415 555 0199"}),
        )
        .await,
        "sms_from",
    )
    .await;
    assert_field_error(
        put_senders(&app, &bob.access_token, &json!({"whatsapp_from": ""})).await,
        "whatsapp_from",
    )
    .await;
    // an array of the fields in order is not the object the schema describes
    assert_field_error(
        put_senders(&app, &bob.access_token, &json!([null, null])).await,
        "body",
    )
    .await;
    // clearing gives the number back
    assert_eq!(
        put_senders(&app, &ada.access_token, &json!({}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        put_senders(&app, &bob.access_token, &json!({"sms_from": OWN}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/account/twilio", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn questions_sent_before_senders_were_recorded_count_as_sent_from_the_shared_sender() {
    let app = app().await;
    let phone = "+14155550117";
    let (delivery, _, token) = delivery_for(&app, "ada@example.com", phone).await;
    mark_sent(&app, &delivery, 1, 1, "SM1").await;
    sqlx::query("update outbound_messages m set sent_from = null from effects e where e.id = m.effect_id and e.provider_id = 'SM1'")
        .execute(&app.db)
        .await
        .unwrap();
    put_senders(&app, &token, &json!({"whatsapp_from": OWN})).await;
    // to the account's own number: that number never asked
    let own = [
        ("MessageSid", "SMin1"),
        ("From", "whatsapp:+14155550117"),
        ("To", "whatsapp:+14155550199"),
        ("Body", "to own"),
    ];
    assert_eq!(inbound(&app, &own).await.status(), StatusCode::OK);
    assert_eq!(inbound_outcome(&app, "SMin1").await.1, "no_question");
    assert_eq!(
        reply(&app, "SMin2", phone, SHARED, "Paris").await,
        StatusCode::OK
    );
    assert_eq!(answers(&app, &delivery, &token).await, ["Paris"]);
}

#[tokio::test]
async fn a_webhook_body_over_the_limit_is_a_413_problem() {
    let app = app().await;
    let body = "x".repeat(3 * 1024 * 1024);
    let params = [("MessageSid", "SMin1"), ("Body", body.as_str())];
    assert_problem(
        inbound(&app, &params).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    assert_eq!(app.count("inbound_messages").await, 0);
}
