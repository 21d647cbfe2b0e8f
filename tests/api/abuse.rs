//! Requests shaped to exhaust the server (issue 10's defects, one test each, numbered as
//! there): each gets a clear SCIM error or a bounded answer, never a crash or a 5xx other
//! than an overload 503, and the server goes on answering.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::*;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn patch_body(ops: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn or_terms(attr: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{attr} eq \"{i}\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// 1. A PATCH value filter of 15,000 terms (a 319 KB path) once overflowed a worker's
/// stack and aborted the process.
#[actix_web::test]
async fn d1_patch_value_filters_of_thousands_of_terms_are_refused_and_the_server_lives() {
    let h = Harness::new();
    let user = h.create_user("deep@example.com").await;
    let id = id_of(&user);
    let group = h.create_group("deep", &[&id]).await;
    for (path, target) in [
        (
            format!("emails[{}]", or_terms("value", 15_000)),
            format!("/scim/v2/Users/{id}"),
        ),
        (
            format!("members[{}]", or_terms("value", 15_000)),
            format!("/scim/v2/Groups/{}", id_of(&group)),
        ),
    ] {
        let r = h
            .req(actix_web::http::Method::PATCH, &target)
            .json(&patch_body(vec![json!({"op": "remove", "path": path})]))
            .send()
            .await;
        r.assert_error(400, Some("invalidFilter"), "bytes long; the limit is 4096");
    }
    // Under the length limit, the number of terms is what is refused.
    let r = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
        )
        .json(&patch_body(vec![
            json!({"op": "remove", "path": format!("emails[{}]", or_terms("value", 150))}),
        ]))
        .send()
        .await;
    r.assert_error(400, Some("invalidFilter"), "150 terms");
    assert_eq!(
        h.get(&format!("/scim/v2/Users/{id}")).send().await.status,
        200
    );
}

/// 2. Password hashing (19 MiB and a core's time each) once ran unbounded; now a tenant
/// holds at most its share of the hashing slots and the rest wait or get 503.
#[actix_web::test]
async fn d2_concurrent_password_hashing_is_bounded_and_overload_is_a_503() {
    let h = Harness::with_config(|c| {
        c.http.hashing_slots = Some(2);
        c.overload_wait_ms = 1;
    });
    let creates = (0..8).map(|i| {
        h.post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": format!("pw{i}@example.com"),
                   "password": "Correct-Horse-9"}),
        )
        .send()
    });
    let answers = join_all(creates).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(
        statuses.contains(&503),
        "one tenant held every slot: {statuses:?}"
    );
    for r in answers.iter().filter(|r| r.status == 503) {
        r.assert_error(503, None, "password hashing");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
}

