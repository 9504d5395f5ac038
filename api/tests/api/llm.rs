//! LLM providers and models: sealed keys, internal URLs refused, prices kept exactly, and what
//! another account can do with their ids (nothing).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_field_error, assert_problem, created};

const KEY: &str = "sk-test-9c1f4e2a7b";

fn provider(name: &str) -> Value {
    json!({"name": name, "base_url": "https://llm.example.com/v1/", "api_key": KEY,
           "requests_per_minute": 3000, "tokens_per_minute": 2000000})
}

#[tokio::test]
async fn a_provider_keeps_its_key_sealed_and_unshown_and_an_update_without_one_keeps_it() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let made = created(
        app.post("/api/v1/llm/providers", &provider("OpenAI"), Some(token))
            .await,
    )
    .await;
    assert_eq!(made["base_url"], "https://llm.example.com/v1", "normalised");
    assert_eq!(made["api_key_set"], true);
    assert!(!made.to_string().contains(KEY));
    let found = herald_testing::env::columns_containing(&app.db, KEY)
        .await
        .unwrap();
    assert!(
        found.is_empty(),
        "the key is stored in the clear in {found:?}"
    );

    let path = format!("/api/v1/llm/providers/{}", made["id"].as_str().unwrap());
    let mut body = provider("OpenAI (team)");
    body.as_object_mut().unwrap().remove("api_key");
    body["requests_per_minute"] = json!(60);
    let response = app.send(Method::PUT, &path, Some(&body), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["requests_per_minute"].as_i64()
        ),
        (Some("OpenAI (team)"), Some(60))
    );
    let sealed: String = sqlx::query_scalar("select sealed_api_key from llm_providers")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(app.secrets.open(&sealed).unwrap(), KEY);

    // names are unique per account in any case
    let response = app
        .post(
            "/api/v1/llm/providers",
            &provider("openai (TEAM)"),
            Some(token),
        )
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "provider_exists").await;
    assert_eq!(problem["errors"][0]["field"], "name");
    let listed: Value = app
        .get("/api/v1/llm/providers", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn internal_base_urls_are_refused_unless_the_deployment_allows_them() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    for url in [
        "http://169.254.169.254/latest",
        "http://localhost:6379/",
        "http://[::1]/v1",
    ] {
        let mut body = provider("internal");
        body["base_url"] = json!(url);
        let response = app
            .post("/api/v1/llm/providers", &body, Some(&ada.access_token))
            .await;
        assert_field_error(response, "base_url").await;
    }
    assert_eq!(app.count("llm_providers").await, 0);

    let private = TestApp::spawn_with(&[("llm.allow_private_base_urls", json!(true))]).await;
    let bo = private.signup("bo@example.com").await;
    let mut body = provider("on-prem");
    body["base_url"] = json!("http://10.0.0.5:8000/v1");
    created(
        private
            .post("/api/v1/llm/providers", &body, Some(&bo.access_token))
            .await,
    )
    .await;
}

