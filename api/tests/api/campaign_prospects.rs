//! A campaign's prospects: each person once, suppressed people visible as skipped, and only
//! the account's own people and campaigns.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::campaigns::{draft, sender_and_model};
use crate::helpers::{TestApp, assert_field_error, assert_problem, created};

async fn person(app: &TestApp, token: &str, email: &str) -> Value {
    let body = json!({"email": email, "first_name": email.split('@').next().unwrap()});
    created(app.post("/api/v1/people", &body, Some(token)).await).await["id"].clone()
}

/// A draft campaign of a new account: (token, prospects path).
async fn campaign_of(app: &TestApp, email: &str) -> (String, String) {
    let session = app.signup(email).await;
    let token = session.access_token;
    let name = email.split('@').next().unwrap();
    let (sender, model) = sender_and_model(app, &token, name).await;
    let made = draft(app, &token, &sender, &model).await;
    let path = format!(
        "/api/v1/campaigns/{}/prospects",
        made["id"].as_str().unwrap()
    );
    (token, path)
}

#[tokio::test]
async fn people_are_added_once_and_suppressed_ones_are_listed_as_skipped_with_the_reason() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_of(&app, "ada@example.com").await;
    let token = token.as_str();
    let a = person(&app, token, "a@example.com").await;
    let b = person(&app, token, "b@example.com").await;
    let c = person(&app, token, "c@example.com").await;
    let suppression = json!({"email": "C@example.com", "reason": "unsubscribed"});
    created(
        app.post("/api/v1/suppressions", &suppression, Some(token))
            .await,
    )
    .await;

    let body = json!({"person_ids": [a, b, c, a]});
    let response = app.post(&path, &body, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"added": 2, "already": 1, "skipped": [
            {"person_id": c, "email": "c@example.com", "reason": "suppressed: unsubscribed"}]})
    );
    let again: Value = app
        .post(&path, &json!({"person_ids": [a, c]}), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({"added": 0, "already": 2, "skipped": []}));

    let listed: Value = app.get(&path, Some(token)).await.json().await.unwrap();
    let states: Vec<(&str, &str)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["email"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 3);
    assert!(states.contains(&("c@example.com", "skipped")));
    assert_eq!(
        states
            .iter()
            .filter(|(_, state)| *state == "active")
            .count(),
        2
    );
    let skipped: Value = app
        .get(&format!("{path}?state=skipped"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        skipped["items"][0]["skip_reason"],
        "suppressed: unsubscribed"
    );
    let first: Value = app
        .get(&format!("{path}?limit=2"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(&format!("{path}?limit=2&cursor={cursor}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let mut seen: Vec<Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|p| p["person_id"].clone())
        .collect();
    seen.sort_by_key(ToString::to_string);
    seen.dedup();
    assert_eq!(seen.len(), 3, "pages cover every prospect once");
    assert_field_error(
        app.get(&format!("{path}?state=lost"), Some(token)).await,
        "state",
    )
    .await;
}

#[tokio::test]
async fn another_accounts_people_and_campaigns_are_out_of_reach_and_ended_campaigns_take_none() {
    let app = TestApp::spawn().await;
    let (adas_token, adas_path) = campaign_of(&app, "ada@example.com").await;
    let (eves_token, eves_path) = campaign_of(&app, "eve@example.com").await;
    let adas_person = person(&app, &adas_token, "a@example.com").await;
    let eves_person = person(&app, &eves_token, "e@example.com").await;

    // Eve cannot add Ada's person to her campaign, nor touch Ada's campaign
    let response = app
        .post(
            &eves_path,
            &json!({"person_ids": [eves_person, adas_person]}),
            Some(&eves_token),
        )
        .await;
    assert_field_error(response, "person_ids[1]").await;
    assert_eq!(app.count("campaign_prospects").await, 0, "nothing added");
    let response = app
        .post(
            &adas_path,
            &json!({"person_ids": [eves_person]}),
            Some(&eves_token),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(
        app.get(&adas_path, Some(&eves_token)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_field_error(
        app.post(&eves_path, &json!({"person_ids": []}), Some(&eves_token))
            .await,
        "person_ids",
    )
    .await;

    sqlx::query("update campaigns set state = 'stopped'")
        .execute(&app.db)
        .await
        .unwrap();
    let response = app
        .post(
            &adas_path,
            &json!({"person_ids": [adas_person]}),
            Some(&adas_token),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "campaign_ended").await;
}

async fn import(app: &TestApp, path: &str, csv: &str, token: &str) -> reqwest::Response {
    app.request(reqwest::Method::POST, &format!("{path}/import"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_csv_of_people_is_imported_and_every_person_it_wrote_becomes_a_prospect() {
    let app = TestApp::spawn().await;
    let (token, path) = campaign_of(&app, "ada@example.com").await;
    let token = token.as_str();
    person(&app, token, "known@example.com").await;
    let suppression = json!({"email": "gone@example.com", "reason": "bounced"});
    created(
        app.post("/api/v1/suppressions", &suppression, Some(token))
            .await,
    )
    .await;

    let csv = "email,first_name,industry\n\
               new@example.com,Nia,retail\n\
               KNOWN@example.com,Kim,\n\
               not-an-address,Bad,\n\
               gone@example.com,Gus,\n";
    let response = import(&app, &path, csv, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (
            answer["import"]["created"].as_u64(),
            answer["import"]["updated"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(answer["import"]["errors"][0]["line"], 4);
    assert_eq!(answer["prospects"]["added"], 2);
    assert_eq!(
        answer["prospects"]["skipped"][0]["email"],
        "gone@example.com"
    );
    assert_eq!(
        answer["prospects"]["skipped"][0]["reason"],
        "suppressed: bounced"
    );
    let listed: Value = app.get(&path, Some(token)).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);

    // importing into another account's campaign writes nothing, not even the people
    let (eves_token, _) = campaign_of(&app, "eve@example.com").await;
    let people_before = app.count("people").await;
    let response = import(&app, &path, "email\nsneaky@example.com\n", &eves_token).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.count("people").await, people_before);
}
