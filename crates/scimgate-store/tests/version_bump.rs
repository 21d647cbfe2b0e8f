//! An ETag is the stored version: it must never stand for two representations. Random
//! sequences of writes (creates, renames, memberships added, removed and replaced, deletes
//! on both sides) on a few users and groups; after each, every resource is read with its
//! relations (a user's `groups`, a group's `members` with their `display`), and a version
//! seen before must come with the representation seen with it.

mod backend;

use std::collections::HashMap;

use proptest::prelude::*;
use scimgate_model::patch::MemberChanges;
use scimgate_model::validate::validate;
use scimgate_model::{MemberInput, ResourceType};
use scimgate_store::{NewResource, PatchWrite, StoreError, StoredResource};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Op {
    CreateUser(u8),
    CreateGroup(u8, Vec<u8>),
    RenameUser(u8, u8),
    RenameGroup(u8, u8),
    AddMembers(u8, Vec<u8>),
    RemoveMembers(u8, Vec<u8>),
    ReplaceMembers(u8, Vec<u8>),
    PutGroup(u8, u8, Vec<u8>),
    DeleteUser(u8),
    DeleteGroup(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let few = || prop::collection::vec(0u8..4, 0..3);
    prop_oneof![
        (0u8..4).prop_map(Op::CreateUser),
        (0u8..3, few()).prop_map(|(g, m)| Op::CreateGroup(g, m)),
        (0u8..4, 0u8..3).prop_map(|(u, n)| Op::RenameUser(u, n)),
        (0u8..3, 0u8..3).prop_map(|(g, n)| Op::RenameGroup(g, n)),
        (0u8..3, few()).prop_map(|(g, m)| Op::AddMembers(g, m)),
        (0u8..3, few()).prop_map(|(g, m)| Op::RemoveMembers(g, m)),
        (0u8..3, few()).prop_map(|(g, m)| Op::ReplaceMembers(g, m)),
        (0u8..3, 0u8..3, few()).prop_map(|(g, n, m)| Op::PutGroup(g, n, m)),
        (0u8..4).prop_map(Op::DeleteUser),
        (0u8..3).prop_map(Op::DeleteGroup),
    ]
}

fn user(slot: u8, name: u8) -> NewResource {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("user{slot}"),
        "displayName": format!("User {slot} v{name}"),
    });
    NewResource::from_validated(
        validate(ResourceType::User, &body).expect("valid"),
        Default::default(),
    )
}

fn group(slot: u8, name: u8, members: &[String]) -> NewResource {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": format!("Group {slot} v{name}"),
        "members": members,
    });
    NewResource::from_validated(
        validate(ResourceType::Group, &body).expect("valid"),
        Default::default(),
    )
}

/// What a client is shown of a resource, but `meta` (whose version is what is checked).
fn representation(r: &StoredResource) -> Value {
    let mut v = Value::Object(r.attributes.clone());
    if let Some(members) = &r.members {
        let mut m: Vec<(String, String)> = members
            .iter()
            .map(|m| (m.value.clone(), m.display.clone()))
            .collect();
        m.sort();
        v["members"] = json!(m);
    }
    if let Some(groups) = &r.groups {
        let mut g: Vec<(String, String)> = groups
            .iter()
            .map(|g| (g.value.clone(), g.display.clone()))
            .collect();
        g.sort();
        v["groups"] = json!(g);
    }
    v
}

fn ids(slots: &[u8], of: &HashMap<u8, String>) -> Vec<String> {
    slots.iter().filter_map(|s| of.get(s).cloned()).collect()
}

fn inputs(ids: &[String]) -> Vec<MemberInput> {
    ids.iter()
        .map(|id| MemberInput {
            value: id.clone(),
            member_type: None,
        })
        .collect()
}

fn members_patch(changes: MemberChanges) -> PatchWrite {
    PatchWrite {
        rt: ResourceType::Group,
        expected_version: None,
        new: None,
        members: changes,
        skip_unknown_members: true,
        change: Default::default(),
    }
}

