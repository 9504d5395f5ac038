use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use herald_testing::fixtures;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_field_error, assert_problem};

/// A group with students (name, zone, channel), written by the groups API's own functions
/// (the groups API has its own tests).
async fn group(
    app: &TestApp,
    account: Uuid,
    students: &[(&str, &str, &'static str)],
) -> (Uuid, Vec<Uuid>) {
    let students: Vec<_> = students
        .iter()
        .enumerate()
        .map(|(index, (name, zone, channel))| {
            fixtures::student(name, &format!("+1415555{index:04}"), channel, zone)
        })
        .collect();
    fixtures::create_group(&app.db, account, &students).await
}

async fn course(app: &TestApp, token: &str, days: Value) -> String {
    let response = app
        .post(
            "/api/v1/courses",
            &json!({"name": "C", "author": "A", "days": days}),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn two_days() -> Value {
    json!([
        {"text": "Day one", "questions": [{"question": "Ready?", "type": "choice", "options": ["yes", "no"], "correct_answer": "yes"}]},
        {"text": "Day two"}
    ])
}

/// A start date a week ahead, at 09:00 local.
fn start_in_a_week() -> (String, NaiveDateTime) {
    let date = (Utc::now() + Duration::days(7)).date_naive();
    let local = date.and_hms_opt(9, 0, 0).unwrap();
    (local.format("%Y-%m-%d %H:%M:%S").to_string(), local)
}

async fn send(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    app.request(method, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn messages(app: &TestApp, token: &str, delivery: &str, query: &str) -> Vec<Value> {
    let page: Value = app
        .get(
            &format!("/api/v1/deliveries/{delivery}/messages?limit=200{query}"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn each_student_gets_each_day_at_nine_on_their_own_clock() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let zones = [
        ("Ny", "America/New_York", "sms"),
        ("Lo", "Europe/London", "whatsapp"),
        ("Ko", "Asia/Kolkata", "sms"),
    ];
    let (group_id, students) = group(&app, ada.account_id, &zones).await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    let (start_at, local) = start_in_a_week();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});

    let preview: Value = app
        .post("/api/v1/deliveries/preview", &body, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["student_count"], 3);
    assert_eq!(preview["message_count"], 9);
    assert_eq!(app.count("deliveries").await, 0, "preview creates nothing");

    let created = app
        .post("/api/v1/deliveries", &body, Some(&ada.access_token))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let delivery: Value = created.json().await.unwrap();
    assert_eq!(delivery["status"], "scheduled");
    assert_eq!(delivery["message_count"], 9);
    assert_eq!(delivery["progress"]["planned"], 9);
    let id = delivery["id"].as_str().unwrap();

    for ((_, zone, _), student) in zones.iter().zip(&students) {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let rows = messages(
            &app,
            &ada.access_token,
            id,
            &format!("&student_id={student}"),
        )
        .await;
        let times: Vec<(i64, i64, DateTime<Utc>)> = rows
            .iter()
            .map(|m| {
                (
                    m["day"].as_i64().unwrap(),
                    m["seq"].as_i64().unwrap(),
                    m["send_at"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        let day1 = tz
            .from_local_datetime(&local)
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        let day2 = tz
            .from_local_datetime(&(local + Duration::days(1)))
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            times,
            [
                (1, 0, day1),
                (1, 1, day1 + Duration::seconds(2)),
                (2, 0, day2)
            ],
            "{zone}"
        );
        let preview_student = preview["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["student_id"] == student.to_string())
            .unwrap();
        assert_eq!(
            preview_student["days"][0]["at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
            day1
        );
    }
    let first: DateTime<Utc> = delivery["next_send_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        first
            .with_timezone(&chrono_tz::Asia::Kolkata)
            .format("%H:%M")
            .to_string(),
        "09:00"
    );
    let question = &messages(&app, &ada.access_token, id, "&state=planned").await[3];
    assert_eq!(question["body"], "Ready?\nA) yes\nB) no");
}

#[tokio::test]
async fn with_a_delivery_zone_everyone_gets_the_same_instant() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let (group_id, _) = group(
        &app,
        ada.account_id,
        &[
            ("a", "America/New_York", "sms"),
            ("b", "Asia/Kolkata", "sms"),
        ],
    )
    .await;
    let course_id = course(&app, &ada.access_token, json!([{"text": "only day"}])).await;
    let (start_at, local) = start_in_a_week();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at, "timezone": "Europe/London"});
    let delivery: Value = app
        .post("/api/v1/deliveries", &body, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    let expected = chrono_tz::Europe::London
        .from_local_datetime(&local)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let rows = messages(
        &app,
        &ada.access_token,
        delivery["id"].as_str().unwrap(),
        "",
    )
    .await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|m| {
        m["send_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
            == expected
    }));
}

#[tokio::test]
async fn bad_delivery_requests_name_the_field_and_create_nothing() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let (group_id, _) = group(&app, ada.account_id, &[("a", "Asia/Kolkata", "sms")]).await;
    let (eve_group, _) = group(&app, eve.account_id, &[("e", "Asia/Kolkata", "sms")]).await;
    let course_id = course(&app, &ada.access_token, json!([{"text": "t"}])).await;
    let long_course = course(
        &app,
        &ada.access_token,
        json!([{"text": "x".repeat(1_700)}]),
    )
    .await;
    let (start_at, _) = start_in_a_week();
    let cases = [
        (
            json!({"group_id": group_id, "course_id": course_id, "start_at": "2026-13-01 09:00:00"}),
            "start_at",
        ),
        (
            json!({"group_id": group_id, "course_id": course_id, "start_at": "tomorrow"}),
            "start_at",
        ),
        (
            json!({"group_id": group_id, "course_id": course_id, "start_at": start_at, "timezone": "EST"}),
            "timezone",
        ),
        (
            json!({"group_id": eve_group, "course_id": course_id, "start_at": start_at}),
            "group_id",
        ),
        (
            json!({"group_id": Uuid::new_v4(), "course_id": course_id, "start_at": start_at}),
            "group_id",
        ),
        (
            json!({"group_id": group_id, "course_id": "nope", "start_at": start_at}),
            "course_id",
        ),
        (
            json!({"group_id": group_id, "course_id": long_course, "start_at": start_at}),
            "course_id",
        ),
        (
            json!({"group_id": group_id, "course_id": course_id, "start_at": "2020-01-01 09:00:00"}),
            "start_at",
        ),
        (
            json!({"group_id": group_id, "course_id": course_id, "start_at": start_at, "when": "now"}),
            "when",
        ),
    ];
    for (body, field) in cases {
        let problem = assert_field_error(
            app.post("/api/v1/deliveries", &body, Some(&ada.access_token))
                .await,
            field,
        )
        .await;
        if body["course_id"] == json!(long_course) {
            assert!(
                problem["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("1600"),
                "{problem}"
            );
        }
    }
    assert_eq!(app.count("deliveries").await, 0);
    assert_eq!(app.count("delivery_messages").await, 0);
    assert_eq!(app.count("effects where kind = 'message'").await, 0);
}

#[tokio::test]
async fn catch_up_sends_past_days_now() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let (group_id, _) = group(&app, ada.account_id, &[("a", "Asia/Kolkata", "sms")]).await;
    let course_id = course(
        &app,
        &ada.access_token,
        json!([{"text": "one"}, {"text": "two"}, {"text": "three"}, {"text": "four"}]),
    )
    .await;
    let start = (Utc::now() - Duration::days(2))
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .date_naive()
        .and_hms_opt(0, 0, 1)
        .unwrap();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start.format("%Y-%m-%d %H:%M:%S").to_string(), "catch_up": true});
    let before = Utc::now();
    let delivery: Value = app
        .post("/api/v1/deliveries", &body, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    let rows = messages(
        &app,
        &ada.access_token,
        delivery["id"].as_str().unwrap(),
        "",
    )
    .await;
    let times: Vec<DateTime<Utc>> = rows
        .iter()
        .map(|m| m["send_at"].as_str().unwrap().parse().unwrap())
        .collect();
    // days 1–3 are past (00:00:01 local): due now, in order; day 4 at its time tomorrow
    // (which may be minutes away: compared with the instant, not with "an hour from now")
    assert!(
        times[0] >= before - Duration::seconds(1) && times[0] < before + Duration::seconds(5),
        "{times:?}"
    );
    assert!(times[0] < times[1] && times[1] < times[2]);
    let day_four = chrono_tz::Asia::Kolkata
        .from_local_datetime(&(start + Duration::days(3)))
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(times[3], day_four);
    assert!(times[3] > before);
}

#[tokio::test]
async fn pause_holds_resume_replans_and_stop_cancels_with_409_on_wrong_transitions() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let (group_id, _) = group(&app, ada.account_id, &[("a", "America/New_York", "sms")]).await;
    let course_id = course(&app, token, two_days()).await;
    let (start_at, _) = start_in_a_week();
    let delivery: Value = app
        .post(
            "/api/v1/deliveries",
            &json!({"group_id": group_id, "course_id": course_id, "start_at": start_at}),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = delivery["id"].as_str().unwrap();
    let path = |action: &str| format!("/api/v1/deliveries/{id}/{action}");

    assert_problem(
        send(&app, Method::POST, &path("resume"), token).await,
        StatusCode::CONFLICT,
        "invalid_delivery_state",
    )
    .await;
    let paused: Value = send(&app, Method::POST, &path("pause"), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["progress"]["held"], 3);
    assert!(paused["next_send_at"].is_null());
    assert_problem(
        send(&app, Method::POST, &path("pause"), token).await,
        StatusCode::CONFLICT,
        "invalid_delivery_state",
    )
    .await;

    let resumed: Value = send(&app, Method::POST, &path("resume"), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["status"], "scheduled");
    assert_eq!(resumed["progress"]["planned"], 3);
    // nothing was sent yet, so day 1 goes out at the next 09:00 New York time
    let next: DateTime<Utc> = resumed["next_send_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next.with_timezone(&chrono_tz::America::New_York)
            .format("%H:%M")
            .to_string(),
        "09:00"
    );
    assert!(next > Utc::now() && next <= Utc::now() + Duration::days(1));
    let rows = messages(&app, token, id, "").await;
    let day2: DateTime<Utc> = rows[2]["send_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((day2 - next).num_hours(), 24, "day 2 follows a day later");

    let stopped: Value = send(&app, Method::POST, &path("stop"), token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["progress"]["canceled"], 3);
    for action in ["pause", "resume", "stop"] {
        assert_problem(
            send(&app, Method::POST, &path(action), token).await,
            StatusCode::CONFLICT,
            "invalid_delivery_state",
        )
        .await;
    }
}

#[tokio::test]
async fn a_course_in_an_active_delivery_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let (group_id, _) = group(&app, ada.account_id, &[("a", "Asia/Kolkata", "sms")]).await;
    let course_id = course(&app, token, two_days()).await;
    let (start_at, _) = start_in_a_week();
    let delivery: Value = app
        .post(
            "/api/v1/deliveries",
            &json!({"group_id": group_id, "course_id": course_id, "start_at": start_at}),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let refused = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/courses/{course_id}"),
        token,
    )
    .await;
    assert_problem(refused, StatusCode::CONFLICT, "course_in_use").await;
    send(
        &app,
        Method::POST,
        &format!(
            "/api/v1/deliveries/{}/stop",
            delivery["id"].as_str().unwrap()
        ),
        token,
    )
    .await;
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &format!("/api/v1/courses/{course_id}"),
            token
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    let kept: Value = app
        .get(
            &format!("/api/v1/deliveries/{}", delivery["id"].as_str().unwrap()),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(kept["course_id"].is_null(), "the delivery's history stays");
}

#[tokio::test]
async fn another_accounts_delivery_is_404_and_an_idempotency_key_creates_one_delivery() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let (group_id, _) = group(&app, ada.account_id, &[("a", "Asia/Kolkata", "sms")]).await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    let (start_at, _) = start_in_a_week();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});
    let post = || {
        app.request(Method::POST, "/api/v1/deliveries")
            .bearer_auth(&ada.access_token)
            .header("Idempotency-Key", "d-1")
            .json(&body)
            .send()
    };
    let first: Value = post().await.unwrap().json().await.unwrap();
    let again = post().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    assert_eq!(app.count("deliveries").await, 1);

    let id = first["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/api/v1/deliveries/{id}")),
        (Method::GET, format!("/api/v1/deliveries/{id}/messages")),
        (Method::GET, format!("/api/v1/deliveries/{id}/answers")),
        (Method::POST, format!("/api/v1/deliveries/{id}/pause")),
        (Method::POST, format!("/api/v1/deliveries/{id}/stop")),
        (Method::GET, "/api/v1/deliveries/not-an-id".to_owned()),
    ] {
        assert_problem(
            send(&app, method, &path, &eve.access_token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let still: Value = app
        .get(&format!("/api/v1/deliveries/{id}"), Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "scheduled");
    let bad_filter = app
        .get(
            &format!("/api/v1/deliveries/{id}/messages?state=lost"),
            Some(&ada.access_token),
        )
        .await;
    assert_field_error(bad_filter, "state").await;
}

#[tokio::test]
async fn student_changes_apply_to_unsent_messages() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = &ada.access_token;
    let zones = [
        ("Mover", "America/New_York", "sms"),
        ("Leaver", "Asia/Kolkata", "sms"),
        ("Gone", "Europe/London", "sms"),
    ];
    let (group_id, students) = group(&app, ada.account_id, &zones).await;
    let course_id = course(&app, token, two_days()).await;
    let (start_at, local) = start_in_a_week();
    let delivery: Value = app
        .post(
            "/api/v1/deliveries",
            &json!({"group_id": group_id, "course_id": course_id, "start_at": start_at}),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = delivery["id"].as_str().unwrap();
    let update = |student: Uuid, name: &str, phone: &str, zone: &str, subscribed: bool| {
        app.request(Method::PUT, &format!("/api/v1/students/{student}"))
            .bearer_auth(token)
            .json(&json!({"name": name, "phone": phone, "channel": "sms", "timezone": zone, "subscribed": subscribed}))
            .send()
    };

    // a new zone: the same 09:00, now in Tokyo
    let moved = update(students[0], "Mover", "+14155550000", "Asia/Tokyo", true)
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let rows = messages(&app, token, id, &format!("&student_id={}", students[0])).await;
    let day1: DateTime<Utc> = rows[0]["send_at"].as_str().unwrap().parse().unwrap();
    let expected = chrono_tz::Asia::Tokyo
        .from_local_datetime(&local)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(day1, expected);

    // unsubscribed: every unsent message is skipped
    update(students[1], "Leaver", "+14155550001", "Asia/Kolkata", false)
        .await
        .unwrap();
    let rows = messages(&app, token, id, &format!("&student_id={}", students[1])).await;
    assert!(rows.iter().all(|m| m["state"] == "canceled"), "{rows:?}");

    // removed: skipped too, and the history stays
    let removed = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/students/{}", students[2]),
        token,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let progress: Value = app
        .get(&format!("/api/v1/deliveries/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        progress["progress"],
        json!({"planned": 3, "canceled": 6}),
        "{progress}"
    );
}

#[tokio::test]
async fn a_start_before_postgresql_s_range_is_a_422_on_start_at_even_with_catch_up() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let (group_id, _) = group(&app, ada.account_id, &[("a", "Asia/Kolkata", "sms")]).await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    for start_at in ["-9999-01-01 09:00:00", "-4713-11-23 23:59:59"] {
        let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at, "catch_up": true});
        for path in ["/api/v1/deliveries", "/api/v1/deliveries/preview"] {
            let response = app.post(path, &body, Some(&ada.access_token)).await;
            assert_field_error(response, "start_at").await;
        }
    }
    assert_eq!(app.count("deliveries").await, 0);
    assert_eq!(app.count("effects where kind = 'message'").await, 0);
}

/// Waits until some connection to the test's database waits for a row lock.
async fn until_a_query_waits_for_a_lock(app: &TestApp) {
    herald_testing::wait::wait_until(
        "a query waits for a lock",
        herald_testing::wait::PATIENCE,
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            waiting > 0
        },
    )
    .await;
}

/// A student deleted (by whatever deletes it) while a delivery to the group is being planned:
/// the plan waits for the delete and leaves the student out, instead of planning messages for
/// a student who is gone and failing on the foreign key.
#[tokio::test]
async fn a_student_deleted_while_a_delivery_is_planned_is_left_out_not_a_500() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let (group_id, students) = group(
        &app,
        ada.account_id,
        &[("a", "Asia/Kolkata", "sms"), ("b", "Europe/London", "sms")],
    )
    .await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    let (start_at, _) = start_in_a_week();

    let mut deleting = app.db.begin().await.unwrap();
    sqlx::query("delete from students where id = $1")
        .bind(students[0])
        .execute(&mut *deleting)
        .await
        .unwrap();
    let create = {
        let (address, token) = (app.address.clone(), ada.access_token.clone());
        let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{address}/api/v1/deliveries"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    until_a_query_waits_for_a_lock(&app).await;
    deleting.commit().await.unwrap();

    let created = create.await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let delivery: Value = created.json().await.unwrap();
    assert_eq!(delivery["message_count"], 3, "only b's 2 days + 1 question");
    let planned: Vec<Uuid> =
        sqlx::query_scalar("select student_id from outbound_messages where source = 'delivery'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(planned.iter().all(|id| *id == students[1]), "{planned:?}");
}

/// The instant of `local` (+ `days`) on `zone`'s clock.
fn instant(zone: &str, local: NaiveDateTime, days: i64) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    tz.from_local_datetime(&(local + Duration::days(days)))
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_preview_shows_at_most_limit_students_and_totals_over_everyone() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let zones = [
        ("Ko", "Asia/Kolkata", "sms"),
        ("Ny", "America/New_York", "sms"),
        ("Lo", "Europe/London", "whatsapp"),
        ("Ko2", "Asia/Kolkata", "whatsapp"),
        ("La", "America/Los_Angeles", "sms"),
    ];
    let (group_id, students) = group(&app, ada.account_id, &zones).await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    let (start_at, local) = start_in_a_week();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});

    let response = app
        .post(
            "/api/v1/deliveries/preview?limit=2",
            &body,
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let preview: Value = response.json().await.unwrap();
    let shown: Vec<&str> = preview["students"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["student_id"].as_str().unwrap())
        .collect();
    let oldest: Vec<String> = students[..2].iter().map(Uuid::to_string).collect();
    assert_eq!(shown, oldest, "the first two students, oldest first");
    assert_eq!(preview["student_count"], 5);
    assert_eq!(preview["message_count"], 15);
    // day 1 at 09:00 in Kolkata comes first; day 2 at 09:00 in Los Angeles last
    let at = |field: &str| {
        preview[field]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert_eq!(at("first_send_at"), instant("Asia/Kolkata", local, 0));
    assert_eq!(at("last_send_at"), instant("America/Los_Angeles", local, 1));

    let all: Value = app
        .post("/api/v1/deliveries/preview", &body, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["students"].as_array().unwrap().len(), 5, "default 100");
    for bad in ["0", "1001", "ten"] {
        let response = app
            .post(
                &format!("/api/v1/deliveries/preview?limit={bad}"),
                &body,
                Some(&ada.access_token),
            )
            .await;
        assert_field_error(response, "limit").await;
    }
    assert_eq!(app.count("deliveries").await, 0);
}

#[tokio::test]
async fn a_delivery_over_max_messages_per_delivery_is_a_422_on_group_id_with_the_count() {
    let app = TestApp::spawn_with(&[("limits.max_messages_per_delivery", json!(9))]).await;
    let ada = app.signup("ada@example.com").await;
    let zones = [
        ("a", "Asia/Kolkata", "sms"),
        ("b", "Europe/London", "sms"),
        ("c", "America/New_York", "sms"),
    ];
    let (group_id, _) = group(&app, ada.account_id, &zones).await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    let (start_at, _) = start_in_a_week();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});

    // 3 students × 3 messages: exactly at the limit
    let preview = app
        .post("/api/v1/deliveries/preview", &body, Some(&ada.access_token))
        .await;
    assert_eq!(preview.status(), StatusCode::OK);

    let fourth = fixtures::student("d", "+14155559999", "sms", "UTC");
    fixtures::join_group(&app.db, group_id, &[fourth]).await;
    for path in ["/api/v1/deliveries/preview", "/api/v1/deliveries"] {
        let response = app.post(path, &body, Some(&ada.access_token)).await;
        let problem = assert_field_error(response, "group_id").await;
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("12 messages") && message.contains("at most 9"),
            "{message}"
        );
    }
    assert_eq!(app.count("deliveries").await, 0);
    assert_eq!(app.count("effects where kind = 'message'").await, 0);
}

