//! CSV import of people: upserts by e-mail in any case, bad lines reported, attributes from
//! other columns, header and content-type errors, account scoping, all in one transaction.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::create_person;
use crate::groups::get_json;
use crate::helpers::{TestApp, assert_field_error, assert_problem};

async fn import(app: &TestApp, token: &str, content_type: &str, csv: String) -> Response {
    app.request(Method::POST, "/api/v1/people/import")
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(csv)
        .send()
        .await
        .expect("request")
}

async fn person_with_email(app: &TestApp, token: &str, email: &str) -> Value {
    let page = get_json(app, &format!("/api/v1/people?q={email}"), token).await;
    let found: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["email"] == email)
        .collect();
    assert_eq!(found.len(), 1, "{email} in {page}");
    found[0].clone()
}

fn error_lines(report: &Value) -> Vec<(u64, &str)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn an_import_upserts_by_email_in_any_case_and_reports_bad_lines() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    let known = create_person(
        &app,
        token,
        json!({"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
            "timezone": "Europe/London", "attributes": {"plan": "gold", "LinkedIn": "old"}}),
    )
    .await;
    let long = format!("long@example.com,,,,,{}", "x".repeat(1_001));
    let csv = [
        " Email ,First_Name,company,TimeZone,LinkedIn,Source",
        "grace@example.com,Grace,US Navy,America/New_York,https://l/grace,",
        "ADA@Example.com,,\"Engines, Ltd\",,https://l/ada,csv",
        "not-an-email,Bad,,UTC,,",
        "alan@example.com,Alan,,EST,,",
        "",
        "grace@EXAMPLE.com,Grace again,,,,",
        "only,three,fields",
        "nul@example.com,N\u{0}ul,,,,",
        &long,
        "hedy@example.com,Hedy,,,,",
    ]
    .join("\r\n");
    let response = import(&app, token, "text/csv; charset=utf-8", csv).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (&report["created"], &report["updated"]),
        (&json!(2), &json!(1)),
        "{report}"
    );
    assert_eq!(
        error_lines(&report),
        [
            (4, "email"),
            (5, "timezone"),
            (7, "email"),
            (8, "row"),
            (9, "first_name"),
            (10, "Source"),
        ],
        "{report}"
    );
    assert!(
        report["errors"][2]["message"]
            .as_str()
            .unwrap()
            .contains("line 2")
    );

    // the known person: a blank cell kept its field, attributes merged, same id
    let ada = person_with_email(&app, token, "ada@example.com").await;
    assert_eq!(ada["id"], known["id"]);
    assert_eq!(ada["first_name"], "Ada");
    assert_eq!(
        ada["last_name"], "Lovelace",
        "a column not in the file is kept"
    );
    assert_eq!(ada["company"], "Engines, Ltd");
    assert_eq!(ada["timezone"], "Europe/London");
    assert_eq!(
        ada["attributes"],
        json!({"plan": "gold", "LinkedIn": "https://l/ada", "Source": "csv"})
    );
    let grace = person_with_email(&app, token, "grace@example.com").await;
    assert_eq!(grace["first_name"], "Grace");
    assert_eq!(grace["timezone"], "America/New_York");
    assert_eq!(grace["attributes"], json!({"LinkedIn": "https://l/grace"}));
    let hedy = person_with_email(&app, token, "hedy@example.com").await;
    assert_eq!(
        (&hedy["timezone"], &hedy["attributes"]),
        (&Value::Null, &json!({}))
    );
    assert_eq!(app.count("people").await, 3);

    // the same file again creates nothing new
    let again = "email,first_name\ngrace@example.com,Grace\nHEDY@example.com,Hedy L.\n";
    let response = import(&app, token, "text/csv", again.to_owned()).await;
    let report: Value = response.json().await.unwrap();
    assert_eq!(report, json!({"created": 0, "updated": 2, "errors": []}));
    let hedy = person_with_email(&app, token, "hedy@example.com").await;
    assert_eq!(hedy["first_name"], "Hedy L.");
    assert_eq!(app.count("people").await, 3);
}

