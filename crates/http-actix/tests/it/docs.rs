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
        let name = if path.starts_with("/media/") {
            domain::media::MediaName::of(b"picture", domain::media::ImageFormat::Jpeg).to_string()
        } else {
            "pizza.svg".to_owned()
        };
        let uri = path.replace("{id}", "1").replace("{name}", &name);
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

    // Collections are JSON arrays, as the seed has them, with the count and the
    // neighbouring pages in headers.
    for path in [
        "/api/v1/categories",
        "/api/v1/products",
        "/api/v1/orders/my",
    ] {
        let ok = &spec["paths"][path]["get"]["responses"]["200"];
        let schema = &ok["content"]["application/json"]["schema"];
        assert_eq!(schema["type"], "array", "{path}: {schema}");
        for header in ["X-Total-Count", "Link"] {
            assert!(ok["headers"].get(header).is_some(), "{path}: {ok}");
        }
    }
    let categories = &spec["paths"]["/api/v1/categories"]["get"];
    let params: Vec<&str> = categories["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "parent_id",
            "include_children",
            "If-None-Match",
            "limit",
            "offset"
        ]
    );

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

/// Every limit the server enforces is in the document, spelled from the same constants the
/// domain enforces it with, so that a client generated from the document never sends a
/// request the server refuses (and the fuzzer in `.ci/fuzz` holds the server to it).
#[actix_web::test]
async fn the_document_states_every_enforced_constraint_from_the_domain_s_own_rules() {
    use domain::values::{Comment, DeliveryAddress, patterns};

    let (spec, _, _) = spec_of(Mocks::new()).await;
    let param = |path: &str, method: &str, name: &str| -> Value {
        spec["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))["schema"]
            .clone()
    };
    for path in [
        "/api/v1/products",
        "/api/v1/categories",
        "/api/v1/orders/my",
    ] {
        let method = "get";
        let limit = param(path, method, "limit");
        assert_eq!(limit["minimum"], 1, "{path}");
        assert_eq!(limit["maximum"], domain::Page::MAX_LIMIT, "{path}");
        let offset = param(path, method, "offset");
        assert_eq!(offset["minimum"], 0, "{path}");
        assert_eq!(offset["maximum"], domain::Page::MAX_OFFSET, "{path}");
    }
    let q = param("/api/v1/products", "get", "q");
    assert_eq!(q["maxLength"], domain::catalog::MAX_SEARCH_CHARS);
    assert_eq!(q["pattern"], patterns::NO_CONTROL);
    for bound in ["min_price", "max_price"] {
        assert_eq!(
            param("/api/v1/products", "get", bound)["pattern"],
            patterns::PRICE
        );
    }
    let sort = resolve(&spec, &param("/api/v1/products", "get", "sort")).clone();
    assert_eq!(
        sort["enum"],
        serde_json::json!(["default", "price_asc", "price_desc", "newest"])
    );
    let key = param("/api/v1/orders", "post", "Idempotency-Key");
    assert_eq!(key["pattern"], patterns::IDEMPOTENCY_KEY);
    assert_eq!(
        key["maxLength"],
        domain::idempotency::IdempotencyKey::MAX_LEN
    );

    let order = &spec["components"]["schemas"]["CreateOrderRequest"];
    assert_eq!(order["additionalProperties"], false);
    let field = |name: &str| &order["properties"][name];
    assert_eq!(
        field("delivery_address")["pattern"],
        patterns::NOT_BLANK_NO_CONTROL
    );
    assert_eq!(
        field("delivery_address")["maxLength"],
        DeliveryAddress::MAX_CHARS
    );
    assert_eq!(field("phone")["pattern"], patterns::PHONE);
    assert_eq!(field("comment")["pattern"], patterns::NO_CONTROL);
    assert_eq!(field("comment")["maxLength"], Comment::MAX_CHARS);
    assert_eq!(field("items")["minItems"], 1);
    assert_eq!(field("items")["maxItems"], domain::order::MAX_LINES);
    let item = &spec["components"]["schemas"]["CreateOrderItem"];
    assert_eq!(item["additionalProperties"], false);
    assert_eq!(item["properties"]["product_id"]["minimum"], 1);
    assert_eq!(item["properties"]["quantity"]["minimum"], 1);
    assert_eq!(item["properties"]["quantity"]["maximum"], 100);

    // The Idempotency-Key's refusals are documented answers of the operation.
    let responses = &spec["paths"]["/api/v1/orders"]["post"]["responses"];
    let described = |status: &str| {
        let response = resolve(&spec, &responses[status]);
        response["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(described("422").contains("idempotency_key_reused"));
    assert!(described("422").contains("validation_failed"));
    assert!(described("409").contains("idempotency_key_in_use"));
}

/// Every `$ref` of the document points at something: a dangling one makes generated
/// clients and fuzzers fail on the whole operation.
#[actix_web::test]
async fn every_reference_in_the_document_resolves() {
    fn walk<'a>(node: &'a Value, refs: &mut Vec<&'a str>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    refs.push(reference);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let (spec, _, _) = spec_of(Mocks::new()).await;
    let mut refs = Vec::new();
    walk(&spec, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let target = resolve(&spec, &serde_json::json!({ "$ref": reference })).clone();
        assert!(target.is_object(), "{reference} resolves to nothing");
    }
}

/// Every problem names what went wrong in words (`detail`), not only in a code: the
/// document makes it required and each kind of error's example carries one.
#[actix_web::test]
async fn every_problem_has_a_human_detail_in_the_document() {
    let (spec, _, _) = spec_of(Mocks::new()).await;
    let problem = &spec["components"]["schemas"]["Problem"];
    let required: Vec<&str> = problem["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains(&"detail"), "{problem}");
    let responses = spec["components"]["responses"].as_object().unwrap();
    let mut examples = 0;
    for (name, response) in responses {
        for (_, content) in response["content"].as_object().unwrap() {
            for (code, example) in content["examples"].as_object().unwrap() {
                let detail = example["value"]["detail"].as_str().unwrap_or_default();
                assert!(!detail.is_empty(), "{name} {code}: {example}");
                examples += 1;
            }
        }
    }
    assert!(examples > 20, "{examples}");
}