/// Expected failures of a random step (a name taken, a resource gone) change nothing.
fn tolerated<T>(r: Result<T, StoreError>) -> Result<Option<T>, TestCaseError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            StoreError::UserNameTaken(_) | StoreError::NotFound(..) | StoreError::MemberNotFound(_),
        ) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("unexpected: {e}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 300, .. ProptestConfig::default() })]

    #[test]
    fn a_version_never_stands_for_two_representations(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = backend::open(dir.path(), &["t"]);
        let mut users: HashMap<u8, String> = HashMap::new();
        let mut groups: HashMap<u8, String> = HashMap::new();
        // id → version → representation, for every version ever seen.
        let mut seen: HashMap<String, HashMap<i64, Value>> = HashMap::new();
        for op in &ops {
            match op {
                Op::CreateUser(u) if !users.contains_key(u) => {
                    if let Some(r) = tolerated(store.create("t", user(*u, 0)))? {
                        users.insert(*u, r.id);
                    }
                }
                Op::CreateGroup(g, m) if !groups.contains_key(g) => {
                    if let Some(r) = tolerated(store.create("t", group(*g, 0, &ids(m, &users))))? {
                        groups.insert(*g, r.id);
                    }
                }
                Op::RenameUser(u, n) => {
                    if let Some(id) = users.get(u) {
                        tolerated(store.replace("t", id, None, user(*u, *n)))?;
                    }
                }
                Op::RenameGroup(g, n) => {
                    if let Some(id) = groups.get(g) {
                        let current = store.get("t", ResourceType::Group, id, false).expect("get");
                        if let Some(current) = current {
                            let mut new = group(*g, *n, &[]);
                            new.members.clear();
                            tolerated(store.patch("t", id, PatchWrite { rt: ResourceType::Group, expected_version: Some(current.version), new: Some(new), members: MemberChanges::default(), skip_unknown_members: true, change: Default::default() }))?;
                        }
                    }
                }
                Op::AddMembers(g, m) | Op::RemoveMembers(g, m) | Op::ReplaceMembers(g, m) => {
                    if let Some(id) = groups.get(g) {
                        let named = ids(m, &users);
                        let changes = match op {
                            Op::AddMembers(..) => MemberChanges { add: inputs(&named), ..Default::default() },
                            Op::RemoveMembers(..) => MemberChanges { remove: named, ..Default::default() },
                            _ => MemberChanges { replace_with: Some(inputs(&named)), ..Default::default() },
                        };
                        tolerated(store.patch("t", id, members_patch(changes)))?;
                    }
                }
                Op::PutGroup(g, n, m) => {
                    if let Some(id) = groups.get(g) {
                        tolerated(store.replace("t", id, None, group(*g, *n, &ids(m, &users))))?;
                    }
                }
                Op::DeleteUser(u) => {
                    if let Some(id) = users.remove(u) {
                        tolerated(store.delete("t", ResourceType::User, &id, None, Default::default()))?;
                        seen.remove(&id);
                    }
                }
                Op::DeleteGroup(g) => {
                    if let Some(id) = groups.remove(g) {
                        tolerated(store.delete("t", ResourceType::Group, &id, None, Default::default()))?;
                        seen.remove(&id);
                    }
                }
                _ => {}
            }
            let all = users.values().map(|id| (ResourceType::User, id)).chain(groups.values().map(|id| (ResourceType::Group, id)));
            for (rt, id) in all {
                let r = store.get("t", rt, id, true).expect("get").expect("exists");
                let shown = representation(&r);
                let versions = seen.entry(id.clone()).or_default();
                match versions.get(&r.version) {
                    Some(before) => prop_assert_eq!(before, &shown, "{} {} version {} after {:?}", rt.name(), id, r.version, op),
                    None => { versions.insert(r.version, shown); }
                }
            }
        }
    }
}
