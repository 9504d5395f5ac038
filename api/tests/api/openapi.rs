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
