use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scimgate_http::{SigningKey, TokenRequest};
use serde_json::json;

use crate::common::*;

fn request(tenant: &str, scope: &str, ttl: u64) -> TokenRequest {
    TokenRequest {
        subject: "t".into(),
        tenants: vec![tenant.into()],
        scope: scope.into(),
        ttl_secs: ttl,
    }
}

#[actix_web::test]
async fn health_endpoints_need_no_token() {
    let h = Harness::new();
    assert_eq!(h.get("/healthz").no_token().send().await.status, 200);
    let ready = h.get("/readyz").no_token().send().await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
}

#[actix_web::test]
async fn every_scim_route_needs_a_valid_bearer_token() {
    let h = Harness::new();
    let paths = [
        "/scim/v2/Users",
        "/scim/v2/Users/x",
        "/scim/v2/Groups",
        "/scim/v2/Groups/x",
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/ResourceTypes/User",
        "/scim/v2/Schemas",
        "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        "/scim/v2/NoSuchThing",
    ];
    for path in paths {
        let r = h.get(path).no_token().send().await;
        r.assert_error(401, None, "Bearer");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"scimgate\""),
            "{path}"
        );
    }
    let r = h
        .get("/scim/v2/Users")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .no_token()
        .send()
        .await;
    r.assert_error(401, None, "Bearer");
}

#[actix_web::test]
async fn forged_expired_early_and_unsigned_tokens_are_401() {
    let h = Harness::new();
    let key = SigningKey::load_or_create(h.data_dir()).expect("key");
    let expired = key
        .mint(&request("default", "scim:read", 60), now() - 3600)
        .expect("mint")
        .0;
    let early = key
        .mint(&request("default", "scim:read", 7200), now() + 3600)
        .expect("mint")
        .0;
    let foreign = SigningKey::from_secret(&[9u8; 32])
        .expect("key")
        .mint(&request("default", "scim:read", 60), now())
        .expect("mint")
        .0;
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"sub": "x", "tenant": "default", "scope": "scim:read", "exp": now() + 600})
            .to_string(),
    );
    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let valid = key
        .mint(&request("default", "scim:read", 60), now())
        .expect("mint")
        .0;
    let mut parts: Vec<&str> = valid.split('.').collect();
    let tampered_payload = URL_SAFE_NO_PAD.encode(
        json!({"sub": "t", "tenant": "other", "scope": "scim:read", "exp": now() + 600})
            .to_string(),
    );
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    for (label, token) in [
        ("expired", expired),
        ("nbf", early),
        ("foreign", foreign),
        ("none", unsigned),
        ("tampered", tampered),
        ("junk", "abc".into()),
    ] {
        let r = h.get("/scim/v2/Users").token(&token).send().await;
        assert_eq!(r.status, 401, "{label}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"scimgate\", error=\"invalid_token\""),
            "{label}"
        );
    }
    assert_eq!(
        h.get("/scim/v2/Users").token(&valid).send().await.status,
        200
    );
}

#[actix_web::test]
async fn scopes_split_reads_from_writes() {
    let h = Harness::new();
    let reader = h.token_for("default", "scim:read");
    let writer = h.token_for("default", "scim:write");
    let body = json!({"schemas": [USER_SCHEMA], "userName": "x"});
    h.post("/scim/v2/Users", body.clone())
        .token(&reader)
        .send()
        .await
        .assert_error(403, None, "scim:write");
    h.get("/scim/v2/Users")
        .token(&writer)
        .send()
        .await
        .assert_error(403, None, "scim:read");
    assert_eq!(
        h.post("/scim/v2/Users", body)
            .token(&writer)
            .send()
            .await
            .status,
        201
    );
    assert_eq!(
        h.get("/scim/v2/Users").token(&reader).send().await.status,
        200
    );
}

#[actix_web::test]
async fn tenants_never_see_each_other() {
    let h = Harness::new();
    let acme = h.token_for("acme", "scim:read scim:write");
    let globex = h.token_for("globex", "scim:read scim:write");
    let body = json!({"schemas": [USER_SCHEMA], "userName": "shared.name", "externalId": "e1"});
    let a = h
        .post("/scim/v2/Users", body.clone())
        .token(&acme)
        .send()
        .await;
    assert_eq!(a.status, 201);
    let b = h
        .post("/scim/v2/Users", body.clone())
        .token(&globex)
        .send()
        .await;
    assert_eq!(b.status, 201, "uniqueness is per tenant");
    let a_path = format!("/scim/v2/Users/{}", id_of(&a.body));

    h.get(&a_path)
        .token(&globex)
        .send()
        .await
        .assert_error(404, None, "no User");
    let put = json!({"schemas": [USER_SCHEMA], "userName": "hijack"});
    h.put(&a_path, put)
        .token(&globex)
        .send()
        .await
        .assert_error(404, None, "no User");
    h.delete(&a_path)
        .token(&globex)
        .send()
        .await
        .assert_error(404, None, "no User");
    let listed = h
        .get("/scim/v2/Users?filter=externalId%20eq%20%22e1%22")
        .token(&globex)
        .send()
        .await;
    assert_eq!(listed.body["totalResults"], 1);
    assert_eq!(listed.body["Resources"][0]["id"], b.body["id"]);
    let by_id = h
        .get(&format!(
            "/scim/v2/Users?filter=id%20eq%20%22{}%22",
            id_of(&a.body)
        ))
        .token(&globex)
        .send()
        .await;
    assert_eq!(by_id.body["totalResults"], 0);
    let g = h
        .post("/scim/v2/Groups", json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"value": id_of(&a.body)}]}))
        .token(&globex)
        .send()
        .await;
    g.assert_error(400, Some("invalidValue"), &id_of(&a.body));
    assert_eq!(
        h.get(&a_path).token(&acme).send().await.body,
        a.body,
        "untouched"
    );
}
