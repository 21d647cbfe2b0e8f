//! `/metrics`: who may read it, and that requests, plugin calls and store counters show.

use serde_json::{Value, json};

use crate::common::*;

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_web::test]
async fn metrics_need_the_metrics_or_admin_scope() {
    let h = Harness::new();
    h.get("/metrics")
        .no_token()
        .send()
        .await
        .assert_error(401, None, "Authorization: Bearer");
    let reader = h.token_for("default", "scim:read scim:write");
    h.get("/metrics")
        .token(&reader)
        .send()
        .await
        .assert_error(403, None, "scim:metrics");
    for scope in ["scim:metrics", "scim:admin"] {
        let r = h
            .get("/metrics")
            .token(&h.token_for("default", scope))
            .send()
            .await;
        assert_eq!(r.status, 200, "{scope}");
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/openmetrics-text"))
        );
    }
}

#[actix_web::test]
async fn requests_plugin_calls_and_store_counters_are_counted() {
    let h = Harness::with_config(|c| {
        c.plugins.specs = vec![wat_plugin("accept"), wat_plugin("reject")];
        // No retention pruning, whose delete would count as a store write.
        c.store.audit_retention_days = 0;
        c.store.events_retention_days = 0;
    });
    // Reject refuses users; accept runs first on each.
    for n in 0..3 {
        h.post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": format!("u{n}")}),
        )
        .send()
        .await;
    }
    let missing = h.get("/scim/v2/Users/no-such-id").send().await;
    assert_eq!(missing.status, 404);
    let group = h
        .post(
            "/scim/v2/Groups",
            json!({"schemas": [GROUP_SCHEMA], "displayName": "g"}),
        )
        .send()
        .await;
    assert_eq!(group.status, 422);

    let r = h
        .get("/metrics")
        .token(&h.token_for("default", "scim:metrics"))
        .send()
        .await;
    let Value::String(text) = r.body else {
        panic!("metrics are text: {}", r.body)
    };
    let count =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));
    assert_eq!(
        count(r#"scimgate_http_requests_total{method="POST",route="/scim/v2/Users",status="422"}"#),
        3.0
    );
    assert_eq!(
        count(
            r#"scimgate_http_requests_total{method="GET",route="/scim/v2/Users/{id}",status="404"}"#
        ),
        1.0,
        "the route pattern, never the id"
    );
    assert_eq!(
        count(
            r#"scimgate_http_request_duration_seconds_count{method="POST",route="/scim/v2/Users"}"#
        ),
        3.0
    );
    // Both plugins run on users and on groups: accept 3 + 1, reject 3 + 1.
    assert_eq!(
        count(r#"scimgate_plugin_calls_total{plugin="accept",outcome="accept"}"#),
        4.0
    );
    assert_eq!(
        count(r#"scimgate_plugin_calls_total{plugin="reject",outcome="reject"}"#),
        4.0
    );
    assert_eq!(
        count(r#"scimgate_plugin_call_duration_seconds_count{plugin="reject"}"#),
        4.0
    );
    assert!(!text.contains("no-such-id"));
    assert!(count("scimgate_store_read_connections") >= 1.0);
    assert!(
        count("scimgate_store_read_checkouts_total") >= 1.0,
        "the GET read"
    );
    assert!(count("scimgate_store_read_wait_seconds_total") >= 0.0);
    // Every write was refused: what the store wrote is the four audit rows, committed
    // with the writer's next batch.
    let writes = count("scimgate_store_writes_total");
    assert!(writes <= 4.0, "{writes}");
    let mut writes_now = writes;
    for _ in 0..100 {
        if writes_now == 4.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = h
            .get("/metrics")
            .token(&h.token_for("default", "scim:metrics"))
            .send()
            .await;
        writes_now = sample(
            again.body.as_str().unwrap_or_default(),
            "scimgate_store_writes_total",
        )
        .unwrap_or_default();
    }
    assert_eq!(writes_now, 4.0);
}

#[actix_web::test]
async fn plugin_failures_are_counted() {
    let h = Harness::with_config(|c| c.plugins.specs = vec![wat_plugin("trap")]);
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "t"}),
        )
        .send()
        .await;
    assert_eq!(r.status, 500);
    let text = h
        .get("/metrics")
        .token(&h.token_for("default", "scim:admin"))
        .send()
        .await
        .body;
    let text = text.as_str().unwrap_or_default();
    assert_eq!(
        sample(
            text,
            r#"scimgate_plugin_calls_total{plugin="trap",outcome="failed"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