/// 3. A list of big groups once loaded and rendered every member on an async worker.
#[actix_web::test]
async fn d3_group_lists_carry_members_only_when_asked_and_within_the_page_budget() {
    let h = Harness::with_config(|c| c.store.max_list_members = 6);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(&h.create_user(&format!("m{i}@example.com")).await));
    }
    let members: Vec<&str> = ids.iter().map(String::as_str).collect();
    for name in ["g1", "g2", "g3"] {
        h.create_group(name, &members).await;
    }
    let plain = h.get("/scim/v2/Groups").send().await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body["totalResults"], 3);
    for g in plain.body["Resources"].as_array().expect("list") {
        assert!(g.get("members").is_none(), "members unasked: {g}");
    }
    let asked = h.get("/scim/v2/Groups?attributes=members").send().await;
    assert_eq!(asked.status, 200);
    // 5 members, then 10 reach the budget of 6: the page ends after the second group.
    assert_eq!(asked.body["totalResults"], 3);
    assert_eq!(asked.body["itemsPerPage"], 2, "{}", asked.body);
    assert_eq!(
        asked.body["Resources"][0]["members"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    // Filtered, the first page is short for the budget, not for want of matches: all
    // three are counted.
    let filtered = h
        .get("/scim/v2/Groups?attributes=members&filter=displayName%20sw%20%22g%22")
        .send()
        .await;
    assert_eq!(filtered.body["totalResults"], 3, "{}", filtered.body);
    assert_eq!(filtered.body["itemsPerPage"], 2);
    let rest = h
        .get("/scim/v2/Groups?attributes=members&startIndex=3")
        .send()
        .await;
    assert_eq!(rest.body["itemsPerPage"], 1);
    // Cursor paging goes on from where the budget ended the page.
    let first = h
        .get("/scim/v2/Groups?attributes=members&cursor")
        .send()
        .await;
    assert_eq!(first.body["itemsPerPage"], 2);
    let next = first.body["nextCursor"]
        .as_str()
        .expect("nextCursor")
        .to_owned();
    let second = h
        .get(&format!("/scim/v2/Groups?attributes=members&cursor={next}"))
        .send()
        .await;
    assert_eq!(second.body["itemsPerPage"], 1);
    // One group by id still comes whole.
    let one = h
        .get(&format!(
            "/scim/v2/Groups/{}",
            id_of(&first.body["Resources"][0])
        ))
        .send()
        .await;
    assert_eq!(one.body["members"].as_array().map(Vec::len), Some(5));
}

/// 4. A tenant's plugins once failed, and failed open, because another tenant held every
/// plugin instance. Overload is a 503 whatever `on_failure` says.
#[actix_web::test]
async fn d4_plugin_overload_is_a_503_and_never_lets_a_fail_open_write_through() {
    let h = Harness::with_config(|c| {
        let mut slow = wat_plugin("loop");
        slow.on_failure = scimgate_plugins::FailMode::Open;
        slow.limits.deadline_ms = 300;
        c.plugins.specs = vec![slow];
        c.plugins.plugin_instances_per_tenant = Some(1);
        c.overload_wait_ms = 1;
    });
    let creates = (0..4).map(|i| {
        h.post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": format!("p{i}@example.com")}),
        )
        .send()
    });
    let answers = join_all(creates).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert!(statuses.contains(&503), "{statuses:?}");
    for r in answers.iter().filter(|r| r.status == 503) {
        r.assert_error(503, None, "plugin 'loop' not run");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    // Only the writes whose plugin ran (and failed open on its deadline) were stored.
    let stored = h.get("/scim/v2/Users").send().await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(stored.body["totalResults"], json!(created));
}

/// 5. Client text once went into errors, logs and audit rows whole (1.8 MB audit rows).
#[actix_web::test]
async fn d5_error_details_and_audit_rows_quote_client_text_cut_short() {
    let h = Harness::new();
    let id = id_of(&h.create_user("echo@example.com").await);
    let huge = "x".repeat(900_000);
    let r = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
        )
        .json(&patch_body(vec![
            json!({"op": "replace", "path": huge, "value": "v"}),
        ]))
        .send()
        .await;
    r.assert_error(400, Some("invalidPath"), "more bytes cut");
    assert!(r.body["detail"].as_str().expect("detail").len() < 1200);
    // 20,000 unknown members: applied as far as they exist (dialect rule), the audit
    // detail names ten and counts the rest.
    let group = id_of(&h.create_group("echo", &[]).await);
    let members: Vec<Value> = (0..20_000)
        .map(|i| json!({"value": format!("00000000-0000-0000-0000-{i:012}")}))
        .collect();
    let r = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("/scim/v2/Groups/{group}"),
        )
        .json(&patch_body(vec![
            json!({"op": "add", "path": "members", "value": members}),
        ]))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, 4).await;
    for row in &rows {
        let detail = row["detail"].as_str().unwrap_or_default();
        assert!(
            detail.len() < 1200,
            "audit detail of {} bytes",
            detail.len()
        );
    }
    assert!(
        rows.iter().any(|r| r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("and 19990 more"))),
        "{rows:?}"
    );
}

