//! Schedules (recurring group messages): planning with a controlled clock across real DST
//! transitions, catch-up and missed fires, re-planning after pause/update without a second
//! message, and sending through a wiremock Twilio on every replica's planner.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_shared::db::schedules::{self as db, ScheduleFields, ScheduleRow};
use herald_shared::schedules::{PlanSettings, plan, refill};
use herald_testing::fixtures;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Mail, PATIENCE, TestWorker, wait_until};

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Planning settings with a long horizon, so a test plans days at once.
fn settings(test: &TestWorker, horizon_hours: u64, catch_up_secs: u64) -> PlanSettings {
    PlanSettings {
        horizon: Duration::from_secs(horizon_hours * 3600),
        catch_up: Duration::from_secs(catch_up_secs),
        max_fires_per_zone: 1_000,
        max_messages: 100_000,
        queue: test
            .jobs
            .get(herald_shared::effects::EffectKind::Message)
            .queue
            .clone(),
    }
}

/// A group with one SMS student per zone; returns the group and the students by zone.
async fn group(test: &TestWorker, zones: &[&str]) -> (Uuid, Vec<Uuid>) {
    let students: Vec<_> = zones
        .iter()
        .enumerate()
        .map(|(index, zone)| {
            fixtures::student(
                "student",
                &format!("+1415555{:04}", 100 + index),
                "sms",
                zone,
            )
        })
        .collect();
    fixtures::create_group(test.db(), test.account_id, &students).await
}

/// A schedule on `group_id` whose planning starts at `from`.
async fn schedule(
    test: &TestWorker,
    group_id: Uuid,
    cron: &str,
    timezone: Option<&str>,
    from: DateTime<Utc>,
) -> ScheduleRow {
    let mut conn = test.db().acquire().await.unwrap();
    let fields = ScheduleFields {
        name: "reminder",
        cron,
        timezone,
        group_id,
        text: "Class at 9",
    };
    let row = db::insert(&mut conn, test.account_id, &fields)
        .await
        .unwrap();
    sqlx::query("update schedules set active_from = $2, planned_until = $2 where id = $1")
        .bind(row.id)
        .bind(from)
        .execute(&mut *conn)
        .await
        .unwrap();
    reload(test, row.id).await
}

async fn reload(test: &TestWorker, id: Uuid) -> ScheduleRow {
    db::get(test.db(), test.account_id, id)
        .await
        .unwrap()
        .unwrap()
}

async fn plan_at(test: &TestWorker, id: Uuid, now: &str, settings: &PlanSettings) -> u64 {
    let row = reload(test, id).await;
    let mut tx = test.db().begin().await.unwrap();
    let planned = plan(&mut tx, &row, utc(now), settings).await.unwrap();
    tx.commit().await.unwrap();
    planned.messages
}

/// Plans the schedule's fires within a second of `now` and moves its plan's end a day out,
/// so a replica's planner leaves it alone: one fire is all these tests need. Returns the
/// settings used.
async fn plan_the_next_second_only(
    test: &TestWorker,
    row: &ScheduleRow,
    now: DateTime<Utc>,
) -> PlanSettings {
    let mut settings = settings(test, 0, 300);
    settings.horizon = Duration::from_secs(1);
    let mut tx = test.db().begin().await.expect("a transaction");
    plan(&mut tx, row, now, &settings).await.expect("the plan");
    sqlx::query("update schedules set planned_until = $2 where id = $1")
        .bind(row.id)
        .bind(now + chrono::Duration::days(1))
        .execute(&mut *tx)
        .await
        .expect("the plan's end moved");
    tx.commit().await.expect("the plan committed");
    settings
}

type FireRow = (String, DateTime<Utc>, String, String, i32);

/// (student, due instant, effect state, sending_at) of a message.
type StartedRow = (Uuid, DateTime<Utc>, String, Option<DateTime<Utc>>);

