//! The OpenAPI document is kept true: every documented operation is called on the real server, its
//! status must be one the document lists, and its JSON answer must match the documented schema.

mod common;

use common::*;
use serde_json::Value;

/// Resolves `{"$ref": "#/components/schemas/X"}`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A small JSON-schema check: types, required properties, nested properties, items, allOf, nullable.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, value, at, errors);
        }
        return;
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) && schema.get("type").is_some() {
            errors.push(format!("{at}: null but not nullable"));
        }
        return;
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some(other) => {
            errors.push(format!("{at}: unknown schema type {other}"));
            true
        }
    };
    if !ok {
        errors.push(format!("{at}: {value} is not a {}", schema["type"]));
        return;
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if value.get(r).is_none() {
                errors.push(format!("{at}: missing required property {r}"));
            }
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, s) in props {
            if let Some(v) = value.get(name) {
                check(doc, s, v, &format!("{at}.{name}"), errors);
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

#[tokio::test]
async fn every_documented_operation_behaves_as_documented() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let served: Value =
        http.get(format!("{}/api/v1/openapi.json", server.url)).send().await.unwrap().json().await.unwrap();
    let file: Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
    assert_eq!(served, file, "the server serves the document in the repository");
    let doc = &served;

    let pkg =
        package_with("doc-pkg", "1.0-1", "x86_64", &[("usr/share/doc-pkg/file", b"x")], "depend = glibc\n");
    // A second architecture, so the repository outlives the deletion of x86_64.
    let other = package("doc-arm", "1-1", "aarch64", &[]);
    assert_eq!(publish(&http, &server.url, "r", other).await.status(), 200);
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push((path.clone(), method.clone(), op.clone()));
        }
    }
    // Publish first, deletions last and from the narrowest to the widest.
    let rank = |path: &str, method: &str| match method {
        "post" => 0,
        "delete" => 10 - path.matches('/').count(),
        _ => 1,
    };
    operations.sort_by_key(|(p, m, _)| (rank(p, m), p.clone()));
    assert!(operations.len() >= 11, "{} operations", operations.len());

    let mut errors = Vec::new();
    for (path, method, op) in &operations {
        let url = format!(
            "{}{}",
            server.url,
            path.replace("{repo}", "r")
                .replace("{arch}", "x86_64")
                .replace("{file}", "r.db")
                .replace("{pkgname}", "doc-pkg")
                .replace("{name}", "doc-pkg")
        );
        let request = match method.as_str() {
            "get" => http.get(&url),
            "head" => http.head(&url),
            "post" => http.post(&url).body(pkg.clone()),
            "delete" => http.delete(&url),
            other => panic!("undocumented method {other}"),
        };
        let response = request.header("X-Api-Key", KEY).send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let responses = &op["responses"];
        if !status.starts_with('2') {
            errors.push(format!("{method} {path}: status {status}, expected success"));
        }
        let Some(documented) = responses.get(&status) else {
            errors.push(format!("{method} {path}: status {status} is not documented"));
            continue;
        };
        if let Some(schema) = documented.pointer("/content/application~1json/schema") {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            check(doc, schema, &body, &format!("{method} {path}"), &mut errors);
        }
    }
    // Error answers are the documented error envelope.
    let r = http.get(format!("{}/api/v1/repos/none/x86_64/packages", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    check(doc, &serde_json::json!({"$ref": "#/components/schemas/Error"}), &body, "404", &mut errors);
    assert!(errors.is_empty(), "the OpenAPI document disagrees with the server:\n{}", errors.join("\n"));
}
