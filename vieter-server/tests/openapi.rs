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
    let aur = common::aur::LocalAur::start(vec![common::aur::record("doc-aur", "1.0-1")], None).await;
    // Signing on, so that `GET /api/v1/keys` lists a key; rotated once, so that a retired key can be
    // removed.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("VIETER_AUR_RPC_URL", aur.rpc()), ("VIETER_SIGNING_KEY", "generate".to_owned())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut first = Server::start_on(&data, &env);
    first.kill();
    std::fs::remove_file(data.join("signing_key.asc")).unwrap();
    let server = Server::start_on(&data, &env);
    let http = reqwest::Client::new();
    let keys: Value =
        http.get(format!("{}/api/v1/keys", server.url)).send().await.unwrap().json().await.unwrap();
    let retired = keys["data"][1]["fingerprint"].as_str().expect("the retired key").to_owned();
    for _ in 0..100 {
        let url = format!("{}/api/v1/keys/resign", server.url);
        let resign: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        if resign["data"]["state"] == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
    // A realistic order: publish, create a target, queue, lease, report, then deletions from the
    // narrowest to the widest.
    const ORDER: &[(&str, &str)] = &[
        ("post", "/{repo}/publish"),
        ("post", "/api/v1/targets"),
        ("get", "/api/v1/targets"),
        ("get", "/api/v1/targets/{id}"),
        ("get", "/api/v1/targets/{id}/deps"),
        ("patch", "/api/v1/targets/{id}"),
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/{id}"),
        ("post", "/api/v1/jobs/poll"),
        ("post", "/api/v1/jobs/{id}/heartbeat"),
        ("post", "/api/v1/jobs/{id}/log"),
        ("get", "/api/v1/jobs/{id}/log"),
        ("post", "/api/v1/jobs/{id}/finish"),
        ("get", "/api/v1/logs"),
        ("get", "/api/v1/logs/{id}"),
        ("get", "/api/v1/logs/{id}/content"),
        ("delete", "/api/v1/logs/{id}"),
        ("post", "/api/v1/jobs/{id}/retry"),
        ("post", "/api/v1/jobs/{id}/cancel"),
        ("post", "/api/v1/jobs/queue"),
        ("get", "/api/v1/agents"),
        ("delete", "/api/v1/targets/{id}"),
    ];
    let rank = |path: &str, method: &str| match ORDER.iter().position(|(m, p)| *m == method && *p == path) {
        Some(i) => i,
        None if method == "delete" => 1000 - path.matches('/').count(),
        None => 100,
    };
    operations.sort_by_key(|(p, m, _)| (rank(p, m), p.clone()));
    assert!(operations.len() >= 25, "{} operations", operations.len());

    let mut errors = Vec::new();
    for (path, method, op) in &operations {
        // Job 1 is the queued build; job 2 its retry (the one that can still be cancelled).
        let id = if path.ends_with("/cancel") { "2" } else { "1" };
        let url = format!(
            "{}{}",
            server.url,
            path.replace("{repo}", "r")
                .replace("{arch}", "x86_64")
                .replace("{file}", "r.db")
                .replace("{pkgname}", "doc-pkg")
                .replace("{name}", "doc-pkg")
                .replace("{id}", id)
                .replace("{fingerprint}", &retired)
        );
        let agent = serde_json::json!({"agent_id": "doc-agent"});
        let json_body = match (method.as_str(), path.as_str()) {
            ("post", "/api/v1/targets") => {
                Some(serde_json::json!({"kind": "git", "url": "https://example.org/x.git", "repo": "r"}))
            }
            ("patch", _) => Some(serde_json::json!({"branch": "main"})),
            ("post", "/api/v1/jobs") => Some(serde_json::json!({"target": 1})),
            ("post", "/api/v1/aur/resolve") => Some(serde_json::json!({"names": ["doc-aur"]})),
            ("post", "/api/v1/jobs/poll") => {
                Some(serde_json::json!({"agent_id": "doc-agent", "arch": "x86_64", "capacity": 1}))
            }
            ("post", "/api/v1/jobs/{id}/heartbeat") => Some(agent),
            ("post", "/api/v1/jobs/{id}/finish") => Some(
                serde_json::json!({"agent_id": "doc-agent", "outcome": {"state": "succeeded", "versions": []}}),
            ),
            _ => None,
        };
        let request = match method.as_str() {
            "get" => http.get(&url),
            "head" => http.head(&url),
            "post" if path == "/{repo}/publish" => http.post(&url).body(pkg.clone()),
            "post" if path == "/api/v1/jobs/queue" => http.post(format!("{url}?target=1&arch=x86_64&force")),
            "post" if path.ends_with("/log") => {
                http.post(format!("{url}?agent_id=doc-agent")).body("a log line\n")
            }
            "post" => http.post(&url),
            "patch" => http.patch(&url),
            "put" => http.put(&url),
            "delete" => http.delete(&url),
            other => panic!("undocumented method {other}"),
        };
        let request = match json_body {
            Some(b) => request.json(&b),
            None => request,
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