#[tokio::test]
async fn a_plan_is_written_a_page_of_students_at_a_time_and_nothing_is_lost_between_pages() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let zones = [
        ("a", "Asia/Kolkata", "sms"),
        ("b", "Europe/London", "whatsapp"),
        ("c", "America/New_York", "sms"),
        ("d", "Asia/Kolkata", "sms"),
        ("e", "UTC", "sms"),
    ];
    let (group_id, students) = group(&app, ada.account_id, &zones).await;
    // 250 days of a text and 9 questions: 2,500 messages a student, so the 5,000-message
    // pages hold two students and the group takes three
    let days: Vec<Value> = (1..=250)
        .map(|day| {
            let questions: Vec<Value> = (1..=9)
                .map(|q| json!({"question": format!("d{day}q{q}?"), "type": "open"}))
                .collect();
            json!({"text": format!("day {day}"), "questions": questions})
        })
        .collect();
    let course_id = course(&app, &ada.access_token, json!(days)).await;
    let (start_at, _) = start_in_a_week();
    let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});
    let created = app
        .post("/api/v1/deliveries", &body, Some(&ada.access_token))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let delivery: Value = created.json().await.unwrap();
    assert_eq!(delivery["message_count"], 12_500);
    let per_student: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "select o.student_id, count(*), count(distinct (m.day, m.seq)) from delivery_messages m
         join outbound_messages o on o.effect_id = m.effect_id
         group by o.student_id order by o.student_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut expected: Vec<(Uuid, i64, i64)> =
        students.iter().map(|id| (*id, 2_500, 2_500)).collect();
    expected.sort();
    assert_eq!(per_student, expected);
}

