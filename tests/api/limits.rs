//! Rate limits (429 as problem+json with Retry-After, per token and tenant, per client
//! before authentication) and IP allowlists with and without a trusted proxy.

use scimgate::config::TenantConfig;
use scimgate_http::Limit;
use serde_json::json;

use crate::common::*;

fn limit(requests_per_second: u64, burst: u32) -> Limit {
    Limit {
        requests_per_second,
        burst,
    }
}

#[actix_web::test]
async fn the_429_has_its_exact_body_and_headers() {
    let h = Harness::with_config(|c| c.http.rate_limit.per_token = limit(1, 2));
    let t = h.token_for("default", "scim:read");
    let first = h.get("/scim/v2/Users").token(&t).send().await;
    assert_eq!(first.status, 200);
    // draft-ietf-httpapi-ratelimit-headers-11: the policy (quota 2, refilled in 2 s) and
    // what is left of it; no x-ratelimit-* unless configured.
    assert_eq!(first.header("ratelimit-policy"), Some("\"token\";q=2;w=2"));
    assert_eq!(first.header("ratelimit"), Some("\"token\";r=1;t=1"));
    assert_eq!(first.header("x-ratelimit-limit"), None);
    let second = h.get("/scim/v2/Users").token(&t).send().await;
    assert_eq!(
        (second.status, second.header("ratelimit")),
        (200, Some("\"token\";r=0;t=2"))
    );
    let refused = h.get("/scim/v2/Users").token(&t).send().await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("ratelimit"), Some("\"token\";r=0;t=1"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"token\";q=2;w=2")
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), None);
    assert_eq!(
        refused.body,
        json!({
            "type": "https://www.rfc-editor.org/rfc/rfc6585#section-4",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "rate limit of 1 requests per second (burst 2) exceeded for tenant 'default', subject 'test'; retry in 1 s"
        })
    );
    let metrics = h
        .get("/metrics")
        .token(&h.token_for("default", "scim:metrics"))
        .send()
        .await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or_default()
            .contains("scimgate_rate_limited_requests_total{limiter=\"token\"} 1"),
        "{}",
        metrics.body
    );
}

/// `rate_limit.legacy_headers` adds the `x-ratelimit-*` headers for clients that read
/// them, on answers and on the 429.
#[actix_web::test]
async fn legacy_rate_limit_headers_are_there_when_configured() {
    let h = Harness::with_config(|c| {
        c.http.rate_limit.per_token = limit(1, 1);
        c.http.rate_limit.legacy_headers = true;
    });
    let t = h.token_for("default", "scim:read");
    let first = h.get("/scim/v2/Users").token(&t).send().await;
    assert_eq!(
        (
            first.header("x-ratelimit-limit"),
            first.header("x-ratelimit-remaining")
        ),
        (Some("1"), Some("0"))
    );
    assert!(first.header("ratelimit").is_some());
    let refused = h.get("/scim/v2/Users").token(&t).send().await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        (
            refused.header("x-ratelimit-after"),
            refused.header("x-ratelimit-remaining")
        ),
        (Some("1"), Some("0"))
    );
}

#[actix_web::test]
async fn a_flooding_tenant_does_not_limit_another_and_tenants_may_have_their_own_rate() {
    let h = Harness::with_config(|c| {
        c.http.rate_limit.per_token = limit(1, 3);
        c.tenants.insert(
            "big".into(),
            TenantConfig {
                rate_limit: Some(limit(1000, 1000)),
                ..Default::default()
            },
        );
    });
    let flood = h.token_for("flood", "scim:read");
    let calm = h.token_for("calm", "scim:read");
    let big = h.token_for("big", "scim:read");
    let mut refused = 0;
    for _ in 0..10 {
        if h.get("/scim/v2/Users").token(&flood).send().await.status == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 7, "burst 3, then refused");
    assert_eq!(
        h.get("/scim/v2/Users").token(&calm).send().await.status,
        200
    );
    for _ in 0..20 {
        let r = h.get("/scim/v2/Users").token(&big).send().await;
        assert_eq!(r.status, 200, "the tenant's own rate");
        assert_eq!(r.header("ratelimit-policy"), Some("\"token\";q=1000;w=1"));
    }
}