/// (zone, instant, local time, state, recipients) of every fire, in time order.
async fn fires(test: &TestWorker, schedule_id: Uuid) -> Vec<FireRow> {
    sqlx::query_as(
        "select timezone, fire_at, to_char(local_time, 'YYYY-MM-DD HH24:MI'), state, recipients
         from schedule_fires where schedule_id = $1 order by fire_at, timezone",
    )
    .bind(schedule_id)
    .fetch_all(test.db())
    .await
    .unwrap()
}

/// (student, due instant, effect state) of every message, in time order.
async fn messages(test: &TestWorker, schedule_id: Uuid) -> Vec<(Uuid, DateTime<Utc>, String)> {
    sqlx::query_as(
        "select o.student_id, e.due_at, e.state from schedule_messages m
         join outbound_messages o on o.effect_id = m.effect_id
         join effects e on e.id = m.effect_id where m.schedule_id = $1
         order by e.due_at, o.student_id",
    )
    .bind(schedule_id)
    .fetch_all(test.db())
    .await
    .unwrap()
}

async fn no_replicas() -> TestWorker {
    TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await
}

#[tokio::test]
async fn recipient_zones_fire_at_their_own_wall_clock_across_the_spring_forward_night() {
    let test = no_replicas().await;
    let zones = ["America/New_York", "Europe/London", "Asia/Kolkata"];
    let (group_id, students) = group(&test, &zones).await;
    // New York springs forward on 2026-03-08 at 02:00: 02:30 does not exist that night
    let row = schedule(
        &test,
        group_id,
        "30 2 * * *",
        None,
        utc("2026-03-07T00:00:00Z"),
    )
    .await;

    let written = plan_at(
        &test,
        row.id,
        "2026-03-07T00:00:00Z",
        &settings(&test, 72, 300),
    )
    .await;

    let planned = fires(&test, row.id).await;
    let new_york: Vec<(DateTime<Utc>, &str)> = planned
        .iter()
        .filter(|f| f.0 == "America/New_York")
        .map(|f| (f.1, f.2.as_str()))
        .collect();
    assert_eq!(
        new_york,
        [
            (utc("2026-03-07T07:30:00Z"), "2026-03-07 02:30"),
            // the gap time is shifted forward by the gap: 03:30 EDT
            (utc("2026-03-08T07:30:00Z"), "2026-03-08 03:30"),
            (utc("2026-03-09T06:30:00Z"), "2026-03-09 02:30"),
        ]
    );
    let kolkata: Vec<DateTime<Utc>> = planned
        .iter()
        .filter(|f| f.0 == "Asia/Kolkata")
        .map(|f| f.1)
        .collect();
    assert_eq!(
        kolkata,
        [
            utc("2026-03-07T21:00:00Z"),
            utc("2026-03-08T21:00:00Z"),
            utc("2026-03-09T21:00:00Z")
        ]
    );
    // each student only in their own zone's fires: 3 zones × 3 days
    assert_eq!(written, 9);
    let sent = messages(&test, row.id).await;
    for (student, due, state) in &sent {
        assert_eq!(state, "planned");
        let zone = zones[students.iter().position(|s| s == student).unwrap()];
        assert!(planned.iter().any(|f| f.0 == zone && f.1 == *due));
    }
    // planning again changes nothing
    assert_eq!(
        plan_at(
            &test,
            row.id,
            "2026-03-07T00:00:10Z",
            &settings(&test, 72, 300)
        )
        .await,
        0
    );
    assert_eq!(messages(&test, row.id).await.len(), 9);
    test.finish().await;
}