#[tokio::test]
async fn the_listing_shows_each_deliverys_own_progress_as_its_get_does() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let course_id = course(&app, &ada.access_token, two_days()).await;
    let (start_at, _) = start_in_a_week();
    let mut ids = Vec::new();
    // one, two and three students: different counts per delivery
    for size in 1..=3 {
        let students: Vec<(&str, &str, &str)> = (0..size).map(|_| ("s", "UTC", "sms")).collect();
        let (group_id, _) = group(&app, ada.account_id, &students).await;
        let body = json!({"group_id": group_id, "course_id": course_id, "start_at": start_at});
        let created: Value = app
            .post("/api/v1/deliveries", &body, Some(&ada.access_token))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // the second one's messages are all canceled: its progress differs in kind too
    sqlx::query(
        "update effects set state = 'canceled', finished_at = now() where id in (
             select effect_id from delivery_messages where delivery_id = $1)",
    )
    .bind(Uuid::parse_str(&ids[1]).unwrap())
    .execute(&app.db)
    .await
    .unwrap();

    let page: Value = app
        .get("/api/v1/deliveries?limit=2", Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    let mut listed: Vec<Value> = page["items"].as_array().unwrap().clone();
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(
            &format!("/api/v1/deliveries?limit=2&cursor={cursor}"),
            Some(&ada.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    listed.extend(rest["items"].as_array().unwrap().iter().cloned());
    assert_eq!(listed.len(), 3);
    for item in &listed {
        let id = item["id"].as_str().unwrap();
        let one: Value = app
            .get(&format!("/api/v1/deliveries/{id}"), Some(&ada.access_token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(item, &one, "the listing and the GET of {id} differ");
    }
    let by_id = |id: &str| listed.iter().find(|item| item["id"] == id).unwrap().clone();
    for (index, id) in ids.iter().enumerate() {
        let item = by_id(id);
        // two days, the first with a question: three messages per student
        let expected = 3 * (index as i64 + 1);
        assert_eq!(item["message_count"], expected, "{item}");
    }
    assert_eq!(by_id(&ids[1])["progress"], json!({"canceled": 6}));
    assert_eq!(by_id(&ids[1])["next_send_at"], Value::Null);
    assert!(by_id(&ids[2])["next_send_at"].is_string());
}