#[tokio::test]
async fn bad_providers_and_models_are_refused_field_by_field_with_nothing_written() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let token = ada.access_token.as_str();
    let cases = [
        ("name", json!({"name": ""})),
        ("base_url", json!({"base_url": "ftp://llm.example.com"})),
        (
            "base_url",
            json!({"base_url": "https://user:pw@llm.example.com/v1"}),
        ),
        ("api_key", json!({"api_key": null})),
        ("api_key", json!({"api_key": " "})),
        ("requests_per_minute", json!({"requests_per_minute": 0})),
        (
            "tokens_per_minute",
            json!({"tokens_per_minute": 5_000_000_000_i64}),
        ),
    ];
    for (field, change) in cases {
        let mut body = provider("p");
        for (key, value) in change.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        assert_field_error(
            app.post("/api/v1/llm/providers", &body, Some(token)).await,
            field,
        )
        .await;
    }
    assert_eq!(app.count("llm_providers").await, 0);

    let made = created(
        app.post("/api/v1/llm/providers", &provider("p"), Some(token))
            .await,
    )
    .await;
    let model = |change: Value| {
        let mut body = json!({"provider_id": made["id"], "model": "gpt-4o-mini",
                              "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6});
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    for (field, change) in [
        ("model", json!({"model": ""})),
        ("input_usd_per_mtok", json!({"input_usd_per_mtok": -1})),
        (
            "output_usd_per_mtok",
            json!({"output_usd_per_mtok": 0.1234567}),
        ),
        ("output_usd_per_mtok", json!({"output_usd_per_mtok": 20000})),
        (
            "provider_id",
            json!({"provider_id": "00000000-0000-0000-0000-000000000000"}),
        ),
    ] {
        assert_field_error(
            app.post("/api/v1/llm/models", &model(change), Some(token))
                .await,
            field,
        )
        .await;
    }
    assert_eq!(app.count("llm_models").await, 0);

    // prices come back as given, exactly
    let gpt = created(
        app.post("/api/v1/llm/models", &model(json!({})), Some(token))
            .await,
    )
    .await;
    assert_eq!(
        (
            gpt["input_usd_per_mtok"].as_f64(),
            gpt["output_usd_per_mtok"].as_f64()
        ),
        (Some(0.15), Some(0.6))
    );
    let stored: (i64, i64) =
        sqlx::query_as("select input_microusd_per_mtok, output_microusd_per_mtok from llm_models")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, (150_000, 600_000));
    let response = app
        .post("/api/v1/llm/models", &model(json!({})), Some(token))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "model_exists").await;

    // a provider with models stays until they are gone
    let provider_path = format!("/api/v1/llm/providers/{}", made["id"].as_str().unwrap());
    let response = app.send(Method::DELETE, &provider_path, None, token).await;
    assert_problem(response, StatusCode::CONFLICT, "provider_in_use").await;
    let model_path = format!("/api/v1/llm/models/{}", gpt["id"].as_str().unwrap());
    assert_eq!(
        app.send(Method::DELETE, &model_path, None, token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(Method::DELETE, &provider_path, None, token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn another_accounts_providers_and_models_are_not_found_and_cannot_be_used() {
    let app = TestApp::spawn().await;
    let ada = app.signup("ada@example.com").await;
    let eve = app.signup("eve@example.com").await;
    let (mine, theirs) = (ada.access_token.as_str(), eve.access_token.as_str());
    let made = created(
        app.post("/api/v1/llm/providers", &provider("p"), Some(mine))
            .await,
    )
    .await;
    let model_body = json!({"provider_id": made["id"], "model": "m",
                            "input_usd_per_mtok": 1, "output_usd_per_mtok": 2});
    let model = created(
        app.post("/api/v1/llm/models", &model_body, Some(mine))
            .await,
    )
    .await;
    let provider_path = format!("/api/v1/llm/providers/{}", made["id"].as_str().unwrap());
    let model_path = format!("/api/v1/llm/models/{}", model["id"].as_str().unwrap());

    for path in [&provider_path, &model_path] {
        assert_problem(
            app.get(path, Some(theirs)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let response = app.send(Method::DELETE, path, None, theirs).await;
        assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app
        .send(
            Method::PUT,
            &provider_path,
            Some(&provider("stolen")),
            theirs,
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .send(Method::PUT, &model_path, Some(&model_body), theirs)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    // Eve cannot price a model on Ada's provider, nor move her own model onto it
    let response = app
        .post("/api/v1/llm/models", &model_body, Some(theirs))
        .await;
    assert_field_error(response, "provider_id").await;
    let own = created(
        app.post("/api/v1/llm/providers", &provider("eve's"), Some(theirs))
            .await,
    )
    .await;
    let mut own_model = model_body.clone();
    own_model["provider_id"] = own["id"].clone();
    let eves = created(
        app.post("/api/v1/llm/models", &own_model, Some(theirs))
            .await,
    )
    .await;
    let eves_path = format!("/api/v1/llm/models/{}", eves["id"].as_str().unwrap());
    let response = app
        .send(Method::PUT, &eves_path, Some(&model_body), theirs)
        .await;
    assert_field_error(response, "provider_id").await;
    let listed: Value = app
        .get(
            &format!(
                "/api/v1/llm/models?provider_id={}",
                made["id"].as_str().unwrap()
            ),
            Some(theirs),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));

    let still: Value = app.get(&model_path, Some(mine)).await.json().await.unwrap();
    assert_eq!(still, model, "Eve's calls changed nothing");
}

/// The deployment's provider (`llm.default_provider`) is listed to every account, usable for
/// their models, read-only, and its key (the operator's) is stored sealed and never shown.
#[tokio::test]
async fn the_deployments_provider_is_shared_read_only_and_its_key_never_shown() {
    let operator_key = "sk-operator-5d2e8f";
    let app = TestApp::spawn_with(&[
        ("llm.default_provider.name", json!("House model")),
        (
            "llm.default_provider.base_url",
            json!("http://10.1.2.3:8000/v1/"),
        ),
        ("llm.default_provider.api_key", json!(operator_key)),
        ("llm.default_provider.requests_per_minute", json!(600)),
        ("llm.default_provider.tokens_per_minute", json!(900000)),
    ])
    .await;
    let found = herald_testing::env::columns_containing(&app.db, operator_key)
        .await
        .unwrap();
    assert!(
        found.is_empty(),
        "the key is stored in the clear in {found:?}"
    );
    for email in ["ada@example.com", "bob@example.com"] {
        let token = app.signup(email).await.access_token;
        let page: Value = app
            .get("/api/v1/llm/providers", Some(&token))
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        let house = &items[0];
        assert_eq!(house["deployment"], true);
        assert_eq!(house["name"], "House model");
        assert_eq!(house["base_url"], "http://10.1.2.3:8000/v1");
        assert_eq!(house["requests_per_minute"], 600);
        assert!(!page.to_string().contains(operator_key));

        let model = json!({"provider_id": house["id"], "model": "llama-3",
                           "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.2});
        created(app.post("/api/v1/llm/models", &model, Some(&token)).await).await;

        let path = format!("/api/v1/llm/providers/{}", house["id"].as_str().unwrap());
        let change = app
            .send(Method::PUT, &path, Some(&provider("Mine now")), &token)
            .await;
        assert_problem(change, StatusCode::CONFLICT, "provider_read_only").await;
        let delete = app.send(Method::DELETE, &path, None, &token).await;
        assert_problem(delete, StatusCode::CONFLICT, "provider_read_only").await;
    }
    // each account's model is its own
    assert_eq!(app.count("llm_models").await, 2);
}