/// 6. A `.search` naming `emails.value` 60,000 times once ran seconds on the request thread.
#[actix_web::test]
async fn d6_attribute_lists_are_capped_and_deduplicated() {
    let h = Harness::new();
    h.create_user_with(
        json!({"schemas": [USER_SCHEMA], "userName": "proj@example.com",
        "emails": [{"value": "proj@example.com", "type": "work"}]}),
    )
    .await;
    let many: Vec<&str> = vec!["emails.value"; 60_000];
    let r = h
        .post(
            "/scim/v2/Users/.search",
            json!({"schemas": [SEARCH], "attributes": many}),
        )
        .send()
        .await;
    r.assert_error(
        400,
        Some("invalidValue"),
        "names 60000 paths; the limit is 200",
    );
    let few: Vec<&str> = vec!["emails.value"; 150];
    let r = h
        .post(
            "/scim/v2/Users/.search",
            json!({"schemas": [SEARCH], "attributes": few}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["Resources"][0]["emails"],
        json!([{"value": "proj@example.com"}])
    );
}

/// 7. Filtered PATCH operations once cost operations × values²; now values are tested
/// once per operation, within a budget per request.
#[actix_web::test]
async fn d7_patch_value_filters_have_a_budget_per_request() {
    let h = Harness::new();
    let emails: Vec<Value> = (0..1000)
        .map(|i| json!({"value": format!("u{i}@example.com"), "type": "other"}))
        .collect();
    let id = id_of(
        &h.create_user_with(
            json!({"schemas": [USER_SCHEMA], "userName": "many@example.com", "emails": emails}),
        )
        .await,
    );
    let ops = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"op": "replace", "path": format!("emails[value eq \"u{i}@example.com\"].type"), "value": "work"}))
            .collect()
    };
    let path = format!("/scim/v2/Users/{id}");
    let over = h
        .req(actix_web::http::Method::PATCH, &path)
        .json(&patch_body(ops(201)))
        .send()
        .await;
    over.assert_error(400, Some("tooMany"), "touch more than 200000 values");
    let within = h
        .req(actix_web::http::Method::PATCH, &path)
        .json(&patch_body(ops(200)))
        .send()
        .await;
    assert_eq!(within.status, 200, "{}", within.body);
    let work = within.body["emails"]
        .as_array()
        .expect("emails")
        .iter()
        .filter(|e| e["type"] == "work")
        .count();
    assert_eq!(work, 200);
}

/// 9. A filter of hundreds of `and` terms once cost O(n²) count queries.
#[actix_web::test]
async fn d9_filters_of_more_than_a_hundred_terms_are_refused_with_the_count() {
    let h = Harness::new();
    h.create_user("a@example.com").await;
    let terms: Vec<String> = (0..101).map(|_| "userName pr".to_owned()).collect();
    let filter = terms.join(" and ");
    let r = h
        .post(
            "/scim/v2/Users/.search",
            json!({"schemas": [SEARCH], "filter": filter}),
        )
        .send()
        .await;
    r.assert_error(400, Some("invalidFilter"), "101 terms");
    let ok: Vec<String> = (0..100).map(|_| "userName pr".to_owned()).collect();
    let r = h
        .post(
            "/scim/v2/Users/.search",
            json!({"schemas": [SEARCH], "filter": ok.join(" and ")}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1);
}

/// 10. A user with 16,000 emails once took seconds of the single writer's time.
#[actix_web::test]
async fn d10_multi_valued_attributes_are_capped_naming_the_attribute() {
    let h = Harness::with_config(|c| c.http.max_values_per_attribute = 50);
    let emails = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"value": format!("v{i}@example.com")}))
            .collect()
    };
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "cap@example.com", "emails": emails(51)}),
        )
        .send()
        .await;
    r.assert_error(
        400,
        Some("invalidValue"),
        "'emails' has 51 values; the limit is 50",
    );
    let id = id_of(
        &h.create_user_with(
            json!({"schemas": [USER_SCHEMA], "userName": "cap@example.com", "emails": emails(50)}),
        )
        .await,
    );
    let r = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
        )
        .json(&patch_body(vec![
            json!({"op": "add", "path": "emails", "value": [{"value": "one-more@example.com"}]}),
        ]))
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "has 51 values");
    // Duplicates are dropped in linear time before counting: 50 distinct, sent twice.
    let mut twice = emails(50);
    twice.extend(emails(50));
    let r = h
        .put(
            &format!("/scim/v2/Users/{id}"),
            json!({"schemas": [USER_SCHEMA], "userName": "cap@example.com", "emails": twice}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["emails"].as_array().map(Vec::len), Some(50));
}

