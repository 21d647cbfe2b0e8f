//! Replays the request shapes Entra ID and Okta send (tests/fixtures/idp, from shared/scim)
//! against the real app. PATCH steps wait for the PATCH issue and are skipped here.

use actix_web::http::Method;
use serde_json::Value;

use crate::common::*;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/idp/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn substitute(text: &str, user_id: &str, group_id: &str) -> String {
    text.replace("{userId}", user_id)
        .replace("{groupId}", group_id)
}

async fn replay(flow: &str) -> usize {
    let h = Harness::new();
    let (mut user_id, mut group_id) = (String::new(), String::new());
    let mut previous_body = Value::Null;
    let mut replayed = 0;
    for step in load(flow)["steps"].as_array().expect("steps") {
        let name = step["step"].as_str().unwrap_or_default();
        let method = step["method"].as_str().expect("method");
        if method == "PATCH" {
            continue;
        }
        let path = substitute(step["path"].as_str().expect("path"), &user_id, &group_id)
            .replace(' ', "%20")
            .replace('"', "%22");
        let mut body = step.get("body").cloned().unwrap_or(Value::Null);
        if body.as_str() == Some("same as the previous step") {
            body = previous_body.clone();
        }
        let body: Value = serde_json::from_str(&substitute(&body.to_string(), &user_id, &group_id))
            .expect("body");
        let mut req = h.req(
            Method::from_bytes(method.as_bytes()).expect("method"),
            &format!("/scim/v2{path}"),
        );
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await;
        let expect = &step["expect"];
        let allowed: Vec<u64> = match &expect["status"] {
            Value::Array(list) => list.iter().filter_map(Value::as_u64).collect(),
            v => v.as_u64().into_iter().collect(),
        };
        assert!(
            allowed.contains(&u64::from(r.status)),
            "{flow} '{name}': {} {}",
            r.status,
            r.body
        );
        for key in ["totalResults", "Resources", "active", "scimType"] {
            if let Some(want) = expect.get(key) {
                assert_eq!(&r.body[key], want, "{flow} '{name}': {key}");
            }
        }
        if expect.get("password").is_some() {
            assert!(
                r.body.get("password").is_none(),
                "{flow} '{name}': password returned"
            );
        }
        if method == "POST" && r.status == 201 {
            match r.body["meta"]["resourceType"].as_str() {
                Some("User") => user_id = id_of(&r.body),
                Some("Group") => group_id = id_of(&r.body),
                _ => {}
            }
        }
        previous_body = body;
        replayed += 1;
    }
    replayed
}

#[actix_web::test]
async fn entra_flow_without_patch() {
    assert_eq!(replay("entra-flow.json").await, 5);
}

#[actix_web::test]
async fn okta_flow_without_patch() {
    assert_eq!(replay("okta-flow.json").await, 6);
}
