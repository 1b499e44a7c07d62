//! The OpenAPI document at `/v1/openapi.json` stays true: it lists every operation the
//! engine serves, and each operation answers a made-up request with a status the
//! document lists, as JSON.

use serde_json::{Value, json};

use crate::support::TestEngine;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_operation_and_its_answers() {
    let t = TestEngine::start().await;
    t.publish(
        "j",
        "entry: {type: event, event: e}\nstart: a\nnodes:\n  a: {type: wait, duration: PT1H}\n",
    )
    .await;
    let r = reqwest::get(t.url("/v1/openapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["info"]["title"], "Parcours");
    let paths = doc["paths"].as_object().unwrap();
    // The security schemes: a bearer token everywhere but the health check, the Segment
    // write key (Basic) on the Segment calls.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerToken"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["segmentWriteKey"]["scheme"],
        "basic"
    );
    assert_eq!(doc["security"][0], json!({"bearerToken": []}));
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([]));
    assert_eq!(
        doc["paths"]["/v1/batch"]["post"]["security"][0],
        json!({"segmentWriteKey": []})
    );

    // Every route of the API is in the document (the router is built from the same
    // annotations; this list catches a route added outside them).
    let expected = [
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/v1/openapi.json"),
        ("post", "/v1/events"),
        ("get", "/v1/events/{id}"),
        ("post", "/v1/business-events"),
        ("post", "/v1/segment/{kind}"),
        ("post", "/v1/segment/v1/{kind}"),
        ("post", "/v1/track"),
        ("post", "/v1/identify"),
        ("post", "/v1/page"),
        ("post", "/v1/screen"),
        ("post", "/v1/alias"),
        ("post", "/v1/group"),
        ("post", "/v1/batch"),
        ("get", "/v1/profiles"),
        ("get", "/v1/profiles/{id}"),
        ("put", "/v1/profiles/{id}"),
        ("patch", "/v1/profiles/{id}"),
        ("delete", "/v1/profiles/{id}"),
        ("post", "/v1/profiles/import"),
        ("get", "/v1/profiles/{id}/audiences"),
        ("post", "/v1/profiles/{id}/merge"),
        ("get", "/v1/profiles/{id}/instances"),
        ("get", "/v1/audiences"),
        ("get", "/v1/audiences/{name}"),
        ("put", "/v1/audiences/{name}"),
        ("get", "/v1/audiences/{name}/members"),
        ("post", "/v1/audiences/{name}/members"),
        ("get", "/v1/capping-rules"),
        ("put", "/v1/capping-rules/{id}"),
        ("get", "/v1/runs/{id}"),
        ("get", "/v1/instances/{id}"),
        ("get", "/v1/instances/{id}/steps"),
        ("get", "/v1/plugins"),
        ("get", "/v1/plugins/{name}"),
        ("put", "/v1/plugins/{name}"),
        ("get", "/v1/journeys"),
        ("post", "/v1/journeys/validate"),
        ("get", "/v1/journeys/{id}"),
        ("put", "/v1/journeys/{id}"),
        ("post", "/v1/journeys/{id}/validate"),
        ("post", "/v1/journeys/{id}/publish"),
        ("post", "/v1/journeys/{id}/upgrade-plugins"),
        ("post", "/v1/journeys/{id}/stop"),
        ("post", "/v1/journeys/{id}/close"),
        ("post", "/v1/journeys/{id}/pause"),
        ("post", "/v1/journeys/{id}/resume"),
        ("post", "/v1/journeys/{id}/test"),
        ("delete", "/v1/journeys/{id}/test"),
        ("delete", "/v1/plugins/{name}"),
        ("get", "/v1/journeys/{id}/diff"),
        ("get", "/v1/journeys/{id}/report"),
        ("get", "/v1/journeys/{id}/runs"),
        ("post", "/v1/journeys/{id}/simulate"),
        ("post", "/v1/journeys/{id}/replay"),
        ("get", "/v1/journeys/{id}/versions/{version}"),
        ("get", "/v1/schema/journey"),
        ("get", "/v1/journeys/{id}/instances"),
        ("get", "/v1/alerts"),
        ("get", "/v1/alerts/{id}"),
        ("put", "/v1/alerts/{id}"),
        ("delete", "/v1/alerts/{id}"),
        ("get", "/v1/templates"),
        ("get", "/v1/templates/{id}"),
        ("put", "/v1/templates/{id}"),
        ("get", "/v1/templates/{id}/versions"),
        ("post", "/v1/templates/{id}/preview"),
        ("get", "/v1/outbox"),
        ("get", "/v1/subscription-groups"),
        ("get", "/v1/subscription-groups/{id}"),
        ("put", "/v1/subscription-groups/{id}"),
        ("get", "/v1/profiles/{id}/consent"),
        ("put", "/v1/profiles/{id}/consent/{group}"),
        ("get", "/v1/profiles/{id}/messages"),
        ("post", "/v1/deliveries/{provider}"),
        ("get", "/v1/suppressions"),
        ("get", "/v1/suppressions/{address}"),
        ("put", "/v1/suppressions/{address}"),
        ("delete", "/v1/suppressions/{address}"),
    ];
    let mut documented: Vec<(String, String)> = Vec::new();
    let mut operation_ids = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            documented.push((method.clone(), path.clone()));
            operation_ids.push(op["operationId"].as_str().expect("operationId").to_string());
        }
    }
    documented.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    want.sort();
    assert_eq!(documented, want);
    let count = operation_ids.len();
    operation_ids.sort();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), count, "operation ids are unique");

    // Each operation answers a made-up request (path parameters filled in, an empty
    // object as body) with a documented status and a JSON body (the metrics are text).
    let client = crate::support::client();
    for (method, path) in &want {
        let op = &paths[path][method];
        let url = path
            .replace("{id}", "j")
            .replace("{name}", "nobody")
            .replace("{kind}", "track")
            .replace("{version}", "1");
        let url = if path.ends_with("/diff") {
            format!("{url}?from=1")
        } else {
            url
        };
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = client.request(m, t.url(&url));
        if op.get("requestBody").is_some() {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            op["responses"].get(&status).is_some(),
            "{method} {url} answered {status}, which the document does not list"
        );
        assert_ne!(status, "500", "{method} {url}");
        if path != "/metrics" {
            assert!(
                content_type.starts_with("application/json"),
                "{method} {url} answered {content_type}"
            );
        }
    }

    // The docs name every path.
    let api_md = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"),
    )
    .unwrap();
    let undocumented: Vec<&str> = paths
        .keys()
        .map(String::as_str)
        .filter(|p| !api_md.contains(p))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/api.md does not mention {undocumented:?}"
    );
}
