//! Sending a campaign through the API: launch, pause, resume and stop and their refusals, and
//! what comes back after sending — SendGrid's signed events and inbound replies. No worker
//! runs here: the e-mails' effects are looked at (and marked sent, as the worker would) in the
//! database; sending itself is the worker suite's (`worker::campaign_sends`).

use herald_shared::email_events::testing::{key_pair, sign};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::campaign_generation::campaign_with_prospects;
use crate::helpers::{TestApp, assert_problem};

/// The id of the campaign at `path` (`/api/v1/campaigns/{id}`).
fn campaign_id(path: &str) -> Uuid {
    path.rsplit('/').next().unwrap().parse().unwrap()
}

/// The campaign's e-mails: (effect, e-mail address, step, effect state), by address.
async fn emails(app: &TestApp, path: &str) -> Vec<(Uuid, String, i32, String)> {
    let campaign = campaign_id(path);
    sqlx::query_as(
        "select cs.effect_id, p.email, cs.position, e.state
         from campaign_sends cs join people p on p.id = cs.person_id
         join effects e on e.id = cs.effect_id
         where cs.campaign_id = $1 order by p.email, cs.position",
    )
    .bind(campaign)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn prospect_states(app: &TestApp, path: &str) -> Vec<(String, String)> {
    let campaign = campaign_id(path);
    sqlx::query_as(
        "select p.email, cp.state from campaign_prospects cp join people p on p.id = cp.person_id
         where cp.campaign_id = $1 order by p.email",
    )
    .bind(campaign)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Generates the campaign and writes every message as if the model had, making it `ready`.
async fn make_ready(app: &TestApp, token: &str, path: &str) {
    let response = app
        .post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let campaign = campaign_id(path);
    sqlx::query(
        "insert into campaign_messages (account_id, campaign_id, person_id, position, state,
                                        subject, body)
         select c.account_id, cp.campaign_id, cp.person_id, s.position, 'done',
                'Hi ' || cp.person_id, 'Step ' || s.position
         from campaign_prospects cp join campaigns c on c.id = cp.campaign_id
         join campaign_steps s on s.campaign_id = cp.campaign_id
         where cp.campaign_id = $1 and cp.state = 'active'
         on conflict (campaign_id, person_id, position)
         do update set state = 'done', subject = excluded.subject, body = excluded.body",
    )
    .bind(campaign)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("update campaigns set state = 'ready' where id = $1")
        .bind(campaign)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn state_of(app: &TestApp, token: &str, path: &str) -> String {
    let campaign: Value = app.get(path, Some(token)).await.json().await.unwrap();
    campaign["state"].as_str().unwrap().to_owned()
}

/// A launched campaign of a new account: (token, path), its two e-mails planned.
async fn launched(app: &TestApp, email: &str) -> (String, String) {
    let (token, path) = campaign_with_prospects(app, email).await;
    make_ready(app, &token, &path).await;
    let response = app
        .post(&format!("{path}/launch"), &json!({}), Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    (token, path)
}

/// Marks a planned e-mail sent, as the worker records it.
async fn mark_sent(app: &TestApp, effect_id: Uuid) {
    sqlx::query("update effects set state = 'sent', finished_at = now() where id = $1")
        .bind(effect_id)
        .execute(&app.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn launching_plans_each_first_email_in_the_prospects_window_and_runs() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    make_ready(&app, token, &path).await;

    let response = app
        .post(&format!("{path}/launch"), &json!({}), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let launched: Value = response.json().await.unwrap();
    assert_eq!(launched["planned"], 2);
    assert_eq!(launched["skipped"], 0);
    assert_eq!(launched["campaign"]["state"], "running");
    assert_eq!(
        launched["campaign"]["sending"],
        json!([{"position": 1, "planned": 2, "held": 0, "sent": 0, "failed": 0, "canceled": 0}])
    );

    let planned = emails(&app, &path).await;
    let addresses: Vec<&str> = planned.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        addresses,
        ["a@example.com", "b@example.com"],
        "c is suppressed"
    );
    assert!(planned.iter().all(|e| e.2 == 1 && e.3 == "planned"));
    // inside the campaign's window (New York, weekdays 09:00–17:00) on the prospects' clock
    let dues: Vec<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
        "select e.due_at from campaign_sends cs join effects e on e.id = cs.effect_id
         where cs.campaign_id = $1",
    )
    .bind(campaign_id(&path))
    .fetch_all(&app.db)
    .await
    .unwrap();
    let zone: chrono_tz::Tz = "America/New_York".parse().unwrap();
    for (due,) in dues {
        let local = due.with_timezone(&zone);
        let hour = chrono::Timelike::hour(&local);
        let weekday = chrono::Datelike::weekday(&local).number_from_monday();
        assert!((9..17).contains(&hour) && weekday <= 5, "{local}");
    }

    // launched once; its plan preview is for campaigns not yet launched
    let again = app
        .post(&format!("{path}/launch"), &json!({}), Some(token))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "campaign_state").await;
    let preview = app.get(&format!("{path}/schedule"), Some(token)).await;
    assert_problem(preview, StatusCode::CONFLICT, "campaign_state").await;
    // a launched campaign takes no new prospects: they would have no e-mails
    let person: Value = app
        .post(
            "/api/v1/people",
            &json!({"email": "late@example.com"}),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let late = app
        .post(
            &format!("{path}/prospects"),
            &json!({"person_ids": [person["id"]]}),
            Some(token),
        )
        .await;
    assert_problem(late, StatusCode::CONFLICT, "campaign_launched").await;
}

#[tokio::test]
async fn pause_holds_resume_replans_and_stop_cancels_the_unsent_emails() {
    let app = TestApp::spawn().await;
    let (token, path) = launched(&app, "ada@example.com").await;
    let token = token.as_str();
    let resume = app
        .post(&format!("{path}/resume"), &json!({}), Some(token))
        .await;
    assert_problem(resume, StatusCode::CONFLICT, "campaign_state").await;

    let paused = app
        .post(&format!("{path}/pause"), &json!({}), Some(token))
        .await;
    assert_eq!(paused.status(), StatusCode::OK);
    assert_eq!(state_of(&app, token, &path).await, "paused");
    assert!(emails(&app, &path).await.iter().all(|e| e.3 == "held"));
    let twice = app
        .post(&format!("{path}/pause"), &json!({}), Some(token))
        .await;
    assert_problem(twice, StatusCode::CONFLICT, "campaign_state").await;

    let resumed = app
        .post(&format!("{path}/resume"), &json!({}), Some(token))
        .await;
    assert_eq!(resumed.status(), StatusCode::ACCEPTED);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(resumed["planned"], 2);
    assert_eq!(resumed["campaign"]["state"], "running");
    assert!(emails(&app, &path).await.iter().all(|e| e.3 == "planned"));

    let stopped = app
        .post(&format!("{path}/stop"), &json!({}), Some(token))
        .await;
    assert_eq!(stopped.status(), StatusCode::OK);
    assert!(emails(&app, &path).await.iter().all(|e| e.3 == "canceled"));
    for action in ["pause", "resume", "launch", "stop"] {
        let refused = app
            .post(&format!("{path}/{action}"), &json!({}), Some(token))
            .await;
        assert_problem(refused, StatusCode::CONFLICT, "campaign_state").await;
    }
}

#[tokio::test]
async fn a_campaign_with_nothing_written_is_not_launched_and_others_cannot_touch_it() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    let draft = app
        .post(&format!("{path}/launch"), &json!({}), Some(token))
        .await;
    assert_problem(draft, StatusCode::CONFLICT, "campaign_state").await;
    // generated, but every first e-mail failed
    app.post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    let campaign = campaign_id(&path);
    sqlx::query(
        "update campaign_messages set state = 'failed', error = 'refused' where campaign_id = $1",
    )
    .bind(campaign)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("update campaigns set state = 'ready' where id = $1")
        .bind(campaign)
        .execute(&app.db)
        .await
        .unwrap();
    let nothing = app
        .post(&format!("{path}/launch"), &json!({}), Some(token))
        .await;
    assert_problem(nothing, StatusCode::CONFLICT, "nothing_to_send").await;
    assert_eq!(state_of(&app, token, &path).await, "ready");
    assert!(emails(&app, &path).await.is_empty());

    let mallory = app.signup("mallory@example.com").await.access_token;
    for action in ["launch", "pause", "resume"] {
        let refused = app
            .post(&format!("{path}/{action}"), &json!({}), Some(&mallory))
            .await;
        assert_problem(refused, StatusCode::NOT_FOUND, "not_found").await;
    }
    let bad = app
        .post(
            "/api/v1/campaigns/not-an-id/launch",
            &json!({}),
            Some(token),
        )
        .await;
    assert_problem(bad, StatusCode::NOT_FOUND, "not_found").await;
}

/// Posts SendGrid events signed by `key` (`None`: unsigned).
async fn post_events(
    app: &TestApp,
    key: Option<&herald_shared::email_events::testing::TestSigningKey>,
    events: &Value,
) -> reqwest::Response {
    let body = serde_json::to_vec(events).unwrap();
    let timestamp = "1733600000";
    let mut request = app
        .request(Method::POST, "/webhooks/sendgrid/events")
        .header("content-type", "application/json")
        .header("x-twilio-email-event-webhook-timestamp", timestamp);
    if let Some(key) = key {
        request = request.header(
            "x-twilio-email-event-webhook-signature",
            sign(key, timestamp, &body),
        );
    }
    request.body(body).send().await.unwrap()
}

#[tokio::test]
async fn signed_sendgrid_events_apply_once_and_forged_ones_are_refused() {
    let (public, key) = key_pair();
    let app = TestApp::spawn_with(&[(
        "sendgrid.event_webhook_public_key",
        Value::from(public.as_str()),
    )])
    .await;
    let (_token, path) = launched(&app, "ada@example.com").await;
    let planned = emails(&app, &path).await;
    let (a, b) = (planned[0].0, planned[1].0);
    mark_sent(&app, a).await;
    mark_sent(&app, b).await;
    let events = json!([
        {"sg_event_id": "ev-1", "event": "delivered", "email": "a@example.com",
         "timestamp": 1733600000, "effect_id": a.to_string()},
        {"sg_event_id": "ev-2", "event": "bounce", "type": "bounce", "email": "b@example.com",
         "timestamp": 1733600001, "reason": "550 5.1.1 no such user", "effect_id": b.to_string()},
    ]);

    // forged: another key's signature, or none, changes nothing
    let (_, other) = key_pair();
    let forged = post_events(&app, Some(&other), &events).await;
    assert_problem(forged, StatusCode::FORBIDDEN, "forbidden").await;
    let unsigned = post_events(&app, None, &events).await;
    assert_problem(unsigned, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.count("email_events").await, 0);

    let response = post_events(&app, Some(&key), &events).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // SendGrid delivers at least once: the same events again change nothing
    let again = post_events(&app, Some(&key), &events).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("email_events").await, 2);
    let statuses: Vec<(String,)> = sqlx::query_as(
        "select provider_status from outbound_messages where effect_id = any($1)
         order by recipient",
    )
    .bind(vec![a, b])
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        statuses,
        [("delivered".to_owned(),), ("bounced".to_owned(),)]
    );
    let suppressed: Vec<(String, String)> =
        sqlx::query_as("select email, reason from suppressions where email = 'b@example.com'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        suppressed,
        [("b@example.com".to_owned(), "bounced".to_owned())]
    );
    assert_eq!(
        prospect_states(&app, &path).await,
        [
            ("a@example.com".to_owned(), "active".to_owned()),
            ("b@example.com".to_owned(), "bounced".to_owned()),
            ("c@example.com".to_owned(), "skipped".to_owned()),
        ]
    );
    // not an array of events: a field error, nothing written
    let broken = post_events(&app, Some(&key), &json!({"event": "delivered"})).await;
    assert_eq!(broken.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn with_no_key_configured_every_event_post_is_refused() {
    let app = TestApp::spawn().await;
    let (_, key) = key_pair();
    let events = json!([{"sg_event_id": "ev-1", "event": "delivered", "email": "a@example.com"}]);
    let response = post_events(&app, Some(&key), &events).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.count("email_events").await, 0);
}

/// Posts a message to the inbound webhook as SendGrid's Inbound Parse does (multipart form).
async fn post_inbound(app: &TestApp, secret: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let boundary = "xYzZY";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    app.request(Method::POST, &format!("/webhooks/email/inbound/{secret}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reply_stops_the_sequence_an_auto_reply_does_not_and_a_bounce_suppresses() {
    let app = TestApp::spawn_with(&[("email.inbound_secret", Value::from("in-s3cret"))]).await;
    let (_token, path) = launched(&app, "ada@example.com").await;
    let planned = emails(&app, &path).await;
    let (a, b) = (planned[0].0, planned[1].0);
    mark_sent(&app, a).await;
    mark_sent(&app, b).await;
    let db = &app.db;
    let message_id = |effect: Uuid| async move {
        sqlx::query_scalar::<_, String>(
            "select message_id from campaign_sends where effect_id = $1",
        )
        .bind(effect)
        .fetch_one(db)
        .await
        .unwrap()
    };
    let (a_id, b_id) = (message_id(a).await, message_id(b).await);

    let wrong = post_inbound(&app, "guess", &[("headers", "From: x@example.com\n")]).await;
    assert_problem(wrong, StatusCode::NOT_FOUND, "not_found").await;

    let out_of_office = format!(
        "From: A <a@example.com>\nSubject: Out of office\nIn-Reply-To: {a_id}\n\
         Auto-Submitted: auto-replied\n"
    );
    let auto = post_inbound(&app, "in-s3cret", &[("headers", &out_of_office)]).await;
    let auto: Value = auto.json().await.unwrap();
    assert_eq!(auto, json!({"matched": true, "kind": "auto_reply"}));
    assert_eq!(prospect_states(&app, &path).await[0].1, "active");

    let reply = format!(
        "From: A <a@example.com>\nSubject: Re: Hi\nIn-Reply-To: {a_id}\nReferences: {a_id}\n"
    );
    let answered = post_inbound(
        &app,
        "in-s3cret",
        &[("headers", &reply), ("text", "Sounds good, call me.")],
    )
    .await;
    let answered: Value = answered.json().await.unwrap();
    assert_eq!(answered, json!({"matched": true, "kind": "reply"}));

    let report = "From: Mail Delivery Subsystem <mailer-daemon@example.net>\n\
                  Subject: Undelivered Mail\n\
                  Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n";
    let returned =
        format!("Your message was not delivered.\n\nMessage-ID: {b_id}\nTo: b@example.com\n");
    let bounce = post_inbound(
        &app,
        "in-s3cret",
        &[("headers", report), ("text", &returned)],
    )
    .await;
    let bounce: Value = bounce.json().await.unwrap();
    assert_eq!(bounce, json!({"matched": true, "kind": "bounce"}));

    assert_eq!(
        prospect_states(&app, &path).await,
        [
            ("a@example.com".to_owned(), "replied".to_owned()),
            ("b@example.com".to_owned(), "bounced".to_owned()),
            ("c@example.com".to_owned(), "skipped".to_owned()),
        ]
    );
    let kinds: Vec<(String,)> =
        sqlx::query_as("select kind from campaign_replies order by received_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        [
            ("auto_reply".to_owned(),),
            ("reply".to_owned(),),
            ("bounce".to_owned(),)
        ]
    );

    // an e-mail naming a Message-ID Herald did not write matches nothing
    let stranger = format!(
        "From: z@example.com\nIn-Reply-To: <{}@elsewhere.example>\n",
        Uuid::new_v4()
    );
    let unknown = post_inbound(&app, "in-s3cret", &[("headers", &stranger)]).await;
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown, json!({"matched": false, "kind": null}));
    let missing = post_inbound(&app, "in-s3cret", &[("subject", "no headers")]).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A one-click unsubscribe cancels the prospect's e-mails at once, and deleting a person
/// cancels theirs (a held one would otherwise stay held for ever).
#[tokio::test]
async fn unsubscribing_or_deleting_a_prospect_cancels_their_unsent_emails() {
    let app = TestApp::spawn().await;
    let (token, path) = launched(&app, "ada@example.com").await;
    let campaign = campaign_id(&path);
    let people: Vec<(Uuid, String)> = sqlx::query_as(
        "select p.id, p.email from campaign_sends cs join people p on p.id = cs.person_id
         where cs.campaign_id = $1 order by p.email",
    )
    .bind(campaign)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let link = herald_shared::unsubscribe::token(&app.secrets, campaign, people[0].0);
    let response = app
        .request(Method::POST, &format!("/u/{link}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/people/{}", people[1].0),
            None,
            &token,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let states: Vec<(String,)> = sqlx::query_as(
        "select e.state from effects e where e.kind = 'campaign_email' order by e.last_error",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        states,
        [("canceled".to_owned(),), ("canceled".to_owned(),)],
        "both e-mails canceled"
    );
    assert_eq!(
        prospect_states(&app, &path).await,
        [
            ("a@example.com".to_owned(), "unsubscribed".to_owned()),
            ("c@example.com".to_owned(), "skipped".to_owned()),
        ]
    );
}

/// A signed event naming an e-mail by its effect id but another address (anyone sending
/// through the same SendGrid account writes the custom arguments) changes nothing.
#[tokio::test]
async fn an_event_for_another_address_than_the_emails_changes_nothing() {
    let (public, key) = key_pair();
    let app = TestApp::spawn_with(&[(
        "sendgrid.event_webhook_public_key",
        Value::from(public.as_str()),
    )])
    .await;
    let (_token, path) = launched(&app, "ada@example.com").await;
    let a = emails(&app, &path).await[0].0;
    mark_sent(&app, a).await;
    let events = json!([
        {"sg_event_id": "ev-x", "event": "spamreport", "email": "mallory@example.com",
         "timestamp": 1733600000, "effect_id": a.to_string()},
    ]);
    let response = post_events(&app, Some(&key), &events).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(prospect_states(&app, &path).await[0].1, "active");
    assert_eq!(
        app.count("suppressions").await,
        1,
        "only c@, from the fixture"
    );
}
