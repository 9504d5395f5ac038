//! The committed `openapi.json` must match the code (regenerate with
//! `cargo run -p herald-api -- openapi > openapi.json`).

#[test]
fn the_committed_openapi_json_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json"))
            .expect("openapi.json at the workspace root");
    let committed: serde_json::Value = serde_json::from_str(&committed).expect("valid JSON");
    let generated = serde_json::to_value(herald_api::openapi()).expect("serializable");
    assert!(
        committed == generated,
        "openapi.json is out of date: run `cargo run -p herald-api -- openapi > openapi.json`"
    );
}

/// Every answer an operation can give is documented, as problem+json with a description:
/// the shared ones are derived from what the operation declares (`api/src/openapi.rs`).
#[test]
fn every_operation_documents_the_answers_its_inputs_can_cause() {
    let doc = serde_json::to_value(herald_api::openapi()).expect("serializable");
    assert_eq!(doc["servers"], serde_json::json!([{"url": "/"}]));
    let shared = &doc["components"]["responses"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let name = format!("{method} {path}");
            let responses = operation["responses"].as_object().expect("responses");
            let security = operation["security"].as_array().unwrap_or_else(|| {
                panic!("{name}: no `security` (public operations say `security: []`)")
            });
            let mut expected: Vec<&str> = Vec::new();
            if !security.is_empty() {
                expected.push("401");
            }
            if operation["requestBody"]["content"]
                .get("application/json")
                .is_some()
            {
                expected.extend(["400", "413", "415", "422"]);
            }
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if parameters.iter().any(|p| p["in"] == "path") {
                expected.push("404");
            }
            if parameters
                .iter()
                .any(|p| p["in"] == "query" || p["in"] == "header")
            {
                expected.push("422");
            }
            for status in expected {
                assert!(responses.contains_key(status), "{name}: no {status}");
            }
            for (status, response) in responses {
                let response = match response["$ref"].as_str() {
                    Some(reference) => {
                        &shared[reference.trim_start_matches("#/components/responses/")]
                    }
                    None => response,
                };
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{name} {status}: no description"
                );
                if status.starts_with('4') {
                    assert!(
                        response["content"]
                            .get("application/problem+json")
                            .is_some(),
                        "{name} {status}: not problem+json"
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} operations found");
}