#[tokio::test]
async fn a_row_that_would_exceed_the_attribute_limit_is_reported_and_the_rest_go_in() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    let forty: serde_json::Map<String, Value> =
        (0..40).map(|n| (format!("old{n}"), json!("v"))).collect();
    create_person(
        &app,
        token,
        json!({"email": "full@example.com", "attributes": forty}),
    )
    .await;
    let names: Vec<String> = (0..11).map(|n| format!("new{n}")).collect();
    let cells = ["v"; 11].join(",");
    let csv = format!(
        "email,{}\nfull@example.com,{cells}\nfresh@example.com,{cells}\n",
        names.join(",")
    );
    let report: Value = import(&app, token, "text/csv", csv)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(error_lines(&report), [(2, "attributes")], "{report}");
    assert_eq!(
        (&report["created"], &report["updated"]),
        (&json!(1), &json!(0))
    );
    let full = person_with_email(&app, token, "full@example.com").await;
    assert_eq!(
        full["attributes"].as_object().unwrap().len(),
        40,
        "unchanged"
    );
}

#[tokio::test]
async fn a_bad_header_or_body_answers_the_error_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    for csv in [
        "first_name,company\nAda,Engines\n",
        "email,EMAIL\na@example.com,b@example.com\n",
        "email,plan,plan\na@example.com,x,y\n",
        "email,,company\na@example.com,,x\n",
        "",
    ] {
        let response = import(&app, token, "text/csv", csv.to_owned()).await;
        assert_field_error(response, "header").await;
    }
    let wide: Vec<String> = (0..51).map(|n| format!("a{n}")).collect();
    let csv = format!("email,{}\n", wide.join(","));
    let response = import(&app, token, "text/csv", csv).await;
    assert_field_error(response, "header").await;

    let csv = "email\nada@example.com\n".to_owned();
    let response = import(&app, token, "application/json", csv).await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let mut rows = String::from("email\n");
    for n in 0..10_001 {
        rows.push_str(&format!("p{n}@example.com\n"));
    }
    let response = import(&app, token, "text/csv", rows).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
    assert_eq!(app.count("people").await, 0);
}

#[tokio::test]
async fn a_database_failure_imports_nothing() {
    let app = TestApp::spawn().await;
    let token = &app.signup("owner@example.com").await.access_token;
    create_person(
        &app,
        token,
        json!({"email": "ada@example.com", "first_name": "Ada"}),
    )
    .await;
    // the database fails part-way through the rows
    app.refuse_writes("people", "first_name", "Boom").await;
    let csv = "email,first_name\ngrace@example.com,Grace\nada@example.com,Ada L.\n\
               boom@example.com,Boom\n";
    let response = import(&app, token, "text/csv", csv.to_owned()).await;
    assert_problem(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    )
    .await;
    assert_eq!(app.count("people").await, 1);
    let ada = person_with_email(&app, token, "ada@example.com").await;
    assert_eq!(ada["first_name"], "Ada");
}

#[tokio::test]
async fn an_import_never_touches_another_account_s_people() {
    let app = TestApp::spawn().await;
    let ada = &app.signup("ada@example.com").await.access_token;
    let eve = &app.signup("eve@example.com").await.access_token;
    let theirs = create_person(
        &app,
        ada,
        json!({"email": "p@example.com", "first_name": "P"}),
    )
    .await;
    let csv = "email,first_name\nP@example.com,Stolen\n".to_owned();
    let report: Value = import(&app, eve, "text/csv", csv)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report, json!({"created": 1, "updated": 0, "errors": []}));
    let unchanged = person_with_email(&app, ada, "p@example.com").await;
    assert_eq!(unchanged, theirs);
    let own = person_with_email(&app, eve, "p@example.com").await;
    assert_eq!(own["first_name"], "Stolen");
    assert_ne!(own["id"], theirs["id"]);
}