/// The gate's refusal (a tenant past its share of requests in the works) is an answer like
/// any other: it carries the request id, and the refused write is audited.
#[actix_web::test]
async fn a_tenant_past_its_request_share_gets_an_audited_503_with_its_request_id() {
    let h = Harness::with_config(|c| {
        c.http.tenant_requests_in_flight = Some(1);
        c.overload_wait_ms = 1;
    });
    let creates = (0..6).map(|i| {
        h.post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": format!("gate{i}@example.com"),
                   "password": "Correct-Horse-9"}),
        )
        .send()
    });
    let answers = join_all(creates).await;
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(
        !refused.is_empty(),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &refused {
        r.assert_error(503, None, "the service is busy");
        let id = r.header("x-request-id").expect("request id").to_owned();
        assert!(r.body["detail"].as_str().unwrap_or_default().contains(&id));
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let admin = h.token_for("default", "scim:admin");
    let rows = audit_rows(&h, &admin, answers.len()).await;
    assert_eq!(
        rows.iter().filter(|r| r["status"] == 503).count(),
        refused.len(),
        "{rows:?}"
    );
}

/// Operations that each touch a long list once cost operations × length (46 s for one
/// request): every operation on a list counts its values against the PATCH's budget.
#[actix_web::test]
async fn many_operations_on_a_growing_list_hit_the_patch_budget() {
    let h = Harness::new();
    let id = id_of(&h.create_user("grow@example.com").await);
    let ops: Vec<Value> = (0..400)
        .map(|i| {
            let values: Vec<Value> = (0..48)
                .map(|j| json!({"value": format!("g{i}-{j}@example.com")}))
                .collect();
            json!({"op": "add", "path": "emails", "value": values})
        })
        .collect();
    let r = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
        )
        .json(&patch_body(ops))
        .send()
        .await;
    r.assert_error(400, Some("tooMany"), "touch more than 200000 values");
}

/// Every `$ref` and `location` repeats the base URL, which comes from `Host` when no
/// `public_base_url` is set: a 30 KB `Host` once made a group of 3,000 members a 90 MB
/// answer. A host that no URL could have is not believed.
#[actix_web::test]
async fn an_implausible_host_header_is_not_repeated_in_every_reference() {
    let h = Harness::new();
    let member = id_of(&h.create_user("ref@example.com").await);
    let group = id_of(&h.create_group("refs", &[&member]).await);
    let long = format!("{}.example.com", "x".repeat(30_000));
    let r = h
        .get(&format!("/scim/v2/Groups/{group}"))
        .header("host", &long)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let text = r.body.to_string();
    assert!(text.len() < 2000, "{} bytes", text.len());
    assert!(!text.contains("xxxx"));
    let fine = h
        .get(&format!("/scim/v2/Groups/{group}"))
        .header("host", "scim.example.com:8443")
        .send()
        .await;
    assert_eq!(
        fine.body["meta"]["location"],
        json!(format!(
            "http://scim.example.com:8443/scim/v2/Groups/{group}"
        ))
    );
}
