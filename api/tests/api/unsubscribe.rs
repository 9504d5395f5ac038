//! One-click unsubscribe links: a GET only shows a button, a POST unsubscribes (again and
//! again: 200), and only links Herald signed work.

use herald_shared::secrets::SecretBox;
use herald_shared::unsubscribe;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::campaign_generation::campaign_with_prospects;
use crate::helpers::TestApp;

/// (campaign id, Ada's person id) of a campaign of a new account.
async fn campaign_and_ada(app: &TestApp, email: &str) -> (String, Uuid, Uuid) {
    let (token, path) = campaign_with_prospects(app, email).await;
    let campaign: Uuid = path.rsplit('/').next().unwrap().parse().unwrap();
    let prospects: Value = app
        .get(&format!("{path}/prospects"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let ada = prospects["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "a@example.com")
        .unwrap()["person_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (token, campaign, ada)
}

async fn prospect_state(app: &TestApp, campaign: Uuid, person: Uuid) -> String {
    sqlx::query_scalar(
        "select state from campaign_prospects where campaign_id = $1 and person_id = $2",
    )
    .bind(campaign)
    .bind(person)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn suppressions_of(app: &TestApp, token: &str) -> Vec<Value> {
    let page: Value = app
        .get("/api/v1/suppressions", Some(token))
        .await
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn one_click(app: &TestApp, link: &str) -> reqwest::Response {
    app.request(Method::POST, link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_get_shows_a_button_and_a_post_unsubscribes_once_and_for_all() {
    let app = TestApp::spawn().await;
    let (token, campaign, ada) = campaign_and_ada(&app, "owner@example.com").await;
    let link = format!("/u/{}", unsubscribe::token(&app.secrets, campaign, ada));

    // a link scanner's GET changes nothing
    let shown = app.request(Method::GET, &link).send().await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(
        shown.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        shown
            .text()
            .await
            .unwrap()
            .contains("<form method=\"post\">")
    );
    assert_eq!(prospect_state(&app, campaign, ada).await, "active");
    // the sign-up's own suppression list is empty besides the test's bounced address
    let before = suppressions_of(&app, &token).await;
    assert_eq!(before.len(), 1);

    for _ in 0..2 {
        let done = one_click(&app, &link).await;
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.text().await.unwrap().contains("Unsubscribed"));
    }
    assert_eq!(prospect_state(&app, campaign, ada).await, "unsubscribed");
    let after = suppressions_of(&app, &token).await;
    let ada_suppressed: Vec<&Value> = after
        .iter()
        .filter(|s| s["email"] == "a@example.com")
        .collect();
    assert_eq!(ada_suppressed.len(), 1);
    assert_eq!(ada_suppressed[0]["reason"], "unsubscribed");
    // the page's button posts nothing: also fine
    let pressed = app.request(Method::POST, &link).send().await.unwrap();
    assert_eq!(pressed.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_links_herald_signed_unsubscribe_and_only_their_own_account() {
    let app = TestApp::spawn().await;
    let (token, campaign, ada) = campaign_and_ada(&app, "owner@example.com").await;
    let (eve_token, _, _) = campaign_and_ada(&app, "eve@example.com").await;
    let forged = unsubscribe::token(&SecretBox::new(&[9; 32]), campaign, ada);
    let mut altered = unsubscribe::token(&app.secrets, campaign, ada).into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for bad in [forged.as_str(), altered.as_str(), "nope", &"A".repeat(64)] {
        let link = format!("/u/{bad}");
        let shown = app.request(Method::GET, &link).send().await.unwrap();
        assert_eq!(shown.status(), StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(one_click(&app, &link).await.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(prospect_state(&app, campaign, ada).await, "active");
    assert_eq!(suppressions_of(&app, &token).await.len(), 1);

    // Ada unsubscribing from the owner's campaign suppresses her for the owner only: Eve's
    // account, which has its own a@example.com, is not told and not changed
    let link = format!("/u/{}", unsubscribe::token(&app.secrets, campaign, ada));
    assert_eq!(one_click(&app, &link).await.status(), StatusCode::OK);
    let eves: Vec<Value> = suppressions_of(&app, &eve_token).await;
    assert!(
        eves.iter().all(|s| s["email"] != "a@example.com"),
        "{eves:?}"
    );
    // a link to a campaign deleted since answers 200 and does nothing
    let gone = format!(
        "/u/{}",
        unsubscribe::token(&app.secrets, Uuid::new_v4(), ada)
    );
    assert_eq!(one_click(&app, &gone).await.status(), StatusCode::OK);
}
