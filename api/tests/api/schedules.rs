//! `/api/v1/schedules`: create with the first fires planned in the same transaction, every bad
//! input refused with its field and nothing written, pause/resume/update/delete and what they
//! do to planned messages, the fires listing, account isolation.

use chrono::{DateTime, Utc};
use herald_testing::fixtures;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_field_error, assert_problem};

/// A group whose students live in `zones` (one each, on `channel`).
async fn group(app: &TestApp, account: Uuid, zones: &[&str], channel: &'static str) -> Uuid {
    let students = fixtures::one_per_zone(zones, channel);
    fixtures::create_group(&app.db, account, &students).await.0
}

fn body(group: Uuid, cron: &str, timezone: &str) -> Value {
    json!({"name": "Morning reminder", "cron": cron, "timezone": timezone,
           "action": {"type": "group_message", "group_id": group, "text": "Class at 9"}})
}

async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app.post("/api/v1/schedules", body, Some(token)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn send(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    app.request(method, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Effect states of the schedule's messages, with their due instants.
async fn planned(app: &TestApp, schedule: &str) -> Vec<(DateTime<Utc>, String)> {
    sqlx::query_as(
        "select e.due_at, e.state from schedule_messages m join effects e on e.id = m.effect_id
         where m.schedule_id = $1::uuid order by e.due_at",
    )
    .bind(schedule)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_recipient_schedule_lists_each_zones_fires_and_plans_the_first_horizon_at_once() {
    let app = TestApp::spawn_with(&[("schedules.horizon_secs", Value::from(86_400 * 2))]).await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let group = group(
        &app,
        session.account_id,
        &["America/New_York", "Asia/Kolkata"],
        "sms",
    )
    .await;

    let schedule = create(&app, token, &body(group, "0 9 * * *", "recipient")).await;

    assert_eq!(schedule["kind"], "fixed-time");
    assert_eq!(schedule["timezone"], "recipient");
    assert_eq!(schedule["status"], "active");
    assert_eq!(schedule["action"]["group_id"], group.to_string());
    let id = schedule["id"].as_str().unwrap();
    let fires: Value = app
        .get(
            &format!("/api/v1/schedules/{id}/fires?count=3"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let upcoming = fires["upcoming"].as_array().unwrap();
    assert_eq!(upcoming.len(), 2);
    for zone in upcoming {
        let tz: chrono_tz::Tz = zone["timezone"].as_str().unwrap().parse().unwrap();
        let list = zone["fires"].as_array().unwrap();
        assert_eq!(list.len(), 3);
        for fire in list {
            let at: DateTime<Utc> = fire["at"].as_str().unwrap().parse().unwrap();
            let local = at
                .with_timezone(&tz)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            assert_eq!(fire["local"], local);
            assert!(local.ends_with("T09:00:00"), "{local}");
        }
    }
    let earliest = upcoming
        .iter()
        .map(|z| {
            z["fires"][0]["at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
        })
        .min()
        .unwrap();
    assert_eq!(
        schedule["next_fire_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        earliest
    );
    // two days of horizon: two fires per zone, one message each, keys unique per
    // (schedule, instant, student)
    let rows = planned(&app, id).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|(_, state)| state == "planned"));
    let distinct: i64 = sqlx::query_scalar(
        "select count(distinct e.idempotency_key) from schedule_messages m
         join effects e on e.id = m.effect_id where m.schedule_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(distinct, 4);
    // one fire row per (zone, instant), none beyond the two-day horizon
    let fires_at: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select fire_at from schedule_fires where schedule_id = $1::uuid and state = 'planned'",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(fires_at.len(), 4);
    let horizon = Utc::now() + chrono::Duration::days(2);
    assert!(fires_at.iter().all(|at| *at <= horizon), "{fires_at:?}");
    assert!(
        rows.iter().all(|(at, _)| fires_at.contains(at)),
        "every message is due at its fire"
    );
    // and it is listed, and readable alone
    let list: Value = app
        .get("/api/v1/schedules", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], id);
    let one = app
        .get(&format!("/api/v1/schedules/{id}"), Some(token))
        .await;
    assert_eq!(one.status(), StatusCode::OK);
}

#[tokio::test]
async fn past_fires_read_due_until_a_message_goes_out_then_fired() {
    let app = TestApp::spawn_with(&[("schedules.horizon_secs", Value::from(86_400 * 2))]).await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let group = group(&app, session.account_id, &["Europe/London"], "sms").await;
    let schedule = create(&app, token, &body(group, "0 9 * * *", "UTC")).await;
    let id = schedule["id"].as_str().unwrap();
    // no worker runs here: move the two planned fires three days into the past
    sqlx::query(
        "update schedule_fires set fire_at = fire_at - interval '3 days'
         where schedule_id = $1::uuid",
    )
    .bind(id)
    .execute(&app.db)
    .await
    .unwrap();
    let past = || async {
        let fires: Value = app
            .get(&format!("/api/v1/schedules/{id}/fires"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        fires["past"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["state"].as_str().unwrap().to_owned(),
                    f["outcome"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let waiting = json!({"sent": 0, "failed": 0, "skipped": 0, "pending": 1});
    assert_eq!(
        past().await,
        [
            ("due".to_owned(), waiting.clone()),
            ("due".to_owned(), waiting.clone())
        ]
    );

    // the latest fire's message goes out, the earlier one's is skipped
    for (order, state) in [("desc", "sent"), ("asc", "canceled")] {
        sqlx::query(&format!(
            "update effects set state = $2 where id = (
                 select m.effect_id from schedule_messages m
                 join schedule_fires f on f.id = m.fire_id
                 where m.schedule_id = $1::uuid order by f.fire_at {order} limit 1)"
        ))
        .bind(id)
        .bind(state)
        .execute(&app.db)
        .await
        .unwrap();
    }
    assert_eq!(
        past().await,
        [
            (
                "fired".to_owned(),
                json!({"sent": 1, "failed": 0, "skipped": 0, "pending": 0})
            ),
            (
                "fired".to_owned(),
                json!({"sent": 0, "failed": 0, "skipped": 1, "pending": 0})
            ),
        ]
    );
}

#[tokio::test]
async fn every_bad_input_names_its_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let sms_group = group(&app, session.account_id, &["Europe/London"], "sms").await;
    let whatsapp_group = group(&app, session.account_id, &["Europe/London"], "whatsapp").await;
    let other = app.signup("bob@example.com").await;
    let foreign_group = group(&app, other.account_id, &["Europe/London"], "sms").await;
    let valid = body(sms_group, "0 9 * * *", "recipient");
    let with = |path: &[&str], value: Value| {
        let mut body = valid.clone();
        let mut target = &mut body;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        body
    };
    let cases = [
        (with(&["cron"], json!("0 0 30 2 *")), "cron"),
        (with(&["cron"], json!("61 * * * *")), "cron"),
        (with(&["cron"], json!("")), "cron"),
        (with(&["timezone"], json!("EST")), "timezone"),
        (with(&["timezone"], json!("Mars/Base")), "timezone"),
        (with(&["name"], json!("  ")), "name"),
        (with(&["name"], json!("n".repeat(201))), "name"),
        (with(&["action", "type"], json!("email")), "action.type"),
        (
            with(&["action", "group_id"], json!("nope")),
            "action.group_id",
        ),
        (
            with(&["action", "group_id"], json!(Uuid::new_v4())),
            "action.group_id",
        ),
        (
            with(&["action", "group_id"], json!(foreign_group)),
            "action.group_id",
        ),
        (with(&["action", "text"], json!("")), "action.text"),
        (
            with(&["action", "text"], json!("x".repeat(4_097))),
            "action.text",
        ),
        (
            with(&["action", "text"], json!("x".repeat(1_601))),
            "action.text",
        ),
        (with(&["surprise"], json!(1)), "surprise"),
        (with(&["action", "extra"], json!(1)), "action.extra"),
        // PostgreSQL text cannot hold NUL: refused by field, not a 500
        (
            with(&["action", "text"], json!("Class\u{0}at 9")),
            "action.text",
        ),
        (with(&["name"], json!("\u{0}")), "name"),
    ];
    for (bad, field) in cases {
        let response = app.post("/api/v1/schedules", &bad, Some(token)).await;
        let problem = assert_field_error(response, field).await;
        assert!(problem["errors"].to_string().len() > 10, "{problem}");
    }
    // a cron problem names the part of the expression at fault
    for (cron, part) in [("61 * * * *", "minute"), ("0 0 30 2 *", "day-of-month")] {
        let response = app
            .post(
                "/api/v1/schedules",
                &with(&["cron"], json!(cron)),
                Some(token),
            )
            .await;
        let problem = assert_field_error(response, "cron").await;
        let message = problem["errors"][0]["message"].to_string();
        assert!(message.contains(part), "{cron}: {problem}");
    }
    // several at once are all reported
    let response = app
        .post(
            "/api/v1/schedules",
            &json!({"name": "", "cron": "* * *", "timezone": "EST",
                    "action": {"type": "x", "group_id": sms_group, "text": ""}}),
            Some(token),
        )
        .await;
    let problem = assert_field_error(response, "cron").await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 5, "{problem}");
    assert_eq!(app.count("schedules").await, 0);
    assert_eq!(
        app.count("effects").await,
        2,
        "only the two sign-up e-mails"
    );

    // 1,601 characters are fine for WhatsApp-only groups
    let mut long = body(whatsapp_group, "0 9 * * *", "Europe/London");
    long["action"]["text"] = json!("x".repeat(1_601));
    create(&app, token, &long).await;
    // bad count on the fires list
    let id = app
        .get("/api/v1/schedules", Some(token))
        .await
        .json::<Value>()
        .await
        .unwrap()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for count in ["0", "101", "x"] {
        let response = app
            .get(
                &format!("/api/v1/schedules/{id}/fires?count={count}"),
                Some(token),
            )
            .await;
        assert_field_error(response, "count").await;
    }
}

#[tokio::test]
async fn pause_cancels_planned_messages_and_resume_plans_only_later_fires() {
    let app = TestApp::spawn_with(&[("schedules.horizon_secs", Value::from(120))]).await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let group = group(
        &app,
        session.account_id,
        &["Europe/London", "Asia/Tokyo"],
        "sms",
    )
    .await;
    // every 10 seconds: the two-minute horizon holds a dozen fires
    let schedule = create(&app, token, &body(group, "*/10 * * * * *", "recipient")).await;
    let id = schedule["id"].as_str().unwrap();
    assert!(planned(&app, id).await.len() >= 22);

    let paused = send(
        &app,
        Method::POST,
        &format!("/api/v1/schedules/{id}/pause"),
        token,
    )
    .await;
    assert_eq!(paused.status(), StatusCode::OK);
    let paused: Value = paused.json().await.unwrap();
    let paused_at = Utc::now();
    assert_eq!(paused["status"], "paused");
    assert!(paused["next_fire_at"].is_null());
    assert!(
        planned(&app, id)
            .await
            .iter()
            .filter(|(at, _)| *at > paused_at)
            .all(|(_, state)| state == "canceled")
    );
    let fires: Value = app
        .get(&format!("/api/v1/schedules/{id}/fires"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fires["upcoming"], json!([]));
    // pausing again changes nothing
    let again = send(
        &app,
        Method::POST,
        &format!("/api/v1/schedules/{id}/pause"),
        token,
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK);

    let resumed = send(
        &app,
        Method::POST,
        &format!("/api/v1/schedules/{id}/resume"),
        token,
    )
    .await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(resumed["status"], "active");
    let rows = planned(&app, id).await;
    let live: Vec<&(DateTime<Utc>, String)> = rows
        .iter()
        .filter(|(_, state)| state == "planned")
        .collect();
    assert!(live.len() >= 20);
    assert!(live.iter().all(|(at, _)| *at > paused_at));
    // the same fires again, not a second copy of them
    let keys: i64 = sqlx::query_scalar(
        "select count(*) - count(distinct e.idempotency_key) from schedule_messages m
         join effects e on e.id = m.effect_id where m.schedule_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(keys, 0);
    // resuming an active schedule changes nothing
    let before: (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("select active_from, updated_at from schedules where id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let again = send(
        &app,
        Method::POST,
        &format!("/api/v1/schedules/{id}/resume"),
        token,
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK);
    let after: (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("select active_from, updated_at from schedules where id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(before, after);
    assert_eq!(planned(&app, id).await, rows);
}

#[tokio::test]
async fn an_update_replans_unsent_fires_and_delete_cancels_them() {
    let app = TestApp::spawn_with(&[("schedules.horizon_secs", Value::from(86_400 * 3))]).await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let group = group(&app, session.account_id, &["Europe/London"], "sms").await;
    let schedule = create(&app, token, &body(group, "0 9 * * *", "Europe/London")).await;
    let id = schedule["id"].as_str().unwrap();
    let before = planned(&app, id).await;
    assert_eq!(before.len(), 3);

    let response = app
        .request(Method::PATCH, &format!("/api/v1/schedules/{id}"))
        .bearer_auth(token)
        .json(&json!({"cron": "30 18 * * *", "action": {"type": "group_message", "group_id": group, "text": "Evening"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["cron"], "30 18 * * *");
    assert_eq!(
        updated["name"], "Morning reminder",
        "fields not given are kept"
    );
    assert_eq!(updated["action"]["text"], "Evening");
    let london = chrono_tz::Europe::London;
    let rows = planned(&app, id).await;
    let (canceled, live): (Vec<_>, Vec<_>) =
        rows.iter().partition(|(_, state)| state == "canceled");
    assert_eq!(canceled.len(), 3);
    assert_eq!(live.len(), 3);
    for (at, _) in &live {
        assert_eq!(
            at.with_timezone(&london).format("%H:%M").to_string(),
            "18:30"
        );
    }
    let bodies: Vec<String> = sqlx::query_scalar(
        "select o.body from schedule_messages m join effects e on e.id = m.effect_id
         join outbound_messages o on o.effect_id = m.effect_id
         where m.schedule_id = $1::uuid and e.state = 'planned'",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(bodies.iter().all(|b| b == "Evening"));
    // a bad update is refused whole
    let response = app
        .request(Method::PATCH, &format!("/api/v1/schedules/{id}"))
        .bearer_auth(token)
        .json(&json!({"name": "x", "cron": "0 0 31 2 *"}))
        .send()
        .await
        .unwrap();
    assert_field_error(response, "cron").await;
    let kept: Value = app
        .get(&format!("/api/v1/schedules/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["name"], "Morning reminder");

    // the group is in use
    let refused = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/groups/{group}"),
        token,
    )
    .await;
    assert_problem(refused, StatusCode::CONFLICT, "group_in_use").await;

    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/schedules/{id}"),
        token,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let states: Vec<String> = sqlx::query_scalar(
        "select state from effects where kind = 'message' and payload->>'schedule_id' = $1",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(states.len(), 6);
    assert!(states.iter().all(|s| s == "canceled"));
    let gone = app
        .get(&format!("/api/v1/schedules/{id}"), Some(token))
        .await;
    assert_problem(gone, StatusCode::NOT_FOUND, "not_found").await;
    let freed = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/groups/{group}"),
        token,
    )
    .await;
    assert_eq!(freed.status(), StatusCode::NO_CONTENT);
}

/// Effect id, state and body of the schedule's messages, by due instant.
async fn messages(app: &TestApp, schedule: &str) -> Vec<(Uuid, String, String)> {
    sqlx::query_as(
        "select e.id, e.state, o.body from schedule_messages m join effects e on e.id = m.effect_id
         join outbound_messages o on o.effect_id = m.effect_id
         where m.schedule_id = $1::uuid order by e.due_at",
    )
    .bind(schedule)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fire_being_sent_takes_new_text_and_stops_at_a_pause_and_an_operators_cancel_stays() {
    let app = TestApp::spawn_with(&[("schedules.horizon_secs", Value::from(86_400 * 3))]).await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let group = group(&app, session.account_id, &["Europe/London"], "sms").await;
    let schedule = create(&app, token, &body(group, "0 9 * * *", "Europe/London")).await;
    let id = schedule["id"].as_str().unwrap();
    let [first, second, third] = <[_; 3]>::try_from(messages(&app, id).await).unwrap();
    // the first fire is under way (its instant passed; the message waits for a rate-limit
    // slot), and an operator cancels the second through the jobs API
    sqlx::query(
        "update schedule_fires f set fire_at = now() - interval '30 seconds' from schedule_messages m
         where m.effect_id = $1 and f.id = m.fire_id",
    )
    .bind(first.0)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "update effects set state = 'retrying', due_at = now() - interval '30 seconds' where id = $1",
    )
    .bind(first.0)
    .execute(&app.db)
    .await
    .unwrap();
    let canceled = send(
        &app,
        Method::POST,
        &format!("/api/v1/jobs/{}/cancel", second.0),
        token,
    )
    .await;
    assert_eq!(canceled.status(), StatusCode::OK);

    let response = app
        .request(Method::PATCH, &format!("/api/v1/schedules/{id}"))
        .bearer_auth(token)
        .json(
            &json!({"action": {"type": "group_message", "group_id": group, "text": "Class at 10"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let after = messages(&app, id).await;
    let state_and_body = |effect: Uuid| {
        after
            .iter()
            .find(|m| m.0 == effect)
            .map(|m| (m.1.as_str(), m.2.as_str()))
            .unwrap()
    };
    assert_eq!(state_and_body(first.0), ("retrying", "Class at 10"));
    assert_eq!(
        state_and_body(second.0),
        ("canceled", "Class at 9"),
        "re-planning never revives what an operator canceled"
    );
    assert_eq!(state_and_body(third.0), ("planned", "Class at 10"));

    let paused = send(
        &app,
        Method::POST,
        &format!("/api/v1/schedules/{id}/pause"),
        token,
    )
    .await;
    assert_eq!(paused.status(), StatusCode::OK);
    let states: Vec<String> = messages(&app, id).await.into_iter().map(|m| m.1).collect();
    assert_eq!(states, ["canceled", "canceled", "canceled"]);
}

#[tokio::test]
async fn students_added_or_moved_join_the_fires_already_planned() {
    let app = TestApp::spawn_with(&[("schedules.horizon_secs", Value::from(86_400 * 3))]).await;
    let session = app.signup("ada@example.com").await;
    let token = &session.access_token;
    let group = group(&app, session.account_id, &["Europe/London"], "sms").await;
    let schedule = create(&app, token, &body(group, "0 9 * * *", "recipient")).await;
    let id = schedule["id"].as_str().unwrap();
    assert_eq!(planned(&app, id).await.len(), 3);
    let per_zone = || async {
        sqlx::query_as::<_, (String, i64, i64)>(
            "select f.timezone, count(m.effect_id), max(f.recipients)::bigint from schedule_fires f
             join schedule_messages m on m.fire_id = f.id
             where f.schedule_id = $1::uuid and f.state = 'planned' group by 1 order by 1",
        )
        .bind(id)
        .fetch_all(&app.db)
        .await
        .unwrap()
    };

    // one more Londoner and a student in Tokyo, a zone the schedule did not fire in yet
    let added = app
        .post(
            &format!("/api/v1/groups/{group}/students"),
            &json!({"students": [
                {"name": "Bo", "phone": "+14155550900", "channel": "sms", "timezone": "Europe/London"},
                {"name": "Cy", "phone": "+14155550901", "channel": "sms", "timezone": "Asia/Tokyo"}]}),
            Some(token),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    assert_eq!(
        per_zone().await,
        [
            ("Asia/Tokyo".to_owned(), 3, 1),
            ("Europe/London".to_owned(), 6, 2)
        ]
    );
    // once per (fire, student) still: the keys are unique
    let duplicates: i64 = sqlx::query_scalar(
        "select count(*) - count(distinct e.idempotency_key) from schedule_messages m
         join effects e on e.id = m.effect_id where m.schedule_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);

    // the Tokyo student moves to New York: New York's fires are planned for them at once
    let cy = added["items"][1]["id"].as_str().unwrap();
    let moved = app
        .request(Method::PUT, &format!("/api/v1/students/{cy}"))
        .bearer_auth(token)
        .json(
            &json!({"name": "Cy", "phone": "+14155550901", "channel": "sms",
                      "timezone": "America/New_York", "subscribed": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let zones: Vec<(String, i64)> = per_zone()
        .await
        .into_iter()
        .map(|(zone, messages, _)| (zone, messages))
        .collect();
    assert!(
        zones.contains(&("America/New_York".to_owned(), 3))
            || zones.contains(&("America/New_York".to_owned(), 2)),
        "{zones:?}"
    );
}

#[tokio::test]
async fn another_account_sees_none_of_it() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let bob = app.signup("bob@example.com").await;
    let group = group(&app, ada.account_id, &["Europe/London"], "sms").await;
    let schedule = create(&app, &ada.access_token, &body(group, "@daily", "UTC")).await;
    let id = schedule["id"].as_str().unwrap();
    let token = &bob.access_token;
    for (method, path) in [
        (Method::GET, format!("/api/v1/schedules/{id}")),
        (Method::GET, format!("/api/v1/schedules/{id}/fires")),
        (Method::POST, format!("/api/v1/schedules/{id}/pause")),
        (Method::POST, format!("/api/v1/schedules/{id}/resume")),
        (Method::DELETE, format!("/api/v1/schedules/{id}")),
    ] {
        let response = send(&app, method, &path, token).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app
        .request(Method::PATCH, &format!("/api/v1/schedules/{id}"))
        .bearer_auth(token)
        .json(&json!({"name": "mine now"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let list: Value = app
        .get("/api/v1/schedules", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    // an idempotent retry of the create answers the first result
    let key_body = body(group, "@hourly", "UTC");
    let first = app
        .request(Method::POST, "/api/v1/schedules")
        .bearer_auth(&ada.access_token)
        .header("Idempotency-Key", "create-1")
        .json(&key_body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second: Value = app
        .request(Method::POST, "/api/v1/schedules")
        .bearer_auth(&ada.access_token)
        .header("Idempotency-Key", "create-1")
        .json(&key_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(app.count("schedules").await, 2);
}
