use serde_json::{Value, json};

use crate::common::*;

#[actix_web::test]
async fn create_returns_201_with_location_etag_and_meta() {
    let h = Harness::new();
    let r = h
        .post("/scim/v2/Users", json!({"schemas": [USER_SCHEMA], "userName": "bjensen", "name": {"givenName": "Barbara"}}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = id_of(&r.body);
    let location = format!("http://localhost:8080/scim/v2/Users/{id}");
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let meta = &r.body["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["location"], location);
    assert_eq!(meta["version"], "W/\"1\"");
    assert_eq!(meta["created"], meta["lastModified"]);
    assert!(
        meta["created"]
            .as_str()
            .is_some_and(|c| c.ends_with('Z') && c.len() == 24),
        "{meta}"
    );
    assert_eq!(r.body["schemas"], json!([USER_SCHEMA]));
    assert_eq!(r.body["name"], json!({"givenName": "Barbara"}));
}

#[actix_web::test]
async fn get_returns_the_stored_user_and_304_when_current() {
    let h = Harness::new();
    let created = h.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id_of(&created));
    let r = h.get(&path).send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, created);
    assert_eq!(r.header("etag"), Some("W/\"1\""));

    let r = h.get(&path).header("if-none-match", "W/\"1\"").send().await;
    assert_eq!(r.status, 304);
    let r = h.get(&path).header("if-none-match", "W/\"0\"").send().await;
    assert_eq!(r.status, 200);

    h.get("/scim/v2/Users/does-not-exist")
        .send()
        .await
        .assert_error(404, None, "does-not-exist");
}

#[actix_web::test]
async fn public_base_url_sets_locations() {
    let h =
        Harness::with_config(|c| c.http.public_base_url = Some("https://scim.example.com/".into()));
    let created = h.create_user("bjensen").await;
    let expected = format!("https://scim.example.com/scim/v2/Users/{}", id_of(&created));
    assert_eq!(created["meta"]["location"], expected);
}

#[actix_web::test]
async fn read_only_input_is_ignored_and_names_come_back_canonical() {
    let h = Harness::new();
    let r = h
        .post(
            "/scim/v2/Users",
            json!({
                "schemas": [USER_SCHEMA],
                "id": "client-chosen",
                "UserName": "bjensen",
                "meta": {"resourceType": "User", "created": "2001-01-01T00:00:00Z"},
                "groups": [{"value": "x"}],
                "EMAILS": [{"VALUE": "b@example.com", "Primary": true}],
            }),
        )
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_ne!(r.body["id"], "client-chosen");
    assert_eq!(r.body["userName"], "bjensen");
    assert_eq!(
        r.body["emails"],
        json!([{"value": "b@example.com", "primary": true}])
    );
    assert_ne!(r.body["meta"]["created"], "2001-01-01T00:00:00Z");
    assert!(r.body.get("groups").is_none());
}

#[actix_web::test]
async fn password_is_never_returned_and_only_a_hash_is_stored() {
    let h = Harness::new();
    let created = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "okta.user", "password": "1mz050nq-secret"}))
        .await;
    assert!(created.get("password").is_none());
    let fetched = h
        .get(&format!("/scim/v2/Users/{}", id_of(&created)))
        .send()
        .await;
    assert!(fetched.body.get("password").is_none());
    let asked = h
        .get(&format!(
            "/scim/v2/Users/{}?attributes=password",
            id_of(&created)
        ))
        .send()
        .await;
    assert!(
        asked.body.get("password").is_none(),
        "returned: never wins over attributes="
    );

    let hash = h.password_hash(&id_of(&created)).expect("a hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    for entry in std::fs::read_dir(h.data_dir()).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(
            !bytes.windows(15).any(|w| w == b"1mz050nq-secret"),
            "cleartext password on disk"
        );
    }
}

#[actix_web::test]
async fn password_can_be_discarded_by_configuration() {
    let h = Harness::with_config(|c| {
        c.http.password_storage = scimgate::config::PasswordStorage::Discard
    });
    let created = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "u", "password": "pw"}))
        .await;
    assert_eq!(h.password_hash(&id_of(&created)), None);
}

#[actix_web::test]
async fn user_name_is_unique_case_insensitively_beyond_ascii() {
    let h = Harness::new();
    h.create_user("Émile.Zola").await;
    let r = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "éMILE.zOLA"}),
        )
        .send()
        .await;
    r.assert_error(409, Some("uniqueness"), "éMILE.zOLA");
    h.create_user("Emile.Zola").await; // E is not É
}