#[tokio::test]
async fn a_fixed_time_schedule_fires_once_in_the_repeated_hour_and_a_wildcard_one_twice() {
    let test = no_replicas().await;
    let (group_id, _) = group(&test, &["Europe/London"]).await;
    // London falls back on 2026-10-25: 01:00–01:59 happens twice
    let fixed = schedule(
        &test,
        group_id,
        "30 1 * * *",
        Some("Europe/London"),
        utc("2026-10-24T12:00:00Z"),
    )
    .await;
    let wildcard = schedule(
        &test,
        group_id,
        "30 * * * *",
        Some("Europe/London"),
        utc("2026-10-24T23:00:00Z"),
    )
    .await;
    let settings = settings(&test, 30, 300);

    plan_at(&test, fixed.id, "2026-10-24T12:00:00Z", &settings).await;
    plan_at(&test, wildcard.id, "2026-10-24T23:00:00Z", &settings).await;

    let fixed_fires: Vec<DateTime<Utc>> =
        fires(&test, fixed.id).await.iter().map(|f| f.1).collect();
    // once, at the earlier 01:30 (BST, 00:30Z)
    assert_eq!(fixed_fires, [utc("2026-10-25T00:30:00Z")]);
    let repeated: Vec<(DateTime<Utc>, String)> = fires(&test, wildcard.id)
        .await
        .into_iter()
        .filter(|f| f.2 == "2026-10-25 01:30")
        .map(|f| (f.1, f.2))
        .collect();
    assert_eq!(
        repeated.iter().map(|f| f.0).collect::<Vec<_>>(),
        [utc("2026-10-25T00:30:00Z"), utc("2026-10-25T01:30:00Z")]
    );
    test.finish().await;
}

#[tokio::test]
async fn after_downtime_recent_fires_still_send_and_older_ones_are_recorded_missed() {
    let test = no_replicas().await;
    let (group_id, _) = group(&test, &["UTC"]).await;
    let row = schedule(
        &test,
        group_id,
        "*/5 * * * *",
        None,
        utc("2026-06-01T10:00:00Z"),
    )
    .await;

    // every worker was down from 10:00 to 10:32; catch-up is 10 minutes
    plan_at(
        &test,
        row.id,
        "2026-06-01T10:32:00Z",
        &settings(&test, 0, 600),
    )
    .await;

    let states: Vec<(String, String, i32)> = fires(&test, row.id)
        .await
        .into_iter()
        .map(|f| (f.1.format("%H:%M").to_string(), f.3, f.4))
        .collect();
    let expected = [
        ("10:05", "missed", 0),
        ("10:10", "missed", 0),
        ("10:15", "missed", 0),
        ("10:20", "missed", 0),
        ("10:25", "planned", 1),
        ("10:30", "planned", 1),
    ]
    .map(|(at, state, n)| (at.to_owned(), state.to_owned(), n));
    assert_eq!(states, expected);
    assert_eq!(messages(&test, row.id).await.len(), 2);
    test.finish().await;
}

