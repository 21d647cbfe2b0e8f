//! Replays the request shapes Entra ID and Okta send (tests/fixtures/idp, from shared/scim)
//! against the real app, end to end, and checks the state they leave.

use actix_web::http::Method;
use serde_json::{Value, json};

use crate::common::*;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/idp/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn substitute(text: &str, user_id: &str, group_id: &str) -> String {
    text.replace("{userId}", user_id)
        .replace("{groupId}", group_id)
}

async fn replay(h: &Harness, flow: &str) -> (usize, String, String) {
    let (mut user_id, mut group_id) = (String::new(), String::new());
    let mut previous_body = Value::Null;
    let mut replayed = 0;
    for step in load(flow)["steps"].as_array().expect("steps") {
        let name = step["step"].as_str().unwrap_or_default();
        let method = step["method"].as_str().expect("method");
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
    (replayed, user_id, group_id)
}

#[actix_web::test]
async fn entra_flow_end_to_end() {
    let h = Harness::new();
    let (steps, user, group) = replay(&h, "entra-flow.json").await;
    assert_eq!(steps, 10);
    // The user was deleted last; the group survives, empty after the value-list remove.
    h.get(&format!("/scim/v2/Users/{user}"))
        .send()
        .await
        .assert_error(404, None, "no User");
    let g = h.get(&format!("/scim/v2/Groups/{group}")).send().await;
    assert_eq!(g.status, 200);
    assert!(g.body.get("members").is_none(), "{}", g.body);
}

#[actix_web::test]
async fn entra_patches_leave_what_entra_meant() {
    let h = Harness::new();
    let flow = load("entra-flow.json");
    let steps = flow["steps"].as_array().expect("steps");
    let created = h.create_user_with(steps[1]["body"].clone()).await;
    let path = format!("/scim/v2/Users/{}", id_of(&created));
    for (i, step) in steps.iter().enumerate().take(5).skip(2) {
        let r = h.req(Method::PATCH, &path).json(&step["body"]).send().await;
        assert_eq!(r.status, 200, "step {i}: {}", r.body);
    }
    let u = h.get(&path).send().await.body;
    assert_eq!(u["emails"][0]["value"], "updatedEmail@example.com");
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(u["active"], false);
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        "26118915-6090-4610-87e4-49d8ca9f808d"
    );
}

#[actix_web::test]
async fn okta_flow_end_to_end() {
    let h = Harness::new();
    let (steps, user, group) = replay(&h, "okta-flow.json").await;
    assert_eq!(steps, 10);
    let g = h.get(&format!("/scim/v2/Groups/{group}")).send().await.body;
    assert_eq!(g["displayName"], "Test SCIMv2 renamed");
    assert!(g.get("members").is_none(), "added then removed: {g}");
    let u = h.get(&format!("/scim/v2/Users/{user}")).send().await.body;
    assert_eq!(
        (u["active"].clone(), u["name"]["givenName"].clone()),
        (json!(true), json!("Another"))
    );
}