#[actix_web::test]
async fn put_replaces_the_whole_resource_and_bumps_the_version() {
    let h = Harness::new();
    let created = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "bjensen", "title": "Tour Guide", "active": true}))
        .await;
    let path = format!("/scim/v2/Users/{}", id_of(&created));
    let r = h
        .put(
            &path,
            json!({"schemas": [USER_SCHEMA], "userName": "bjensen", "active": false}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert!(
        r.body.get("title").is_none(),
        "PUT clears what it leaves out"
    );
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    assert_eq!(r.body["meta"]["created"], created["meta"]["created"]);
    assert_eq!(h.get(&path).send().await.body, r.body);

    let missing = h
        .put(
            "/scim/v2/Users/nope",
            json!({"schemas": [USER_SCHEMA], "userName": "x"}),
        )
        .send()
        .await;
    missing.assert_error(404, None, "nope");
}

#[actix_web::test]
async fn put_cannot_take_another_users_name() {
    let h = Harness::new();
    h.create_user("alice").await;
    let bob = h.create_user("bob").await;
    let path = format!("/scim/v2/Users/{}", id_of(&bob));
    let r = h
        .put(
            &path,
            json!({"schemas": [USER_SCHEMA], "userName": "ALICE"}),
        )
        .send()
        .await;
    r.assert_error(409, Some("uniqueness"), "ALICE");
    assert_eq!(
        h.get(&path).send().await.body,
        bob,
        "a refused PUT changes nothing"
    );
}

#[actix_web::test]
async fn if_match_guards_put_and_delete() {
    let h = Harness::new();
    let created = h.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id_of(&created));
    let body = json!({"schemas": [USER_SCHEMA], "userName": "bjensen", "nickName": "Babs"});
    h.put(&path, body.clone())
        .header("if-match", "W/\"7\"")
        .send()
        .await
        .assert_error(412, None, "W/\"1\"");
    assert_eq!(h.get(&path).send().await.body, created);
    let ok = h
        .put(&path, body.clone())
        .header("if-match", "W/\"1\"")
        .send()
        .await;
    assert_eq!(ok.status, 200);
    h.delete(&path)
        .header("if-match", "W/\"1\"")
        .send()
        .await
        .assert_error(412, None, "W/\"2\"");
    assert_eq!(
        h.delete(&path)
            .header("if-match", "\"2\"")
            .send()
            .await
            .status,
        204
    );
}

#[actix_web::test]
async fn delete_returns_204_then_404() {
    let h = Harness::new();
    let created = h.create_user("bjensen").await;
    let path = format!("/scim/v2/Users/{}", id_of(&created));
    let r = h.delete(&path).send().await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, Value::Null);
    h.get(&path).send().await.assert_error(404, None, "no User");
    h.delete(&path)
        .send()
        .await
        .assert_error(404, None, "no User");
}

#[actix_web::test]
async fn list_pages_with_exact_totals() {
    let h = Harness::new();
    for i in 0..5 {
        h.create_user(&format!("user{i}")).await;
    }
    let page = h.get("/scim/v2/Users?startIndex=2&count=2").send().await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(page.body["totalResults"], 5);
    assert_eq!(page.body["itemsPerPage"], 2);
    assert_eq!(page.body["startIndex"], 2);
    let names: Vec<&str> = page.body["Resources"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["userName"].as_str())
        .collect();
    assert_eq!(names, ["user1", "user2"]);

    let zero = h.get("/scim/v2/Users?count=0").send().await;
    assert_eq!(
        (
            zero.body["totalResults"].clone(),
            zero.body["Resources"].clone()
        ),
        (json!(5), json!([]))
    );
    let negative = h.get("/scim/v2/Users?count=-3&startIndex=0").send().await;
    assert_eq!(
        (
            negative.body["itemsPerPage"].clone(),
            negative.body["startIndex"].clone()
        ),
        (json!(0), json!(1))
    );
    let past_end = h.get("/scim/v2/Users?startIndex=9").send().await;
    assert_eq!(
        (
            past_end.body["totalResults"].clone(),
            past_end.body["itemsPerPage"].clone()
        ),
        (json!(5), json!(0))
    );
    h.get("/scim/v2/Users?count=ten")
        .send()
        .await
        .assert_error(400, Some("invalidValue"), "count");
}

#[actix_web::test]
async fn count_is_capped_at_max_results() {
    let h = Harness::with_config(|c| c.http.max_results = 2);
    for i in 0..3 {
        h.create_user(&format!("user{i}")).await;
    }
    let page = h.get("/scim/v2/Users?count=50").send().await;
    assert_eq!(
        (
            page.body["totalResults"].clone(),
            page.body["itemsPerPage"].clone()
        ),
        (json!(3), json!(2))
    );
    let default = h.get("/scim/v2/Users").send().await;
    assert_eq!(default.body["itemsPerPage"], 2);
}