#[tokio::test]
async fn pausing_and_resuming_revives_a_canceled_fire_without_a_second_message() {
    let test = no_replicas().await;
    let (group_id, students) = group(&test, &["Europe/London", "Europe/London"]).await;
    let row = schedule(
        &test,
        group_id,
        "0 9 * * *",
        None,
        utc("2026-06-01T00:00:00Z"),
    )
    .await;
    let settings = settings(&test, 48, 300);
    plan_at(&test, row.id, "2026-06-01T00:00:00Z", &settings).await;
    let before = messages(&test, row.id).await;
    assert_eq!(before.len(), 4);
    let effect_ids = || async {
        sqlx::query_scalar::<_, Uuid>(
            "select effect_id from schedule_messages where schedule_id = $1 order by effect_id",
        )
        .bind(row.id)
        .fetch_all(test.db())
        .await
        .unwrap()
    };
    let ids_before = effect_ids().await;

    // paused at 05:00 on June 1st, resumed at 06:00: both days' fires are after the resume
    let mut tx = test.db().begin().await.unwrap();
    let canceled = db::cancel_fires_after(&mut tx, row.id, utc("2026-06-01T05:00:00Z"))
        .await
        .unwrap();
    db::set_active(&mut tx, row.id, false, utc("2026-06-01T05:00:00Z"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(canceled, 4);
    assert!(
        messages(&test, row.id)
            .await
            .iter()
            .all(|m| m.2 == "canceled")
    );
    let mut tx = test.db().begin().await.unwrap();
    db::set_active(&mut tx, row.id, true, utc("2026-06-01T06:00:00Z"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    plan_at(&test, row.id, "2026-06-01T06:00:00Z", &settings).await;

    let after = messages(&test, row.id).await;
    assert_eq!(after.len(), 4, "the same rows again, not new ones");
    assert!(after.iter().all(|m| m.2 == "planned"));
    assert_eq!(effect_ids().await, ids_before);
    assert_eq!(
        after.iter().map(|m| m.0).collect::<BTreeSet<_>>(),
        students.iter().copied().collect()
    );
    assert!(fires(&test, row.id).await.iter().all(|f| f.3 == "planned"));
    test.finish().await;
}

#[tokio::test]
async fn a_message_already_handed_to_a_worker_is_not_planned_again_by_an_update() {
    let test = no_replicas().await;
    let (group_id, _) = group(&test, &["UTC"]).await;
    let row = schedule(
        &test,
        group_id,
        "0 9 * * *",
        None,
        utc("2026-06-01T00:00:00Z"),
    )
    .await;
    let settings = settings(&test, 24, 300);
    plan_at(&test, row.id, "2026-06-01T00:00:00Z", &settings).await;
    // a worker started sending the 09:00 message just before the update's cancel ran
    sqlx::query("update effects set state = 'sending' where id in (select effect_id from schedule_messages where schedule_id = $1)")
        .bind(row.id)
        .execute(test.db())
        .await
        .unwrap();
    let mut tx = test.db().begin().await.unwrap();
    let canceled = db::cancel_fires_after(&mut tx, row.id, utc("2026-06-01T08:59:59Z"))
        .await
        .unwrap();
    let fields = ScheduleFields {
        name: "reminder",
        cron: "0 9 * * *",
        timezone: None,
        group_id,
        text: "Class at 9 (room 2)",
    };
    db::update(&mut tx, row.id, &fields, utc("2026-06-01T08:59:59Z"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // the message being sent was not canceled (the handler read the schedule before)
    assert_eq!(canceled, 0);

    plan_at(&test, row.id, "2026-06-01T08:59:59Z", &settings).await;

    let rows = messages(&test, row.id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2, "sending");
    test.finish().await;
}

#[tokio::test]
async fn a_per_second_schedule_is_planned_over_several_passes() {
    let test = no_replicas().await;
    let (group_id, _) = group(&test, &["UTC"]).await;
    let row = schedule(
        &test,
        group_id,
        "* * * * * *",
        None,
        utc("2026-06-01T00:00:00Z"),
    )
    .await;
    let mut settings = settings(&test, 0, 300);
    settings.horizon = Duration::from_secs(100);
    settings.max_fires_per_zone = 30;

    let mut passes = 0;
    while reload(&test, row.id).await.planned_until < utc("2026-06-01T00:01:40Z") {
        plan_at(&test, row.id, "2026-06-01T00:00:00Z", &settings).await;
        passes += 1;
        assert!(passes < 10);
    }

    assert_eq!(passes, 4);
    let instants: Vec<DateTime<Utc>> = fires(&test, row.id).await.iter().map(|f| f.1).collect();
    assert_eq!(instants.len(), 100);
    assert!(
        instants
            .windows(2)
            .all(|w| (w[1] - w[0]).num_seconds() == 1)
    );
    test.finish().await;
}

#[tokio::test]
async fn a_per_second_schedule_back_from_an_hours_downtime_records_the_missed_fires_in_one_pass() {
    let test = no_replicas().await;
    let (group_id, _) = group(&test, &["UTC"]).await;
    let row = schedule(
        &test,
        group_id,
        "* * * * * *",
        None,
        utc("2026-06-01T10:00:00Z"),
    )
    .await;
    let mut settings = settings(&test, 0, 300);
    settings.horizon = Duration::from_secs(60);
    settings.max_fires_per_zone = 120;
    settings.max_messages = 10_000;

    // every worker was down from 10:00 to 11:00: 10:00:01–10:54:59 are past the 5-minute catch-up
    let written = plan_at(&test, row.id, "2026-06-01T11:00:00Z", &settings).await;

    let rows = fires(&test, row.id).await;
    let missed = rows.iter().filter(|f| f.3 == "missed").count();
    let planned: Vec<&FireRow> = rows.iter().filter(|f| f.3 == "planned").collect();
    assert_eq!(missed, 3_299);
    // the fires still owed, from the first within catch-up on, are planned in the same pass
    assert_eq!(planned.len(), 120);
    assert_eq!(planned[0].1, utc("2026-06-01T10:55:00Z"));
    assert_eq!(written, 120);
    assert!(
        rows.windows(2)
            .all(|w| (w[1].1 - w[0].1).num_seconds() == 1)
    );
    test.finish().await;
}

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

fn twilio(server: &MockServer) -> Vec<(&'static str, Value)> {
    vec![
        ("twilio.base_url", Value::from(server.uri())),
        ("twilio.account_sid", Value::from(ACCOUNT_SID)),
        ("twilio.auth_token", Value::from("test-auth-token")),
        ("twilio.sms_from", Value::from("+15005550006")),
        (
            "twilio.public_base_url",
            Value::from("https://herald.example.com"),
        ),
        ("twilio.sms_per_second", Value::from(100)),
        // the planner looks every 50 ms, so a schedule made mid-test is planned at once
        ("schedules.plan_interval_ms", Value::from(50)),
        ("schedules.horizon_secs", Value::from(10)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_send_each_fire_to_each_student_once_on_time_and_skip_who_left() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SM00000000000000000000000000000009"})),
        )
        .mount(&server)
        .await;
    let test =
        TestWorker::spawn_with(Mail::Sandbox, &twilio(&server), |jobs| jobs, &["a", "b"]).await;
    let (group_id, students) = group(&test, &["America/New_York", "Asia/Kolkata", "UTC"]).await;
    // the third student unsubscribes after planning: skipped at send time
    let row = schedule(&test, group_id, "* * * * * *", None, Utc::now()).await;
    wait_until("the first fires are planned", PATIENCE, || async {
        messages(&test, row.id).await.len() >= 9
    })
    .await;
    sqlx::query("update students set subscribed = false where id = $1")
        .bind(students[2])
        .execute(test.db())
        .await
        .unwrap();
    let first_fire = messages(&test, row.id).await[0].1;
    let last = first_fire + chrono::Duration::seconds(4);

    wait_until("five fires finished", PATIENCE, || async {
        Utc::now() > last + chrono::Duration::seconds(1)
            && messages(&test, row.id)
                .await
                .iter()
                .filter(|m| m.1 <= last)
                .all(|m| m.2 == "sent" || m.2 == "canceled")
    })
    .await;

    let rows: Vec<StartedRow> = sqlx::query_as(
        "select o.student_id, e.due_at, e.state, e.sending_at from schedule_messages m
         join outbound_messages o on o.effect_id = m.effect_id
         join effects e on e.id = m.effect_id
         where m.schedule_id = $1 and e.due_at <= $2 order by e.due_at",
    )
    .bind(row.id)
    .bind(last)
    .fetch_all(test.db())
    .await
    .unwrap();
    let instants: BTreeSet<DateTime<Utc>> = rows.iter().map(|r| r.1).collect();
    assert_eq!(instants.len(), 5);
    for instant in &instants {
        for student in &students[..2] {
            let sent: Vec<_> = rows
                .iter()
                .filter(|r| r.0 == *student && r.1 == *instant)
                .collect();
            assert_eq!(sent.len(), 1, "{student} at {instant}: {sent:?}");
            assert_eq!(sent[0].2, "sent");
            let late = (sent[0].3.unwrap() - *instant).num_milliseconds();
            assert!(
                (0..1_000).contains(&late),
                "started {late} ms after its fire"
            );
        }
    }
    assert!(
        rows.iter()
            .filter(|r| r.0 == students[2])
            .all(|r| r.2 == "canceled")
    );

    // stop the schedule, let what is in flight finish: Twilio saw exactly one request per
    // message recorded as sent, whichever replica planned or sent it
    let mut tx = test.db().begin().await.unwrap();
    db::cancel_fires_after(&mut tx, row.id, DateTime::<Utc>::MIN_UTC)
        .await
        .unwrap();
    db::set_active(&mut tx, row.id, false, Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    wait_until("nothing in flight", PATIENCE, || async {
        messages(&test, row.id)
            .await
            .iter()
            .all(|m| m.2 == "sent" || m.2 == "canceled")
    })
    .await;
    let sent = messages(&test, row.id)
        .await
        .iter()
        .filter(|m| m.2 == "sent")
        .count();
    // once across replicas; which replica sends a fire's few messages is Redis's choice
    // (one may take them all), the e-mail lifecycle and throttle tests show the work shared
    assert_eq!(server.received_requests().await.unwrap().len(), sent);
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_student_who_moved_zone_is_skipped_by_the_old_zones_fire_and_callbacks_reach_the_message()
{
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SM0000000000000000000000000000000a"})),
        )
        .mount(&server)
        .await;
    let test = TestWorker::spawn_with(Mail::Sandbox, &twilio(&server), |jobs| jobs, &[]).await;
    let (group_id, students) = group(&test, &["Europe/London", "Europe/Paris"]).await;
    let now = Utc::now();
    let due = now + chrono::Duration::seconds(1);
    // every second of the current hour on London's and on Paris's clock, not on Tokyo's
    let hours = [chrono_tz::Europe::London, chrono_tz::Europe::Paris]
        .map(|zone| due.with_timezone(&zone).format("%-H").to_string());
    let cron = format!("* * {} * * *", hours.join(","));
    let row = schedule(&test, group_id, &cron, None, now).await;
    plan_the_next_second_only(&test, &row, now).await;
    // the London student moves to Tokyo after the fire was planned
    sqlx::query("update students set timezone = 'Asia/Tokyo' where id = $1")
        .bind(students[0])
        .execute(test.db())
        .await
        .unwrap();
    let mut test = test;
    test.start_replica("a").await;

    wait_until("both messages finished", PATIENCE, || async {
        let rows = messages(&test, row.id).await;
        rows.len() == 2 && rows.iter().all(|m| m.2 == "sent" || m.2 == "canceled")
    })
    .await;
    let rows = messages(&test, row.id).await;
    let state_of = |student: Uuid| rows.iter().find(|m| m.0 == student).unwrap().2.clone();
    assert!(rows.iter().all(|m| m.1 <= due));
    assert_eq!(state_of(students[0]), "canceled");
    assert_eq!(state_of(students[1]), "sent");
    let reason: Option<String> = sqlx::query_scalar(
        "select e.last_error from outbound_messages m join effects e on e.id = m.effect_id
         where m.student_id = $1",
    )
    .bind(students[0])
    .fetch_one(test.db())
    .await
    .unwrap();
    assert!(reason.unwrap().contains("moved to another time zone"));

    // Twilio's status callback lands on the schedule message
    let mut conn = test.db().acquire().await.unwrap();
    let effect_id: Uuid =
        sqlx::query_scalar("select effect_id from outbound_messages where student_id = $1")
            .bind(students[1])
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let report = herald_shared::db::outbound_messages::ProviderStatus {
        provider_id: "SM0000000000000000000000000000000a",
        status: "delivered",
        error_code: None,
        error_message: None,
        sent_from: None,
        recipient: None,
    };
    let changed =
        herald_shared::db::outbound_messages::record_provider_status(&mut conn, effect_id, &report)
            .await
            .unwrap();
    assert!(changed);
    let status: Option<String> =
        sqlx::query_scalar("select provider_status from outbound_messages where student_id = $1")
            .bind(students[1])
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(status.as_deref(), Some("delivered"));
    drop(conn);
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_student_who_moved_to_a_zone_on_the_same_clock_still_gets_the_planned_fire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SM0000000000000000000000000000000b"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut test = TestWorker::spawn_with(Mail::Sandbox, &twilio(&server), |jobs| jobs, &[]).await;
    let (group_id, students) = group(&test, &["Europe/London"]).await;
    let now = Utc::now();
    let row = schedule(&test, group_id, "* * * * * *", None, now).await;
    let settings = plan_the_next_second_only(&test, &row, now).await;
    // Lisbon keeps London's clock all year: the schedule fires there at the same instant,
    // and that fire's message for this student is the one already planned. The move is made
    // as the API makes it: the student's row, then the group's planned fires refilled.
    let mut tx = test.db().begin().await.unwrap();
    sqlx::query("update students set timezone = 'Europe/Lisbon' where id = $1")
        .bind(students[0])
        .execute(&mut *tx)
        .await
        .unwrap();
    // (the refill covers the one planned instant; the plan's end was pushed out above only
    // to keep the replica's planner away)
    let mut planned = reload(&test, row.id).await;
    planned.planned_until = now + chrono::Duration::seconds(1);
    refill(&mut tx, &planned, now, &settings).await.unwrap();
    tx.commit().await.unwrap();
    let zones: BTreeSet<String> = fires(&test, row.id)
        .await
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(
        zones,
        BTreeSet::from(["Europe/Lisbon".to_owned(), "Europe/London".to_owned()])
    );
    test.start_replica("a").await;

    wait_until("the message finished", PATIENCE, || async {
        let rows = messages(&test, row.id).await;
        !rows.is_empty()
            && rows
                .iter()
                .all(|m| matches!(m.2.as_str(), "sent" | "canceled"))
    })
    .await;
    // one message for the instant, sent (the mock expects exactly one Twilio request)
    let rows = messages(&test, row.id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2, "sent");
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_text_longer_than_sms_carries_fails_visibly_without_calling_twilio() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SMx"})))
        .expect(0)
        .mount(&server)
        .await;
    let mut test = TestWorker::spawn_with(Mail::Sandbox, &twilio(&server), |jobs| jobs, &[]).await;
    // written for a WhatsApp group (4,096 allowed); the student has moved to SMS since
    let (group_id, _) = group(&test, &["Europe/London"]).await;
    let now = Utc::now();
    let row = schedule(&test, group_id, "* * * * * *", None, now).await;
    sqlx::query("update schedules set text = repeat('x', 1601) where id = $1")
        .bind(row.id)
        .execute(test.db())
        .await
        .unwrap();
    let row = reload(&test, row.id).await;
    plan_the_next_second_only(&test, &row, now).await;
    test.start_replica("a").await;

    wait_until("the message finished", PATIENCE, || async {
        let rows = messages(&test, row.id).await;
        rows.len() == 1 && rows[0].2 == "failed"
    })
    .await;
    let (last_error, error_message): (Option<String>, Option<String>) = sqlx::query_as(
        "select e.last_error, o.error_message from schedule_messages m
         join outbound_messages o on o.effect_id = m.effect_id
         join effects e on e.id = m.effect_id where m.schedule_id = $1",
    )
    .bind(row.id)
    .fetch_one(test.db())
    .await
    .unwrap();
    assert!(last_error.unwrap().contains("1601 characters"));
    assert!(error_message.unwrap().contains("sms carries 1600"));
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_planned_before_every_worker_went_down_are_sent_within_catch_up_and_missed_after()
{
    let mut test = TestWorker::spawn_with(Mail::Sandbox, &[], |jobs| jobs, &[]).await;
    let (group_id, _) = group(&test, &["UTC"]).await;
    let now = Utc::now();
    let row = schedule(
        &test,
        group_id,
        "* * * * *",
        None,
        now - chrono::Duration::minutes(12),
    )
    .await;
    // planned 11 minutes ago, 13 minutes ahead; then no worker ran until now
    let mut settings = settings(&test, 0, 300);
    settings.horizon = Duration::from_secs(13 * 60);
    let mut tx = test.db().begin().await.unwrap();
    plan(
        &mut tx,
        &row,
        now - chrono::Duration::minutes(11),
        &settings,
    )
    .await
    .unwrap();
    sqlx::query("update schedules set planned_until = $2 where id = $1")
        .bind(row.id)
        .bind(now + chrono::Duration::days(1))
        .execute(&mut *tx)
        .await
        .unwrap();
    // the oldest three had been handed to Redis when everything went down (and Redis lost
    // them): the sweep dispatches them again, still as late as they are
    let lost = sqlx::query(
        "update effects set state = 'queued', queued_at = due_at, dispatches = 1
         where id in (select effect_id from schedule_messages m join effects e on e.id = m.effect_id
                      where m.schedule_id = $1 order by e.due_at limit 3)",
    )
    .bind(row.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(lost.rows_affected(), 3);
    tx.commit().await.unwrap();
    test.start_replica("a").await;

    let catch_up = now - chrono::Duration::seconds(300);
    wait_until("every due message finished", PATIENCE, || async {
        messages(&test, row.id)
            .await
            .iter()
            .filter(|m| m.1 <= now)
            .all(|m| m.2 == "sandboxed" || m.2 == "canceled")
    })
    .await;
    let rows = messages(&test, row.id).await;
    let due: Vec<_> = rows.iter().filter(|m| m.1 <= now).collect();
    assert_eq!(due.len(), 12);
    for (_, at, state) in &due {
        // a second of slack on each side of the boundary for the time the test took
        if *at < catch_up - chrono::Duration::seconds(1) {
            assert_eq!(state, "canceled", "{at}");
        } else if *at > catch_up + chrono::Duration::seconds(5) {
            assert_eq!(state, "sandboxed", "{at}");
        }
    }
    let missed: Vec<DateTime<Utc>> = fires(&test, row.id)
        .await
        .into_iter()
        .filter(|f| f.3 == "missed")
        .map(|f| f.1)
        .collect();
    assert!(missed.len() >= 5, "{missed:?}");
    assert!(
        missed
            .iter()
            .all(|at| *at < catch_up + chrono::Duration::seconds(5))
    );
    // a fire more than a minute ahead is untouched, whenever a minute began during the test
    assert!(
        rows.iter()
            .any(|m| m.1 > now + chrono::Duration::minutes(1) && m.2 == "planned")
    );
    test.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_waiting_for_their_rate_limit_slot_are_not_sent_once_the_schedule_is_paused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SM0000000000000000000000000000000b"})),
        )
        .mount(&server)
        .await;
    // four students a second through a sender allowed one a second: jobs queue for slots
    let mut settings = twilio(&server);
    settings.push(("twilio.sms_per_second", Value::from(1)));
    let test = TestWorker::spawn_with(Mail::Sandbox, &settings, |jobs| jobs, &["a"]).await;
    let (group_id, _) = group(&test, &["UTC", "UTC", "UTC", "UTC"]).await;
    let row = schedule(&test, group_id, "* * * * * *", None, Utc::now()).await;
    // rows wait for their slots: pushed with a slot up to a second ahead, or still in
    // PostgreSQL when their turn is further away
    wait_until("messages wait for slots", PATIENCE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from schedule_messages m join effects e on e.id = m.effect_id
             where m.schedule_id = $1 and e.state in ('planned', 'queued', 'sending')",
        )
        .bind(row.id)
        .fetch_one(test.db())
        .await
        .unwrap();
        server.received_requests().await.unwrap().len() >= 2 && waiting >= 3
    })
    .await;

    // the pause as the API makes it
    let mut tx = test.db().begin().await.unwrap();
    db::cancel_fires_after(&mut tx, row.id, Utc::now())
        .await
        .unwrap();
    db::cancel_unsent_messages(&mut tx, row.id, DateTime::<Utc>::MIN_UTC)
        .await
        .unwrap();
    db::set_active(&mut tx, row.id, false, Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    wait_until("nothing in flight", Duration::from_secs(60), || async {
        messages(&test, row.id)
            .await
            .iter()
            .all(|m| m.2 == "sent" || m.2 == "canceled")
    })
    .await;

    let (sent, canceled): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where e.state = 'sent'),
                count(*) filter (where e.state = 'canceled')
         from schedule_messages m join effects e on e.id = m.effect_id where m.schedule_id = $1",
    )
    .bind(row.id)
    .fetch_one(test.db())
    .await
    .unwrap();
    assert!(
        canceled >= 3,
        "messages waiting for their slot were canceled"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        usize::try_from(sent).unwrap()
    );
    test.finish().await;
}
