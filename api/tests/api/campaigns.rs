//! Campaigns: drafts written whole, prompts checked by the variables they name, references
//! only to the account's own senders and models, and no change once under way.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, created};

/// A sender and a model of the account behind `token`: (sender id, model id).
pub async fn sender_and_model(app: &TestApp, token: &str, name: &str) -> (Value, Value) {
    let sender = json!({"from_name": name, "from_email": format!("{name}@example.com"),
                        "transport": {"type": "sendgrid", "api_key": "SG.test"}});
    let sender = created(app.post("/api/v1/senders", &sender, Some(token)).await).await;
    let provider = json!({"name": name, "base_url": "https://llm.example.com/v1", "api_key": "sk",
                          "requests_per_minute": 60, "tokens_per_minute": 100000});
    let provider = created(
        app.post("/api/v1/llm/providers", &provider, Some(token))
            .await,
    )
    .await;
    let model = json!({"provider_id": provider["id"], "model": "gpt-4o-mini",
                       "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6});
    let model = created(app.post("/api/v1/llm/models", &model, Some(token)).await).await;
    (sender["id"].clone(), model["id"].clone())
}

fn campaign(sender: &Value, model: &Value) -> Value {
    json!({
        "name": "Q1 outreach",
        "sender_ids": [sender],
        "default_timezone": "America/New_York",
        "send_window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
        "daily_cap": 500,
        "new_prospects_per_day": 100,
        "max_cost_usd": 25.5,
        "steps": [
            {"delay_days": 0, "model_id": model,
             "prompt": "Write to {{ first_name }} at {{ company }} ({{ attributes.industry }})."},
            {"delay_days": 3, "model_id": model,
             "prompt": "Follow up on \"{{ step1.subject }}\" to {{ first_name }}."}
        ]
    })
}

/// Creates the [`campaign`] draft with `sender` and `model`.
pub async fn draft(app: &TestApp, token: &str, sender: &Value, model: &Value) -> Value {
    let body = campaign(sender, model);
    created(app.post("/api/v1/campaigns", &body, Some(token)).await).await
}

#[tokio::test]
async fn a_draft_campaign_is_created_read_listed_and_replaced() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let (sender, model) = sender_and_model(&app, token, "ada").await;
    let made = draft(&app, token, &sender, &model).await;
    assert_eq!(made["state"], "draft");
    assert_eq!(made["sender_ids"], json!([sender]));
    assert_eq!(
        made["send_window"],
        json!({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"})
    );
    assert_eq!(made["max_cost_usd"], 25.5);
    assert_eq!(
        made["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["position"].as_i64(), s["delay_days"].as_i64()))
            .collect::<Vec<_>>(),
        [(Some(1), Some(0)), (Some(2), Some(3))]
    );

    let path = format!("/api/v1/campaigns/{}", made["id"].as_str().unwrap());
    let mut got: Value = app.get(&path, Some(token)).await.json().await.unwrap();
    // a draft has written nothing yet; only the one campaign's answer shows progress
    assert_eq!(got["progress"], json!([]));
    assert_eq!(got["sending"], json!([]));
    got.as_object_mut().unwrap().remove("progress");
    got.as_object_mut().unwrap().remove("sending");
    assert_eq!(got, made);
    let listed: Value = app
        .get("/api/v1/campaigns", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([made]));

    let mut body = campaign(&sender, &model);
    body["send_window"] = json!({"days": ["sat"], "start": "10:30", "end": "12:00"});
    body["steps"].as_array_mut().unwrap().pop();
    let response = app.send(Method::PUT, &path, Some(&body), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["steps"].as_array().unwrap().len(), 1);
    assert_eq!(replaced["send_window"]["days"], json!(["sat"]));
}

#[tokio::test]
async fn bad_campaigns_are_refused_field_by_field_with_nothing_written() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let (sender, model) = sender_and_model(&app, token, "ada").await;
    let cases = [
        ("name", json!({"name": ""})),
        ("sender_ids", json!({"sender_ids": []})),
        ("sender_ids[1]", json!({"sender_ids": [sender, sender]})),
        ("default_timezone", json!({"default_timezone": "EST"})),
        (
            "send_window.days",
            json!({"send_window": {"days": [], "start": "09:00", "end": "17:00"}}),
        ),
        (
            "send_window.days[1]",
            json!({"send_window": {"days": ["mon", "funday"], "start": "09:00", "end": "17:00"}}),
        ),
        (
            "send_window.start",
            json!({"send_window": {"days": ["mon"], "start": "9am", "end": "17:00"}}),
        ),
        (
            "send_window.end",
            json!({"send_window": {"days": ["mon"], "start": "22:00", "end": "02:00"}}),
        ),
        ("daily_cap", json!({"daily_cap": 0})),
        (
            "new_prospects_per_day",
            json!({"new_prospects_per_day": 1_000_000}),
        ),
        ("max_cost_usd", json!({"max_cost_usd": -1})),
        ("steps", json!({"steps": []})),
        (
            "steps[0].delay_days",
            json!({"steps": [{"delay_days": 2, "model_id": model, "prompt": "Hi"}]}),
        ),
        (
            "steps[1].delay_days",
            json!({"steps": [{"delay_days": 0, "model_id": model, "prompt": "Hi"},
                                                 {"delay_days": 0, "model_id": model, "prompt": "Again"}]}),
        ),
        (
            "steps[0].prompt",
            json!({"steps": [{"delay_days": 0, "model_id": model, "prompt": "Hi {{ frist_name }}"}]}),
        ),
        (
            "steps[0].prompt",
            json!({"steps": [{"delay_days": 0, "model_id": model, "prompt": "{{ step1.body }}"}]}),
        ),
        (
            "steps[0].prompt",
            json!({"steps": [{"delay_days": 0, "model_id": model, "prompt": "{% if %}"}]}),
        ),
        (
            "steps[0].model_id",
            json!({"steps": [{"delay_days": 0, "model_id": "00000000-0000-0000-0000-000000000000", "prompt": "Hi"}]}),
        ),
        (
            "sender_ids[0]",
            json!({"sender_ids": ["00000000-0000-0000-0000-000000000000"]}),
        ),
    ];
    for (field, change) in cases {
        let mut body = campaign(&sender, &model);
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let response = app.post("/api/v1/campaigns", &body, Some(token)).await;
        let problem = assert_field_error(response, field).await;
        if field == "steps[0].prompt" && problem.to_string().contains("frist_name") {
            assert!(problem.to_string().contains("`frist_name`"), "{problem}");
        }
    }
    assert_eq!(app.count("campaigns").await, 0);
    assert_eq!(app.count("campaign_steps").await, 0);
}

#[tokio::test]
async fn another_accounts_campaigns_senders_and_models_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let (adas_sender, adas_model) = sender_and_model(&app, &ada.access_token, "ada").await;
    let (eves_sender, eves_model) = sender_and_model(&app, &eve.access_token, "eve").await;
    let made = draft(&app, &ada.access_token, &adas_sender, &adas_model).await;
    let path = format!("/api/v1/campaigns/{}", made["id"].as_str().unwrap());
    let theirs = eve.access_token.as_str();

    // Eve cannot send from Ada's sender nor write with Ada's model
    let response = app
        .post(
            "/api/v1/campaigns",
            &campaign(&adas_sender, &eves_model),
            Some(theirs),
        )
        .await;
    assert_field_error(response, "sender_ids[0]").await;
    let response = app
        .post(
            "/api/v1/campaigns",
            &campaign(&eves_sender, &adas_model),
            Some(theirs),
        )
        .await;
    assert_field_error(response, "steps[0].model_id").await;
    // nor see, change or delete Ada's campaign
    assert_problem(
        app.get(&path, Some(theirs)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let body = campaign(&eves_sender, &eves_model);
    let response = app.send(Method::PUT, &path, Some(&body), theirs).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.send(Method::DELETE, &path, None, theirs).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let listed: Value = app
        .get("/api/v1/campaigns", Some(theirs))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    let still: Value = app
        .get(&path, Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&still["name"], &still["steps"]),
        (&made["name"], &made["steps"])
    );
}

#[tokio::test]
async fn a_campaign_under_way_cannot_be_changed_or_deleted_nor_its_sender_and_model() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let (sender, model) = sender_and_model(&app, token, "ada").await;
    let made = draft(&app, token, &sender, &model).await;
    let path = format!("/api/v1/campaigns/{}", made["id"].as_str().unwrap());

    // what a campaign uses stays while it exists
    let sender_path = format!("/api/v1/senders/{}", sender.as_str().unwrap());
    let response = app.send(Method::DELETE, &sender_path, None, token).await;
    assert_problem(response, StatusCode::CONFLICT, "sender_in_use").await;
    let model_path = format!("/api/v1/llm/models/{}", model.as_str().unwrap());
    let response = app.send(Method::DELETE, &model_path, None, token).await;
    assert_problem(response, StatusCode::CONFLICT, "model_in_use").await;

    // launched (the launch route is not built yet: the state is set as it would)
    sqlx::query("update campaigns set state = 'running'")
        .execute(&app.db)
        .await
        .unwrap();
    let body = campaign(&sender, &model);
    let response = app.send(Method::PUT, &path, Some(&body), token).await;
    assert_problem(response, StatusCode::CONFLICT, "campaign_not_draft").await;
    let response = app.send(Method::DELETE, &path, None, token).await;
    assert_problem(response, StatusCode::CONFLICT, "campaign_not_draft").await;

    sqlx::query("update campaigns set state = 'stopped'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.send(Method::DELETE, &path, None, token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.count("campaign_steps").await, 0);
    assert_eq!(
        app.send(Method::DELETE, &sender_path, None, token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(Method::DELETE, &model_path, None, token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}
