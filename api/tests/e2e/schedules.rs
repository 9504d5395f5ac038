use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_testing::fixtures;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::stack::{Stack, wait_until};

/// (due instant, state, sending_at) of every schedule message, in time order.
async fn messages(stack: &Stack) -> Vec<(DateTime<Utc>, String, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "select e.due_at, e.state, e.sending_at from schedule_messages m
         join effects e on e.id = m.effect_id order by e.due_at",
    )
    .fetch_all(&stack.db)
    .await
    .expect("schedule messages")
}

#[tokio::test]
async fn a_schedule_made_through_the_api_sends_each_fire_once_with_two_replicas_and_not_while_paused()
 {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/2010-04-01/Accounts/AC0+/Messages\.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"sid": "SM22222222222222222222222222222222", "status": "queued"}),
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
    let students = fixtures::one_per_zone(&["Europe/London", "Asia/Kolkata"], "sms");
    let (group, _) = fixtures::create_group(&stack.db, account, &students).await;

    // every second, on each student's own clock
    let created = client
        .post(format!("{api}/api/v1/schedules"))
        .bearer_auth(&token)
        .json(
            &json!({"name": "tick", "cron": "* * * * * *", "timezone": "recipient",
                      "action": {"type": "group_message", "group_id": group, "text": "Tick"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let schedule: Value = created.json().await.unwrap();
    let id = schedule["id"].as_str().unwrap().to_owned();
    wait_until("three fires sent", Duration::from_secs(30), || async {
        messages(&stack)
            .await
            .iter()
            .filter(|m| m.1 == "sent")
            .count()
            >= 6
    })
    .await;

    let paused = client
        .post(format!("{api}/api/v1/schedules/{id}/pause"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), StatusCode::OK);
    let paused_at = Utc::now();
    // three fire instants pass while paused
    wait_until("three seconds paused", Duration::from_secs(10), || async {
        Utc::now() > paused_at + chrono::Duration::seconds(3)
    })
    .await;
    let resumed = client
        .post(format!("{api}/api/v1/schedules/{id}/resume"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let resumed_at = Utc::now();
    wait_until(
        "two fires after the resume",
        Duration::from_secs(30),
        || async {
            messages(&stack)
                .await
                .iter()
                .filter(|m| m.1 == "sent" && m.0 > resumed_at)
                .count()
                >= 4
        },
    )
    .await;
    assert_fires_listing_tells_the_story(&client, &api, &token, &id, paused_at, resumed_at).await;
    let deleted = client
        .delete(format!("{api}/api/v1/schedules/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    wait_until("nothing in flight", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from effects where kind = 'message'
               and state in ('queued', 'sending', 'retrying')",
        )
        .fetch_one(&stack.db)
        .await
        .unwrap()
            == 0
    })
    .await;

    // one Twilio request per message sent, each fire's two messages sent once and promptly,
    // nothing sent for the paused period (1 s slack for a message already being sent)
    let sent: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "select due_at, sending_at from effects where kind = 'message' and state = 'sent'",
    )
    .fetch_all(&stack.db)
    .await
    .unwrap();
    let requests = twilio.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), sent.len());
    let mut per_instant = std::collections::BTreeMap::<DateTime<Utc>, usize>::new();
    for (due, sending_at) in &sent {
        *per_instant.entry(*due).or_default() += 1;
        let late = (sending_at.unwrap() - *due).num_milliseconds();
        assert!(
            (0..1_000).contains(&late),
            "started {late} ms after its fire"
        );
        assert!(
            *due <= paused_at + chrono::Duration::seconds(1) || *due > resumed_at,
            "sent for {due} while paused ({paused_at} – {resumed_at})"
        );
    }
    // never twice; both students for every fire away from the pause and the delete (there
    // one may have been canceled while the other was already being sent)
    assert!(per_instant.values().all(|n| *n <= 2), "{per_instant:?}");
    let settled = |at: &DateTime<Utc>| {
        *at < paused_at - chrono::Duration::seconds(1)
            || (*at > resumed_at && *at < resumed_at + chrono::Duration::seconds(2))
    };
    assert!(
        per_instant
            .iter()
            .filter(|(at, _)| settled(at))
            .all(|(_, n)| *n == 2),
        "{per_instant:?}"
    );
}

/// `GET /fires` reports what happened: fires before the pause `fired` with their one student
/// each sent, fires inside the pause `canceled` with nothing sent (a second of slack at
/// either edge, where a fire may go either way).
async fn assert_fires_listing_tells_the_story(
    client: &reqwest::Client,
    api: &str,
    token: &str,
    id: &str,
    paused_at: DateTime<Utc>,
    resumed_at: DateTime<Utc>,
) {
    let fires: Value = client
        .get(format!("{api}/api/v1/schedules/{id}/fires?count=100"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list the fires")
        .json()
        .await
        .expect("fires as JSON");
    let past = fires["past"].as_array().expect("past fires");
    let second = chrono::Duration::seconds(1);
    let (mut fired, mut canceled) = (0, 0);
    for fire in past {
        let at: DateTime<Utc> = fire["at"]
            .as_str()
            .and_then(|at| at.parse().ok())
            .expect("a fire instant");
        if at < paused_at - second {
            assert_eq!(fire["state"], "fired", "{fire}");
            assert_eq!(fire["recipients"], 1, "{fire}");
            assert_eq!(
                fire["outcome"],
                json!({"sent": 1, "failed": 0, "skipped": 0, "pending": 0}),
                "{fire}"
            );
            fired += 1;
        } else if at > paused_at + second && at < resumed_at - second {
            assert_eq!(fire["state"], "canceled", "{fire}");
            assert_eq!(fire["outcome"]["sent"], 0, "{fire}");
            canceled += 1;
        }
    }
    // of the three fires sent before the pause at least two are clear of the slack, in each
    // of the two zones; the pause lasts over three seconds, so at least one fire per zone
    assert!(
        fired >= 4 && canceled >= 2,
        "{fired} fired, {canceled} canceled: {past:?}"
    );
}
