use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, plan_email};

#[tokio::test]
async fn the_jobs_list_shows_the_accounts_own_effects_only() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let page: Value = app
        .get("/api/v1/jobs", Some(&ada.access_token))
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the verification e-mail: {page}");
    assert_eq!(items[0]["kind"], "email");
    assert_eq!(items[0]["state"], "planned");
    assert_eq!(items[0]["attempts"], 0);
    assert!(items[0]["next_attempt_at"].is_string());
    assert!(page["next_cursor"].is_null());

    let ada_job = items[0]["id"].as_str().unwrap();
    for path in [format!("/api/v1/jobs/{ada_job}")] {
        assert_problem(
            app.get(&path, Some(&eve.access_token)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for action in ["retry", "cancel"] {
        let response = app
            .post(
                &format!("/api/v1/jobs/{ada_job}/{action}"),
                &json!({}),
                Some(&eve.access_token),
            )
            .await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let state: String = sqlx::query_scalar("select state from effects where id = $1::uuid")
        .bind(ada_job)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "planned", "another account's cancel changed nothing");
}

#[tokio::test]
async fn the_jobs_list_pages_through_everything_once() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    for n in 0..6 {
        plan_email(&app.db, ada.account_id, &format!("page-{n}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/jobs?limit=3".to_owned();
    loop {
        let page: Value = app
            .get(&path, Some(&ada.access_token))
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|item| item["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/jobs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 7);
    assert_eq!(unique.len(), 7);
}

#[tokio::test]
async fn the_jobs_list_filters_by_state_and_kind_and_refuses_bad_filters() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let id = plan_email(&app.db, ada.account_id, "dead-one").await;
    sqlx::query(
        "update effects set state = 'dead', attempts = 5, last_error = 'gave up' where id = $1",
    )
    .bind(id)
    .execute(&app.db)
    .await
    .unwrap();
    let dead: Value = app
        .get(
            "/api/v1/jobs?state=dead&kind=email",
            Some(&ada.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = dead["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.to_string());
    assert_eq!(items[0]["last_error"], "gave up");
    assert!(items[0]["next_attempt_at"].is_null());

    for (query, field) in [
        ("state=lost", "state"),
        ("kind=fax", "kind"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=zzz", "cursor"),
        ("color=red", "color"),
    ] {
        assert_field_error(
            app.get(&format!("/api/v1/jobs?{query}"), Some(&ada.access_token))
                .await,
            field,
        )
        .await;
    }
    assert_problem(
        app.get("/api/v1/jobs", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn cancel_stops_a_planned_job_and_refuses_a_second_time() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let id = plan_email(&app.db, ada.account_id, "to-cancel").await;
    let canceled = app
        .post(
            &format!("/api/v1/jobs/{id}/cancel"),
            &json!({}),
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(canceled.status(), StatusCode::OK);
    let body: Value = canceled.json().await.unwrap();
    assert_eq!(body["state"], "canceled");
    let again = app
        .post(
            &format!("/api/v1/jobs/{id}/cancel"),
            &json!({}),
            Some(&ada.access_token),
        )
        .await;
    assert_problem(again, StatusCode::CONFLICT, "invalid_job_state").await;
}

#[tokio::test]
async fn retry_replans_a_dead_job_with_fresh_attempts_and_refuses_a_live_one() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let id = plan_email(&app.db, ada.account_id, "to-retry").await;
    let live = app
        .post(
            &format!("/api/v1/jobs/{id}/retry"),
            &json!({}),
            Some(&ada.access_token),
        )
        .await;
    assert_problem(live, StatusCode::CONFLICT, "invalid_job_state").await;
    sqlx::query("update effects set state = 'dead', attempts = 5 where id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    let retried = app
        .post(
            &format!("/api/v1/jobs/{id}/retry"),
            &json!({}),
            Some(&ada.access_token),
        )
        .await;
    assert_eq!(retried.status(), StatusCode::OK);
    let body: Value = retried.json().await.unwrap();
    assert_eq!(body["state"], "planned");
    assert_eq!(body["attempts"], 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let id = plan_email(&app.db, ada.account_id, "idem").await;
    let send = || {
        app.request(reqwest::Method::POST, &format!("/api/v1/jobs/{id}/cancel"))
            .bearer_auth(&ada.access_token)
            .header("Idempotency-Key", "cancel-once")
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), StatusCode::OK, "a repeat is not a 409");
    assert_eq!(second.json::<Value>().await.unwrap(), first);

    let bad_key = app
        .request(reqwest::Method::POST, &format!("/api/v1/jobs/{id}/cancel"))
        .bearer_auth(&ada.access_token)
        .header("Idempotency-Key", "")
        .send()
        .await
        .unwrap();
    assert_field_error(bad_key, "Idempotency-Key").await;
}

#[tokio::test]
async fn unknown_and_malformed_job_ids_are_404() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    for path in [
        "/api/v1/jobs/not-a-uuid",
        &format!("/api/v1/jobs/{}", uuid::Uuid::new_v4()),
    ] {
        assert_problem(
            app.get(path, Some(&ada.access_token)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}
