//! Generating a campaign's e-mails through the API: the state moves, progress, the messages
//! listed, edited and regenerated, stop, and each route's refusals. No worker runs here: a
//! job's result is written with the function the worker writes it with
//! (`campaign_messages::finish`); the jobs themselves are the worker suite's
//! (`worker::generation`).

use herald_shared::db::campaign_messages::{self, Ending, Spent};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::campaigns::{draft, sender_and_model};
use crate::helpers::{TestApp, assert_field_error, assert_problem, created};

/// A draft campaign of a new account with prospects `a@…`, `b@…` and a suppressed `c@…`:
/// (token, campaign path).
pub async fn campaign_with_prospects(app: &TestApp, email: &str) -> (String, String) {
    let token = app.signup(email).await.access_token;
    let name = email.split('@').next().unwrap();
    let (sender, model) = sender_and_model(app, &token, name).await;
    let made = draft(app, &token, &sender, &model).await;
    let path = format!("/api/v1/campaigns/{}", made["id"].as_str().unwrap());
    let suppression = json!({"email": "c@example.com", "reason": "bounced"});
    created(
        app.post("/api/v1/suppressions", &suppression, Some(&token))
            .await,
    )
    .await;
    let csv = "email,first_name,company\na@example.com,Ada,Acme\nb@example.com,Bob,Acme\n\
               c@example.com,Cy,Acme\n";
    let imported = app
        .request(Method::POST, &format!("{path}/prospects/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::OK);
    (token, path)
}

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

async fn messages(app: &TestApp, token: &str, path: &str, query: &str) -> Vec<Value> {
    let page = json_of(
        app.get(&format!("{path}/messages{query}"), Some(token))
            .await,
        StatusCode::OK,
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

/// The message of `email` at `step`.
async fn message(app: &TestApp, token: &str, path: &str, email: &str, step: i64) -> Value {
    messages(app, token, path, &format!("?step={step}"))
        .await
        .into_iter()
        .find(|m| m["email"] == email)
        .unwrap()
}

fn id(value: &Value) -> Uuid {
    value.as_str().unwrap().parse().unwrap()
}

/// The campaign of a message.
async fn campaign_of(app: &TestApp, message: &Value) -> Uuid {
    sqlx::query_scalar("select campaign_id from campaign_messages where id = $1")
        .bind(id(&message["id"]))
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Records how the run of `message`'s job (`job_id`) ended, as the worker does; whether the
/// message took it.
async fn record_run(
    app: &TestApp,
    campaign: Uuid,
    message: &Value,
    ending: &Ending,
    spent: Spent,
) -> bool {
    let mut tx = app.db.begin().await.unwrap();
    let recorded = campaign_messages::finish(
        &mut tx,
        campaign,
        id(&message["id"]),
        id(&message["job_id"]),
        ending,
        spent,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    recorded
}

/// Ends a message's run as the worker would, with 120 input and 80 output tokens.
async fn finish_run(app: &TestApp, message: &Value, ending: Ending) {
    let campaign = campaign_of(app, message).await;
    let spent = Spent {
        input_tokens: 120,
        output_tokens: 80,
        cost_microusd: 66,
    };
    assert!(record_run(app, campaign, message, &ending, spent).await);
}

async fn generation_jobs(app: &TestApp, state: &str) -> i64 {
    sqlx::query_scalar("select count(*) from effects where kind = 'generation' and state = $1")
        .bind(state)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn generating_plans_each_active_prospects_first_step_and_shows_progress() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();

    let response = app
        .post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    let campaign = json_of(response, StatusCode::ACCEPTED).await;
    assert_eq!(campaign["state"], "generating");
    // two active prospects (the suppressed one is skipped), two steps each; step 2 waits
    // for step 1
    assert_eq!(
        campaign["progress"],
        json!([
            {"position": 1, "pending": 2, "running": 0, "done": 0, "failed": 0, "blocked": 0},
            {"position": 2, "pending": 2, "running": 0, "done": 0, "failed": 0, "blocked": 0},
        ])
    );
    assert_eq!(
        campaign["spent"],
        json!({"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "limit_reached": false})
    );
    assert_eq!(generation_jobs(&app, "planned").await, 2);
    let listed = messages(&app, token, &path, "").await;
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().all(|m| m["state"] == "pending"));
    let first: Vec<&Value> = listed.iter().filter(|m| m["step"] == 1).collect();
    assert!(first.iter().all(|m| m["job_id"].is_string()));
    assert!(
        listed
            .iter()
            .filter(|m| m["step"] == 2)
            .all(|m| m["job_id"].is_null())
    );

    let again = app
        .post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "campaign_state").await;
    assert_eq!(generation_jobs(&app, "planned").await, 2);

    // a written step 1 plans the prospect's step 2, and is counted with its cost
    let ada = message(&app, token, &path, "a@example.com", 1).await;
    let written = Ending::Written {
        subject: "Hi Ada".to_owned(),
        body: "Hello.".to_owned(),
    };
    finish_run(&app, &ada, written).await;
    let ada_second = message(&app, token, &path, "a@example.com", 2).await;
    assert!(ada_second["job_id"].is_string());
    let campaign = json_of(app.get(&path, Some(token)).await, StatusCode::OK).await;
    assert_eq!(campaign["progress"][0]["done"], 1);
    assert_eq!(
        campaign["spent"],
        json!({"input_tokens": 120, "output_tokens": 80, "cost_usd": 0.000066,
               "limit_reached": false})
    );
}

#[tokio::test]
async fn a_campaign_with_no_active_prospect_is_not_generated() {
    let app = TestApp::spawn().await;
    let token = app.signup("ada@example.com").await.access_token;
    let (sender, model) = sender_and_model(&app, &token, "ada").await;
    let made = draft(&app, &token, &sender, &model).await;
    let path = format!("/api/v1/campaigns/{}", made["id"].as_str().unwrap());

    let response = app
        .post(&format!("{path}/generate"), &json!({}), Some(&token))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "no_prospects").await;
    let campaign = json_of(app.get(&path, Some(&token)).await, StatusCode::OK).await;
    assert_eq!(campaign["state"], "draft");
    assert_eq!(app.count("campaign_messages").await, 0);
    let planned: i64 = sqlx::query_scalar("select count(*) from effects where kind = 'generation'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(planned, 0);
}

#[tokio::test]
async fn stop_blocks_what_was_still_to_be_written_and_cancels_its_jobs() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    let stop = format!("{path}/stop");
    // a draft is deleted, not stopped
    let response = app.post(&stop, &json!({}), Some(token)).await;
    assert_problem(response, StatusCode::CONFLICT, "campaign_state").await;
    app.post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;

    let campaign = json_of(
        app.post(&stop, &json!({}), Some(token)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(campaign["state"], "stopped", "{campaign}");
    assert_eq!(campaign["progress"][0]["blocked"], 2, "{campaign}");
    assert_eq!(campaign["progress"][1]["blocked"], 2);
    let listed = messages(&app, token, &path, "?state=blocked").await;
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .all(|m| m["error"] == "not written: the campaign was stopped")
    );
    assert_eq!(generation_jobs(&app, "canceled").await, 2);
    assert_eq!(generation_jobs(&app, "planned").await, 0);

    for action in ["stop", "generate"] {
        let response = app
            .post(&format!("{path}/{action}"), &json!({}), Some(token))
            .await;
        assert_problem(response, StatusCode::CONFLICT, "campaign_state").await;
    }
}

#[tokio::test]
async fn messages_are_edited_and_regenerated_before_launch() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    app.post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    let ada = message(&app, token, &path, "a@example.com", 1).await;
    let bob = message(&app, token, &path, "b@example.com", 1).await;
    let at = |message: &Value| format!("{path}/messages/{}", message["id"].as_str().unwrap());

    // a refused answer fails the message and blocks the prospect's later step
    finish_run(
        &app,
        &ada,
        Ending::Failed("the model refused: no".to_owned()),
    )
    .await;
    let failed = message(&app, token, &path, "a@example.com", 1).await;
    assert_eq!(
        (&failed["state"], &failed["error"]),
        (&json!("failed"), &json!("the model refused: no"))
    );
    let blocked = message(&app, token, &path, "a@example.com", 2).await;
    assert_eq!(blocked["state"], "blocked");
    let regenerate_blocked = app
        .post(
            &format!("{}/regenerate", at(&blocked)),
            &json!({}),
            Some(token),
        )
        .await;
    assert_problem(
        regenerate_blocked,
        StatusCode::CONFLICT,
        "earlier_step_missing",
    )
    .await;

    // bad input names its field and changes nothing
    for (body, field) in [
        (
            json!({"subject": "Hi\r\nBcc: x@example.com", "body": "Hello"}),
            "subject",
        ),
        (
            json!({"subject": "s".repeat(151), "body": "Hello"}),
            "subject",
        ),
        (json!({"subject": "Hi", "body": " "}), "body"),
        (json!({"subject": "", "body": "Hello"}), "subject"),
    ] {
        let response = app.send(Method::PUT, &at(&ada), Some(&body), token).await;
        assert_field_error(response, field).await;
    }
    assert_eq!(
        message(&app, token, &path, "a@example.com", 1).await["state"],
        "failed"
    );
    // a message being written is not edited under its job
    let body = json!({"subject": "Hi Bob", "body": "Hello Bob."});
    let response = app.send(Method::PUT, &at(&bob), Some(&body), token).await;
    assert_problem(response, StatusCode::CONFLICT, "message_pending").await;

    // the user writes the failed one by hand: done, and the prospect's step 2 is planned
    let body = json!({"subject": " Hi Ada ", "body": "Hello Ada."});
    let edited = json_of(
        app.send(Method::PUT, &at(&ada), Some(&body), token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&edited["state"], &edited["subject"], &edited["body"]),
        (&json!("done"), &json!("Hi Ada"), &json!("Hello Ada."))
    );
    assert!(edited["edited_at"].is_string());
    let second = message(&app, token, &path, "a@example.com", 2).await;
    assert_eq!(second["state"], "pending");
    assert!(second["job_id"].is_string());

    // regenerating runs a new job; the old one's late result is not taken
    let old_job = edited["job_id"].clone();
    let regenerated = json_of(
        app.post(&format!("{}/regenerate", at(&ada)), &json!({}), Some(token))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(
        (&regenerated["state"], &regenerated["runs"]),
        (&json!("pending"), &json!(2))
    );
    assert_ne!(regenerated["job_id"], old_job);
    let mut stale = ada.clone();
    stale["job_id"] = old_job;
    let campaign = campaign_of(&app, &stale).await;
    let late = Ending::Written {
        subject: "Stale".to_owned(),
        body: "Stale.".to_owned(),
    };
    assert!(!record_run(&app, campaign, &stale, &late, Spent::default()).await);
    let again = app
        .post(&format!("{}/regenerate", at(&ada)), &json!({}), Some(token))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "message_pending").await;
}

#[tokio::test]
async fn another_accounts_campaign_and_messages_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    app.post(&format!("{path}/generate"), &json!({}), Some(&token))
        .await;
    let ada = message(&app, &token, &path, "a@example.com", 1).await;
    let message_path = format!("{path}/messages/{}", ada["id"].as_str().unwrap());
    let (eve, eve_path) = campaign_with_prospects(&app, "eve@example.com").await;
    let eve = eve.as_str();

    for action in ["generate", "stop"] {
        let response = app
            .post(&format!("{path}/{action}"), &json!({}), Some(eve))
            .await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app.get(&format!("{path}/messages"), Some(eve)).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let body = json!({"subject": "Mine", "body": "Mine now."});
    let response = app.send(Method::PUT, &message_path, Some(&body), eve).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    // Ada's message under Eve's own campaign is no message of that campaign
    app.post(&format!("{eve_path}/generate"), &json!({}), Some(eve))
        .await;
    let foreign = format!("{eve_path}/messages/{}", ada["id"].as_str().unwrap());
    let response = app.send(Method::PUT, &foreign, Some(&body), eve).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .post(&format!("{foreign}/regenerate"), &json!({}), Some(eve))
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let unchanged = message(&app, &token, &path, "a@example.com", 1).await;
    assert_eq!(unchanged, ada);
}

#[tokio::test]
async fn message_lists_name_a_bad_filter() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    for (query, field) in [
        ("?step=0", "step"),
        ("?step=two", "step"),
        ("?state=sent", "state"),
        ("?person_id=ada", "person_id"),
        ("?limit=0", "limit"),
    ] {
        let response = app
            .get(&format!("{path}/messages{query}"), Some(&token))
            .await;
        assert_field_error(response, field).await;
    }
    let response = app
        .get(&format!("{path}/messages?colour=red"), Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_launch_plan_is_shown_before_anything_is_sent() {
    use chrono::{Datelike, Timelike};

    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    let schedule = format!("{path}/schedule");
    let response = app.get(&schedule, Some(token)).await;
    assert_problem(response, StatusCode::CONFLICT, "campaign_state").await;
    // Bob reads his e-mail in Tokyo; Ada has no zone of her own (the campaign's New York)
    let prospects = json_of(
        app.get(&format!("{path}/prospects"), Some(token)).await,
        StatusCode::OK,
    )
    .await;
    let bob = prospects["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "b@example.com")
        .unwrap()
        .clone();
    let moved = app
        .send(
            Method::PUT,
            &format!("/api/v1/people/{}", bob["person_id"].as_str().unwrap()),
            Some(&json!({"email": "b@example.com", "first_name": "Bob", "timezone": "Asia/Tokyo"})),
            token,
        )
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    app.post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    let ada = message(&app, token, &path, "a@example.com", 1).await;
    let written = |name: &str| Ending::Written {
        subject: format!("Hi {name}"),
        body: "Hello.".to_owned(),
    };
    finish_run(&app, &ada, written("Ada")).await;
    let page = json_of(app.get(&schedule, Some(token)).await, StatusCode::OK).await;
    // Bob's first e-mail is not written yet: left out, and counted
    assert_eq!(
        (&page["planned"], &page["not_written"]),
        (&json!(1), &json!(1))
    );
    let bob = message(&app, token, &path, "b@example.com", 1).await;
    finish_run(&app, &bob, written("Bob")).await;

    let page = json_of(app.get(&schedule, Some(token)).await, StatusCode::OK).await;
    assert_eq!(
        (&page["planned"], &page["unplanned"], &page["not_written"]),
        (&json!(2), &json!(0), &json!(0))
    );
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        let local =
            chrono::DateTime::parse_from_rfc3339(item["local_time"].as_str().unwrap()).unwrap();
        assert!((9..17).contains(&local.hour()), "{item}");
        assert!(local.weekday().number_from_monday() <= 5, "{item}");
        let expected_zone = if item["email"] == "b@example.com" {
            "Asia/Tokyo"
        } else {
            "America/New_York"
        };
        assert_eq!(item["timezone"], expected_zone);
    }
    let days: i64 = page["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| day["first_emails"].as_i64().unwrap())
        .sum();
    assert_eq!(days, 2);
    // nothing was planned to be sent by showing the plan
    assert_eq!(
        sqlx::query_scalar::<_, i64>("select count(*) from effects where kind <> 'generation'")
            .fetch_one(&app.db)
            .await
            .unwrap(),
        1,
        "only the sign-up e-mail"
    );
    // pages of one plan fit together (a plan starts at the next whole minute: two pages
    // fetched across a minute's turn are of two plans, and are fetched again)
    let (first, second) = loop {
        let first = json_of(
            app.get(&format!("{schedule}?limit=1"), Some(token)).await,
            StatusCode::OK,
        )
        .await;
        let cursor = first["next_cursor"].as_str().unwrap();
        let second = json_of(
            app.get(&format!("{schedule}?limit=1&cursor={cursor}"), Some(token))
                .await,
            StatusCode::OK,
        )
        .await;
        if first["starts_at"] == second["starts_at"] {
            break (first, second);
        }
    };
    let mut paged = vec![
        first["items"][0]["person_id"].clone(),
        second["items"][0]["person_id"].clone(),
    ];
    let mut all: Vec<Value> = items.iter().map(|item| item["person_id"].clone()).collect();
    paged.sort_by_key(Value::to_string);
    all.sort_by_key(Value::to_string);
    assert_eq!(paged, all);

    let response = app
        .get(&format!("{schedule}?cursor=nope"), Some(token))
        .await;
    assert_field_error(response, "cursor").await;
    let eve = app.signup("eve@example.com").await.access_token;
    let response = app.get(&schedule, Some(&eve)).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_ready_campaign_writes_again_what_its_user_fixes_or_adds() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    app.post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    for email in ["a@example.com", "b@example.com"] {
        let first = message(&app, token, &path, email, 1).await;
        finish_run(
            &app,
            &first,
            Ending::Failed("the model refused: no".to_owned()),
        )
        .await;
    }
    let campaign = json_of(app.get(&path, Some(token)).await, StatusCode::OK).await;
    assert_eq!(campaign["state"], "ready");

    // Ada's first step written by hand: her second is written next, the campaign generates
    let ada = message(&app, token, &path, "a@example.com", 1).await;
    let at = |message: &Value| format!("{path}/messages/{}", message["id"].as_str().unwrap());
    let body = json!({"subject": "Hi Ada", "body": "Hello Ada."});
    let response = app.send(Method::PUT, &at(&ada), Some(&body), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let campaign = json_of(app.get(&path, Some(token)).await, StatusCode::OK).await;
    assert_eq!(campaign["state"], "generating");
    let second = message(&app, token, &path, "a@example.com", 2).await;
    assert_eq!(second["state"], "pending");
    assert!(second["job_id"].is_string());
    assert_eq!(
        message(&app, token, &path, "b@example.com", 2).await["state"],
        "blocked"
    );

    // a message whose job ended without writing it (dead after a long outage) is not stuck
    sqlx::query("update effects set state = 'dead' where id = $1")
        .bind(id(&second["job_id"]))
        .execute(&app.db)
        .await
        .unwrap();
    let regenerated = app
        .post(
            &format!("{}/regenerate", at(&second)),
            &json!({}),
            Some(token),
        )
        .await;
    assert_eq!(regenerated.status(), StatusCode::ACCEPTED);

    // a prospect added now gets messages and a first job
    let person = created(
        app.post(
            "/api/v1/people",
            &json!({"email": "dee@example.com", "first_name": "Dee"}),
            Some(token),
        )
        .await,
    )
    .await;
    let added = app
        .post(
            &format!("{path}/prospects"),
            &json!({"person_ids": [person["id"]]}),
            Some(token),
        )
        .await;
    assert_eq!(added.status(), StatusCode::OK);
    let dee = message(&app, token, &path, "dee@example.com", 1).await;
    assert_eq!(dee["state"], "pending");
    assert!(dee["job_id"].is_string());
    assert_eq!(
        messages(&app, token, &path, "?state=pending").await.len(),
        3,
        "Ada's step 2, Dee's two steps"
    );
}

#[tokio::test]
async fn deleting_the_prospect_a_campaign_still_generates_for_makes_it_ready() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_with_prospects(&app, "ada@example.com").await;
    let token = token.as_str();
    app.post(&format!("{path}/generate"), &json!({}), Some(token))
        .await;
    // Ada's steps are written or failed; only Bob's are pending
    let ada = message(&app, token, &path, "a@example.com", 1).await;
    finish_run(
        &app,
        &ada,
        Ending::Failed("the model refused: no".to_owned()),
    )
    .await;
    let bob = message(&app, token, &path, "b@example.com", 1).await;
    let campaign = json_of(app.get(&path, Some(token)).await, StatusCode::OK).await;
    assert_eq!(campaign["state"], "generating");

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/people/{}", bob["person_id"].as_str().unwrap()),
            None,
            token,
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let campaign = json_of(app.get(&path, Some(token)).await, StatusCode::OK).await;
    assert_eq!(campaign["state"], "ready");
    // Bob's job, had it been running, still records what its call cost
    let spent = Spent {
        input_tokens: 10,
        output_tokens: 5,
        cost_microusd: 7,
    };
    let written = Ending::Written {
        subject: "Hi Bob".to_owned(),
        body: "Hello.".to_owned(),
    };
    let campaign_id: Uuid = path.rsplit('/').next().unwrap().parse().unwrap();
    assert!(!record_run(&app, campaign_id, &bob, &written, spent).await);
    let campaign = json_of(app.get(&path, Some(token)).await, StatusCode::OK).await;
    assert_eq!(campaign["spent"]["output_tokens"], 80 + 5);
}
