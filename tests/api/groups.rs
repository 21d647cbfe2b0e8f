use serde_json::{Value, json};

use crate::common::*;

#[actix_web::test]
async fn group_members_carry_ref_type_and_display_and_users_show_their_groups() {
    let h = Harness::new();
    let alice = h
        .create_user_with(
            json!({"schemas": [USER_SCHEMA], "userName": "alice", "displayName": "Alice A"}),
        )
        .await;
    let bob = h.create_user("bob").await;
    let inner = h.create_group("inner", &[]).await;
    let g = h
        .create_group("Sales", &[&id_of(&alice), &id_of(&bob), &id_of(&inner)])
        .await;
    let mut members = g["members"].as_array().expect("members").clone();
    members.sort_by_key(|m| m["display"].as_str().unwrap_or_default().to_owned());
    let base = "http://localhost:8080/scim/v2";
    assert_eq!(
        members,
        vec![
            json!({"value": id_of(&alice), "$ref": format!("{base}/Users/{}", id_of(&alice)), "type": "User", "display": "Alice A"}),
            json!({"value": id_of(&bob), "$ref": format!("{base}/Users/{}", id_of(&bob)), "type": "User", "display": "bob"}),
            json!({"value": id_of(&inner), "$ref": format!("{base}/Groups/{}", id_of(&inner)), "type": "Group", "display": "inner"}),
        ]
    );
    let a = h
        .get(&format!("/scim/v2/Users/{}", id_of(&alice)))
        .send()
        .await;
    assert_eq!(
        a.body["groups"],
        json!([{"value": id_of(&g), "$ref": format!("{base}/Groups/{}", id_of(&g)), "display": "Sales", "type": "direct"}])
    );
}

#[actix_web::test]
async fn members_must_exist_in_the_same_tenant() {
    let h = Harness::new();
    let r = h
        .post("/scim/v2/Groups", json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"value": "ghost-id"}]}))
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "ghost-id");

    let other_tenant = h.token_for("other", "scim:read scim:write");
    let foreign = h
        .post(
            "/scim/v2/Users",
            json!({"schemas": [USER_SCHEMA], "userName": "foreigner"}),
        )
        .token(&other_tenant)
        .send()
        .await;
    let foreign_id = id_of(&foreign.body);
    let r = h
        .post("/scim/v2/Groups", json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"value": foreign_id}]}))
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), &foreign_id);
    let listed = h.get("/scim/v2/Groups").send().await;
    assert_eq!(
        listed.body["totalResults"], 0,
        "a refused create stores nothing"
    );
}

#[actix_web::test]
async fn member_type_must_match_the_member() {
    let h = Harness::new();
    let u = h.create_user("u").await;
    let r = h
        .post(
            "/scim/v2/Groups",
            json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [{"value": id_of(&u), "type": "Group"}]}),
        )
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "is a User");
}

#[actix_web::test]
async fn put_replaces_members_and_deleting_a_user_removes_its_memberships() {
    let h = Harness::new();
    let a = h.create_user("a").await;
    let b = h.create_user("b").await;
    let g = h.create_group("g", &[&id_of(&a)]).await;
    let path = format!("/scim/v2/Groups/{}", id_of(&g));
    let r = h
        .put(&path, json!({"schemas": [GROUP_SCHEMA], "displayName": "g2", "members": [{"value": id_of(&b)}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "g2");
    let ids: Vec<&str> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["value"].as_str())
        .collect();
    assert_eq!(ids, [id_of(&b)]);
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");

    assert_eq!(
        h.delete(&format!("/scim/v2/Users/{}", id_of(&b)))
            .send()
            .await
            .status,
        204
    );
    let after = h.get(&path).send().await;
    assert!(after.body.get("members").is_none(), "{}", after.body);
    assert_eq!(
        after.body["meta"]["version"], "W/\"3\"",
        "losing a member changes the group"
    );

    let self_member = h
        .put(&path, json!({"schemas": [GROUP_SCHEMA], "displayName": "g2", "members": [{"value": id_of(&g)}]}))
        .send()
        .await;
    self_member.assert_error(400, Some("invalidValue"), "member of itself");
}

#[actix_web::test]
async fn excluded_members_and_display_name_filter() {
    let h = Harness::new();
    let u = h.create_user("u").await;
    let g = h.create_group("Team Rocket", &[&id_of(&u)]).await;
    h.create_group("Other", &[]).await;
    let r = h.get("/scim/v2/Groups?excludedAttributes=members&filter=displayName%20eq%20%22team%20ROCKET%22").send().await;
    assert_eq!(r.body["totalResults"], 1);
    let found = &r.body["Resources"][0];
    assert_eq!(found["id"], g["id"]);
    assert!(found.get("members").is_none());
    let by_member = h
        .get(&format!(
            "/scim/v2/Groups?filter=members.value%20eq%20%22{}%22",
            id_of(&u)
        ))
        .send()
        .await;
    assert_eq!(by_member.body["totalResults"], 1);
    let one = h
        .get(&format!(
            "/scim/v2/Groups/{}?excludedAttributes=members",
            id_of(&g)
        ))
        .send()
        .await;
    assert!(one.body.get("members").is_none());
    assert_eq!(one.body["displayName"], "Team Rocket");
}

#[actix_web::test]
async fn a_group_of_many_members_lists_them_all() {
    let h = Harness::new();
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(id_of(&h.create_user(&format!("m{i}")).await));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let g = h.create_group("big", &refs).await;
    let fetched = h
        .get(&format!("/scim/v2/Groups/{}", id_of(&g)))
        .send()
        .await;
    assert_eq!(fetched.body["members"].as_array().map(Vec::len), Some(150));
    let value: Value = fetched.body["members"][0]["type"].clone();
    assert_eq!(value, "User");
}

/// A user looked up by `userName eq` (answered at once when its groups are few) shows all
/// its groups on both sides of the limit of what is read at once, and the same answer as
/// a read by id.
#[actix_web::test]
async fn a_user_found_by_user_name_shows_all_its_groups() {
    let h = Harness::new();
    let few = id_of(&h.create_user("few").await);
    let many = id_of(&h.create_user("many").await);
    for i in 0..(scimgate_store::AT_ONCE_RELATIONS + 1) {
        let members: Vec<&str> = if i < 3 {
            vec![few.as_str(), many.as_str()]
        } else {
            vec![many.as_str()]
        };
        h.create_group(&format!("g{i}"), &members).await;
    }
    for (name, id, groups) in [
        ("FEW", &few, 3),
        ("many", &many, scimgate_store::AT_ONCE_RELATIONS + 1),
    ] {
        let found = h
            .get(&format!(
                "/scim/v2/Users?filter=userName%20eq%20%22{name}%22"
            ))
            .send()
            .await;
        assert_eq!(found.status, 200);
        assert_eq!(found.body["totalResults"], 1);
        let listed = &found.body["Resources"][0];
        assert_eq!(listed["groups"].as_array().map(Vec::len), Some(groups));
        let by_id = h.get(&format!("/scim/v2/Users/{id}")).send().await;
        assert_eq!(listed, &by_id.body);
    }
}
