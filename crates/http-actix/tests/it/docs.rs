use std::collections::BTreeSet;

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::Value;

use crate::support::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every (METHOD, path) of the document.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

async fn spec_of(mocks: Mocks) -> (Value, BTreeSet<(String, String)>, Vec<(String, String)>) {
    let http = mocks.http();
    let served: BTreeSet<(String, String)> = http
        .operations()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    let app = worker(&http).await;
    let raw = call_raw(&app, TestRequest::get().uri("/api-docs/openapi.json")).await;
    assert_eq!(raw.status, 200);
    let spec = raw.json();
    assert_eq!(
        spec,
        serde_json::from_str::<Value>(&http.openapi_json()).unwrap()
    );
    (spec, served.clone(), served.into_iter().collect())
}

#[actix_web::test]
async fn the_openapi_document_is_served_as_openapi_3_1() {
    let app = Mocks::new().app().await;
    let raw = call_raw(&app, TestRequest::get().uri("/api-docs/openapi.json")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/json"));
    let spec = raw.json();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "BotShop API");
}

#[actix_web::test]
async fn swagger_ui_is_served_at_docs_from_the_binary() {
    let app = Mocks::new().app().await;
    let raw = call_raw(&app, TestRequest::get().uri("/docs/")).await;
    assert_eq!(raw.status, 200);
    assert!(raw.header("content-type").unwrap().starts_with("text/html"));
    assert!(raw.body.to_lowercase().contains("swagger"), "{}", raw.body);

    let init = call_raw(&app, TestRequest::get().uri("/docs/swagger-initializer.js")).await;
    assert_eq!(init.status, 200);
    assert!(
        init.body.contains("/api-docs/openapi.json"),
        "{}",
        init.body
    );

    let redirect = call_raw(&app, TestRequest::get().uri("/docs")).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/docs/"));
}

#[actix_web::test]
async fn every_served_operation_is_documented_and_every_documented_one_is_served() {
    for expose_metrics in [true, false] {
        let mocks = Mocks::new()
            .answering_everything()
            .with_config(|c| c.expose_metrics = expose_metrics);
        let (spec, served, _) = spec_of(mocks).await;
        assert_eq!(
            documented(&spec),
            served,
            "expose_metrics = {expose_metrics}"
        );
        assert_eq!(
            served.contains(&("GET".into(), "/metrics".into())),
            expose_metrics
        );
        for path in [
            "/health",
            "/ready",
            "/api/v1/orders",
            "/api/v1/products/{id}",
        ] {
            assert!(served.iter().any(|(_, p)| p == path), "{path}");
        }
    }
}

#[actix_web::test]
async fn every_documented_operation_answers_something_other_than_404_or_405() {
    let mocks = Mocks::new().answering_everything();
    let http = mocks.http();
    let app = worker(&http).await;
    let spec = call_raw(&app, TestRequest::get().uri("/api-docs/openapi.json"))
        .await
        .json();
    let operations = documented(&spec);
    assert!(operations.len() >= 10, "{operations:?}");
    for (method, path) in operations {
        let uri = path.replace("{id}", "1");
        let req = TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&uri);
        let raw = call_raw(&app, req).await;
        assert!(
            raw.status != 404 && raw.status != 405,
            "{method} {uri} answered {}: {}",
            raw.status,
            raw.body
        );
    }
}

#[actix_web::test]
async fn the_document_describes_auth_errors_pagination_and_a_russian_order() {
    let app = Mocks::new().app().await;
    let spec = call_raw(&app, TestRequest::get().uri("/api-docs/openapi.json"))
        .await
        .json();

    let tma = &spec["components"]["securitySchemes"]["tma"];
    assert_eq!(tma["type"], "apiKey");
    assert_eq!(tma["in"], "header");
    assert_eq!(tma["name"], "Authorization");
    assert!(
        tma["description"]
            .as_str()
            .unwrap()
            .contains("tma <initData>")
    );

    let create = &spec["paths"]["/api/v1/orders"]["post"];
    assert_eq!(create["security"], serde_json::json!([{"tma": []}]));
    let example = &create["requestBody"]["content"]["application/json"]["example"];
    assert_eq!(example["delivery_address"], "ул. Пушкина, д. 10");
    assert_eq!(example["comment"], "Домофон не работает");
    for status in [
        "201", "400", "401", "413", "415", "422", "429", "500", "503",
    ] {
        assert!(
            create["responses"].get(status).is_some(),
            "POST /orders {status}"
        );
    }
    assert_eq!(
        create["responses"]["429"]["$ref"],
        "#/components/responses/RateLimited"
    );
    assert!(
        create["responses"]["201"]["headers"]
            .get("Location")
            .is_some()
    );
    // Public routes have no security requirement.
    assert!(
        spec["paths"]["/api/v1/categories"]["get"]
            .get("security")
            .is_none()
    );

    let responses = &spec["components"]["responses"];
    let unauthorized = &responses["Unauthorized"]["content"]["application/problem+json"];
    assert_eq!(
        unauthorized["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert_eq!(
        unauthorized["examples"]["hash_mismatch"]["value"]["code"],
        "hash_mismatch"
    );
    assert_eq!(
        unauthorized["examples"]["hash_mismatch"]["value"]["status"],
        401
    );
    let rate_limited = &responses["RateLimited"];
    assert!(rate_limited["headers"].get("Retry-After").is_some());
    let description = responses["InvalidOrder"]["description"].as_str().unwrap();
    for code in [
        "validation_failed",
        "product_not_found",
        "product_unavailable",
        "order_total_too_large",
    ] {
        assert!(description.contains(code), "{description}");
    }

    // The collection envelope.
    let categories = &spec["paths"]["/api/v1/categories"]["get"];
    let schema = &categories["responses"]["200"]["content"]["application/json"]["schema"];
    let envelope = resolve(&spec, schema);
    for field in ["items", "total", "limit", "offset"] {
        assert!(envelope["properties"].get(field).is_some(), "{envelope}");
    }
    let params: Vec<&str> = categories["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["If-None-Match", "limit", "offset"]);

    let order = &spec["components"]["schemas"]["OrderDto"];
    assert_eq!(
        order["properties"]["status"]["enum"],
        serde_json::json!([
            "PENDING",
            "CONFIRMED",
            "PROCESSING",
            "SHIPPED",
            "DELIVERED",
            "CANCELLED"
        ])
    );
}

/// Follows a local `$ref`.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let mut node = spec;
            for part in reference.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            node
        }
        None => schema,
    }
}