#[actix_web::test]
async fn filters_on_user_name_and_external_id() {
    let h = Harness::new();
    h.create_user_with(
        json!({"schemas": [USER_SCHEMA], "userName": "Straße", "externalId": "AbC-1"}),
    )
    .await;
    h.create_user("other").await;
    let total = |r: &Resp| r.body["totalResults"].clone();
    assert_eq!(
        total(
            &h.get("/scim/v2/Users?filter=userName%20eq%20%22STRASSE%22")
                .send()
                .await
        ),
        json!(1)
    );
    assert_eq!(
        total(
            &h.get("/scim/v2/Users?filter=externalId%20eq%20%22AbC-1%22")
                .send()
                .await
        ),
        json!(1)
    );
    assert_eq!(
        total(
            &h.get("/scim/v2/Users?filter=externalId%20eq%20%22abc-1%22")
                .send()
                .await
        ),
        json!(0),
        "externalId is caseExact"
    );
    assert_eq!(
        total(
            &h.get("/scim/v2/Users?filter=userName%20eq%20%22nobody%22")
                .send()
                .await
        ),
        json!(0)
    );
}

#[actix_web::test]
async fn bad_filters_are_400_invalid_filter() {
    let h = Harness::new();
    let rows = [
        ("shoeSize%20eq%20%22x%22", "shoeSize"),
        ("userName%20like%20%22x%22", "like"),
        ("userName%20eq%20bjensen", "position"),
        (
            "active%20gt%20true",
            "boolean attribute 'active' cannot be compared with 'gt'",
        ),
        (
            "meta.location%20eq%20%22x%22",
            "'meta.location' cannot be used in a filter",
        ),
        (
            "((((((((((((((((((title%20pr))))))))))))))))))",
            "deeper than 16",
        ),
    ];
    for (filter, needle) in rows {
        h.get(&format!("/scim/v2/Users?filter={filter}"))
            .send()
            .await
            .assert_error(400, Some("invalidFilter"), needle);
    }
}

#[actix_web::test]
async fn attributes_and_excluded_attributes_shape_the_answer() {
    let h = Harness::new();
    let created = h
        .create_user_with(json!({
            "schemas": [USER_SCHEMA, ENTERPRISE],
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            ENTERPRISE: {"department": "Tours", "employeeNumber": "701984"},
        }))
        .await;
    assert_eq!(created["schemas"], json!([USER_SCHEMA, ENTERPRISE]));
    let path = format!("/scim/v2/Users/{}", id_of(&created));
    let r = h
        .get(&format!(
            "{path}?attributes=name.givenName,{ENTERPRISE}:department"
        ))
        .send()
        .await;
    let keys: Vec<&String> = r.body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["schemas", "id", "name", ENTERPRISE]);
    assert_eq!(r.body["name"], json!({"givenName": "Barbara"}));
    assert_eq!(r.body[ENTERPRISE], json!({"department": "Tours"}));
    let r = h
        .get(&format!("{path}?excludedAttributes=name,meta"))
        .send()
        .await;
    assert!(r.body.get("name").is_none() && r.body.get("meta").is_none());
    assert_eq!(r.body["userName"], "bjensen");
    let list = h.get("/scim/v2/Users?attributes=userName").send().await;
    assert_eq!(
        list.body["Resources"][0],
        json!({"schemas": [USER_SCHEMA, ENTERPRISE], "id": id_of(&created), "userName": "bjensen"})
    );
}

#[actix_web::test]
async fn every_attribute_of_the_core_and_enterprise_schemas_round_trips() {
    let h = Harness::new();
    let body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "full",
        "externalId": "ext-1",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
                 "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "work mail"}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
        "addresses": [{"formatted": "100 Universal City Plaza", "streetAddress": "100 Universal City Plaza",
                       "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "US",
                       "type": "work", "primary": true}],
        "entitlements": [{"value": "admin"}],
        "roles": [{"value": "tour-guide", "primary": false}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        ENTERPRISE: {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
                     "division": "Theme Park", "department": "Tour Operations",
                     "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915"}},
    });
    let created = h.create_user_with(body.clone()).await;
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&created[k], v, "attribute {k}");
    }
}

#[actix_web::test]
async fn data_survives_a_restart() {
    let mut h = Harness::new();
    let user = h.create_user("persisted").await;
    let group = h.create_group("team", &[&id_of(&user)]).await;
    h.restart();
    let u = h
        .get(&format!("/scim/v2/Users/{}", id_of(&user)))
        .send()
        .await;
    assert_eq!(u.status, 200);
    assert_eq!(u.body["groups"][0]["value"], group["id"]);
    let g = h
        .get(&format!("/scim/v2/Groups/{}", id_of(&group)))
        .send()
        .await;
    assert_eq!(g.body, group);
}