#[actix_web::test]
async fn the_client_limit_applies_before_authentication_and_not_to_health() {
    let h = Harness::with_config(|c| c.http.rate_limit.per_client = limit(1, 2));
    for _ in 0..2 {
        let r = h
            .get("/scim/v2/Users")
            .no_token()
            .peer("198.51.100.7:5000")
            .send()
            .await;
        assert_eq!(r.status, 401);
    }
    let r = h
        .get("/scim/v2/Users")
        .no_token()
        .peer("198.51.100.7:5000")
        .send()
        .await;
    assert_eq!(r.status, 429, "refused before the token is looked at");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("client 198.51.100.7")
    );
    let other = h
        .get("/scim/v2/Users")
        .no_token()
        .peer("198.51.100.8:5000")
        .send()
        .await;
    assert_eq!(other.status, 401, "another client has its own budget");
    for _ in 0..10 {
        let r = h
            .get("/healthz")
            .no_token()
            .peer("198.51.100.7:5000")
            .send()
            .await;
        assert_eq!(r.status, 200);
    }
}

#[actix_web::test]
async fn allowlists_refuse_other_addresses_before_authentication() {
    let h = Harness::with_config(|c| {
        c.http.network.allow_from = vec![
            "10.0.0.0/8".parse().expect("net"),
            "2001:db8::/32".parse().expect("net"),
        ];
        c.http.network.trusted_proxies = vec!["192.168.0.1/32".parse().expect("net")];
        c.tenants.insert(
            "acme".into(),
            TenantConfig {
                allow_from: vec!["10.5.0.0/16".parse().expect("net")],
                ..Default::default()
            },
        );
    });
    let t = h.token_for("default", "scim:read");
    h.get("/scim/v2/Users")
        .no_token()
        .peer("203.0.113.5:1000")
        .send()
        .await
        .assert_error(403, None, "requests from 203.0.113.5 are not allowed");
    let r = h
        .get("/scim/v2/Users")
        .no_token()
        .peer("10.1.2.3:1000")
        .send()
        .await;
    assert_eq!(r.status, 401, "allowed through to authentication");
    let r = h
        .get("/scim/v2/Users")
        .token(&t)
        .peer("[2001:db8::5]:1000")
        .send()
        .await;
    assert_eq!(r.status, 200, "IPv6");
    // Through the trusted proxy, the forwarded client counts.
    let r = h
        .get("/scim/v2/Users")
        .token(&t)
        .peer("192.168.0.1:1000")
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await;
    assert_eq!(r.status, 200);
    h.get("/scim/v2/Users")
        .token(&t)
        .peer("192.168.0.1:1000")
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .assert_error(403, None, "203.0.113.5");
    // From an untrusted peer, X-Forwarded-For is ignored.
    h.get("/scim/v2/Users")
        .token(&t)
        .peer("203.0.113.5:1000")
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .assert_error(403, None, "203.0.113.5");
    // The tenant's own list, on top.
    let acme = h.token_for("acme", "scim:read");
    h.get("/scim/v2/Users")
        .token(&acme)
        .peer("10.1.2.3:1000")
        .send()
        .await
        .assert_error(403, None, "tenant 'acme'");
    let r = h
        .get("/scim/v2/Users")
        .token(&acme)
        .peer("10.5.1.1:1000")
        .send()
        .await;
    assert_eq!(r.status, 200);
    let r = h
        .get("/healthz")
        .no_token()
        .peer("203.0.113.5:1000")
        .send()
        .await;
    assert_eq!(r.status, 200, "health answers everyone");
}

#[actix_web::test]
async fn forwarded_host_shapes_locations_only_through_a_trusted_proxy() {
    let h = Harness::with_config(|c| {
        c.http.network.trusted_proxies = vec!["192.168.0.1/32".parse().expect("net")]
    });
    let create = |peer: &'static str, name: &'static str| {
        h.post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": name}),
        )
        .peer(peer)
        .header("host", "scim.internal:8080")
        .header("x-forwarded-host", "scim.example.com")
        .header("x-forwarded-proto", "https")
        .send()
    };
    let direct = create("203.0.113.5:1000", "direct").await;
    assert!(
        direct.body["meta"]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://scim.internal:8080/scim/v2/Users/")),
        "{}",
        direct.body["meta"]
    );
    let proxied = create("192.168.0.1:1000", "proxied").await;
    assert!(
        proxied.body["meta"]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://scim.example.com/scim/v2/Users/")),
        "{}",
        proxied.body["meta"]
    );
}
