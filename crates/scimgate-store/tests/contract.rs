//! The storage contract: what every backend must do, written once against the `Store`
//! trait and run on the backend `tests/backend` picks (`STORE_TEST_BACKEND`). Uniqueness
//! under Unicode folding, tenant isolation, memberships, versions, totals, concurrent
//! writes and the tenant check inside the write. What is particular to SQLite (its plans,
//! its log file, its pool) is tested beside its code, in `src/sqlite/tests.rs`.

mod backend;

use std::sync::Arc;
use std::thread;

use scimgate_model::validate::validate;
use scimgate_model::{MemberInput, ResourceType};
use scimgate_store::{
    AuditQuery, AuditRecord, ChangeKind, ChangeNote, EventHold, EventPosition, ListQuery,
    NewResource, Page, PatchWrite, Store, StoreError,
};
use serde_json::json;

/// The tenants the tests write in, registered on every store they open.
const TENANTS: &[&str] = &["t", "t1", "t2", "a", "b", "other"];

fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    backend::open(dir.path(), TENANTS)
}

fn user(name: &str) -> NewResource {
    let v = validate(
        ResourceType::User,
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
    )
    .expect("valid");
    NewResource::from_validated(v, Default::default())
}

fn group(name: &str, members: &[&str]) -> NewResource {
    let members: Vec<_> = members.iter().map(|m| json!({"value": m})).collect();
    let v = validate(
        ResourceType::Group,
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members}),
    )
    .expect("valid");
    NewResource::from_validated(v, Default::default())
}

fn filter(rt: ResourceType, f: &str) -> ListQuery {
    ListQuery {
        filter: Some(scimgate_model::filter::parse(rt, f).expect("filter")),
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 100,
        },
        with_relations: true,
    }
}

#[test]
fn user_name_is_unique_per_tenant_with_unicode_folding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    s.create("t1", user("Émile")).expect("first");
    assert!(matches!(
        s.create("t1", user("éMILE")),
        Err(StoreError::UserNameTaken(_))
    ));
    // NFC and NFD spellings of one name are one name.
    s.create("t1", user("Jos\u{e9}")).expect("NFC");
    assert!(matches!(
        s.create("t1", user("Jose\u{301}")),
        Err(StoreError::UserNameTaken(_))
    ));
    s.create("t1", user("straße")).expect("straße");
    assert!(matches!(
        s.create("t1", user("STRASSE")),
        Err(StoreError::UserNameTaken(_))
    ));
    s.create("t2", user("émile"))
        .expect("another tenant may reuse it");

    let page = s
        .list(
            "t1",
            ResourceType::User,
            &filter(ResourceType::User, r#"userName eq "EMILE""#),
        )
        .expect("list");
    assert_eq!(page.total_results, Some(0), "E is not É");
    let page = s
        .list(
            "t1",
            ResourceType::User,
            &filter(ResourceType::User, r#"userName eq "ÉMILE""#),
        )
        .expect("list");
    assert_eq!(page.total_results, Some(1));
}

#[test]
fn tenants_never_see_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let a = s.create("a", user("alice")).expect("create");
    assert!(
        s.get("b", ResourceType::User, &a.id, true)
            .expect("get")
            .is_none()
    );
    assert!(matches!(
        s.delete("b", ResourceType::User, &a.id, None, Default::default()),
        Err(StoreError::NotFound(..))
    ));
    assert!(matches!(
        s.create("b", group("g", &[&a.id])),
        Err(StoreError::MemberNotFound(_))
    ));
    assert_eq!(
        s.list(
            "b",
            ResourceType::User,
            &filter(ResourceType::User, r#"id eq "x""#)
        )
        .expect("l")
        .total_results,
        Some(0)
    );
    let all = ListQuery {
        filter: None,
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 10,
        },
        with_relations: false,
    };
    assert_eq!(
        s.list("b", ResourceType::User, &all)
            .expect("list")
            .total_results,
        Some(0)
    );
    assert_eq!(
        s.list("a", ResourceType::User, &all)
            .expect("list")
            .total_results,
        Some(1)
    );
}

#[test]
fn memberships_follow_deletes_and_bump_group_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let u1 = s.create("t", user("u1")).expect("u1");
    let u2 = s.create("t", user("u2")).expect("u2");
    let g = s.create("t", group("g", &[&u1.id, &u2.id])).expect("g");
    assert_eq!(g.members.as_ref().map(Vec::len), Some(2));
    let groups = s
        .get("t", ResourceType::User, &u1.id, true)
        .expect("get")
        .and_then(|u| u.groups);
    assert_eq!(groups.map(|g| g.len()), Some(1));

    // Later than the group's creation, so a stale lastModified would not match.
    thread::sleep(std::time::Duration::from_millis(5));
    s.delete("t", ResourceType::User, &u1.id, None, Default::default())
        .expect("delete");
    let g2 = s
        .get("t", ResourceType::Group, &g.id, true)
        .expect("get")
        .expect("exists");
    assert_eq!(
        g2.members
            .map(|m| m.into_iter().map(|m| m.value).collect::<Vec<_>>()),
        Some(vec![u2.id.clone()])
    );
    assert_eq!(g2.version, g.version + 1);
    let modified = format!("meta.lastModified eq \"{}\"", g2.last_modified);
    let found = s
        .list(
            "t",
            ResourceType::Group,
            &filter(ResourceType::Group, &modified),
        )
        .expect("l");
    assert_eq!(
        found.resources.len(),
        1,
        "the indexed lastModified moved with the group"
    );

    let found = s
        .list(
            "t",
            ResourceType::Group,
            &filter(
                ResourceType::Group,
                &format!("members.value eq \"{}\"", u2.id),
            ),
        )
        .expect("l");
    assert_eq!(found.total_results, Some(1));
}

#[test]
fn replace_checks_version_members_and_self_membership() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let u = s.create("t", user("u")).expect("u");
    let g = s.create("t", group("g", &[])).expect("g");
    assert!(matches!(
        s.replace("t", &g.id, Some(7), group("g", &[])),
        Err(StoreError::VersionMismatch { current: 1 })
    ));
    assert!(matches!(
        s.replace("t", &g.id, None, group("g", &[&g.id])),
        Err(StoreError::SelfMembership(_))
    ));
    assert!(matches!(
        s.replace("t", &g.id, None, group("g", &["nope"])),
        Err(StoreError::MemberNotFound(_))
    ));
    let mut typed = group("g", &[]);
    typed.members = vec![MemberInput {
        value: u.id.clone(),
        member_type: Some(ResourceType::Group),
    }];
    assert!(matches!(
        s.replace("t", &g.id, None, typed),
        Err(StoreError::MemberTypeMismatch { .. })
    ));
    let after = s
        .get("t", ResourceType::Group, &g.id, true)
        .expect("get")
        .expect("exists");
    assert_eq!(after.version, 1, "failed replaces change nothing");

    let r = s
        .replace("t", &g.id, Some(1), group("renamed", &[&u.id]))
        .expect("replace");
    assert_eq!(r.version, 2);
    assert_eq!(r.attributes["displayName"], "renamed");
    assert_eq!(r.members.map(|m| m.len()), Some(1));
}

#[test]
fn concurrent_writes_all_land_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<String> = {
        let s = open(&dir);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            s.create("t", user(&format!("u{t}-{i}")))
                                .expect("create")
                                .id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let ids: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("join"))
            .collect();
        let stats = s.stats();
        assert_eq!(stats.writes, 200);
        assert!(stats.commits <= stats.writes);
        ids
    };
    let s = backend::reopen(dir.path());
    assert_eq!(s.stats().writes, 0, "counters start with the process");
    for id in &ids {
        assert!(
            s.get("t", ResourceType::User, id, false)
                .expect("get")
                .is_some()
        );
    }
    assert_eq!(ids.len(), 200);
}

#[test]
fn unfiltered_totals_follow_creates_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let all = ListQuery {
        filter: None,
        sort: None,
        page: Page::Index {
            start_index: 1,
            count: 0,
        },
        with_relations: false,
    };
    let ids: Vec<String> = (0..3)
        .map(|i| s.create("t", user(&format!("u{i}"))).expect("create").id)
        .collect();
    s.create("t", group("g", &[])).expect("group");
    assert!(
        s.create("t", user("U0")).is_err(),
        "a refused create counts nothing"
    );
    s.delete("t", ResourceType::User, &ids[1], None, Default::default())
        .expect("delete");
    assert!(
        s.delete("t", ResourceType::User, &ids[1], None, Default::default())
            .is_err()
    );
    assert_eq!(
        s.list("t", ResourceType::User, &all)
            .expect("list")
            .total_results,
        Some(2)
    );
    assert_eq!(
        s.list("t", ResourceType::Group, &all)
            .expect("list")
            .total_results,
        Some(1)
    );
    assert_eq!(
        s.list("other", ResourceType::User, &all)
            .expect("list")
            .total_results,
        Some(0)
    );
    let pr = filter(ResourceType::User, "userName pr");
    assert_eq!(
        s.list("t", ResourceType::User, &pr)
            .expect("list")
            .total_results,
        Some(2),
        "the counted and the scanned agree"
    );
}

/// A filtered list's total is every match, whatever the page: a first page shorter than
/// asked, one exactly full, one with more matches beyond it, a later page, none asked.
#[test]
fn filtered_totals_count_every_match_whatever_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    for i in 0..5 {
        s.create("t", user(&format!("match{i}"))).expect("create");
    }
    s.create("t", user("other")).expect("create");
    // (startIndex, count) → (total, resources on the page)
    let rows = [
        ((1, 10), (5, 5)),
        ((1, 5), (5, 5)),
        ((1, 2), (5, 2)),
        ((4, 2), (5, 2)),
        ((9, 2), (5, 0)),
        ((1, 0), (5, 0)),
    ];
    for ((start_index, count), (total, shown)) in rows {
        let mut q = filter(ResourceType::User, "userName sw \"match\"");
        q.page = Page::Index { start_index, count };
        let page = s.list("t", ResourceType::User, &q).expect("list");
        assert_eq!(
            (page.total_results, page.resources.len()),
            (Some(total), shown),
            "startIndex {start_index}, count {count}"
        );
    }
}

/// A user's groups are all there, read alone or on a page, however many they are (a
/// backend may carry a few with the user's row and read the rest apart).
#[test]
fn a_user_in_many_groups_shows_every_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let busy = s.create("t", user("busy")).expect("busy");
    let quiet = s.create("t", user("quiet")).expect("quiet");
    let mut ids: Vec<String> = (0..105)
        .map(|i| {
            let members: &[&str] = if i < 3 {
                &[&busy.id, &quiet.id]
            } else {
                &[&busy.id]
            };
            s.create("t", group(&format!("g{i}"), members))
                .expect("group")
                .id
        })
        .collect();
    ids.sort();
    let got = s
        .get("t", ResourceType::User, &busy.id, true)
        .expect("get")
        .expect("busy");
    let shown: Vec<String> = got
        .groups
        .expect("groups")
        .into_iter()
        .map(|g| g.value)
        .collect();
    assert_eq!(shown, ids);
    let page = s
        .list(
            "t",
            ResourceType::User,
            &filter(ResourceType::User, "userName pr"),
        )
        .expect("list");
    let counts: Vec<(String, usize)> = page
        .resources
        .iter()
        .map(|r| {
            (
                r.attributes["userName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r.groups.as_ref().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(counts, [("busy".to_owned(), 105), ("quiet".to_owned(), 3)]);
}

fn member_patch(add: &[&str], remove: &[&str]) -> PatchWrite {
    PatchWrite {
        rt: ResourceType::Group,
        expected_version: None,
        new: None,
        members: scimgate_model::patch::MemberChanges {
            replace_with: None,
            add: add
                .iter()
                .map(|v| MemberInput {
                    value: (*v).to_owned(),
                    member_type: None,
                })
                .collect(),
            remove: remove.iter().map(|v| (*v).to_owned()).collect(),
        },
        skip_unknown_members: false,
        change: Default::default(),
    }
}

#[test]
fn concurrent_member_patches_never_lose_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let ids: Vec<String> = (0..64)
        .map(|i| s.create("t", user(&format!("m{i}"))).expect("user").id)
        .collect();
    let g = s.create("t", group("g", &[])).expect("group");
    let threads: Vec<_> = ids
        .chunks(8)
        .map(|chunk| {
            let (s, gid, chunk) = (Arc::clone(&s), g.id.clone(), chunk.to_vec());
            thread::spawn(move || {
                for id in chunk {
                    s.patch("t", &gid, member_patch(&[&id], &[]))
                        .expect("patch");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let after = s
        .get("t", ResourceType::Group, &g.id, true)
        .expect("get")
        .expect("group");
    assert_eq!(
        after.members.map(|m| m.len()),
        Some(64),
        "every concurrent add landed"
    );
    assert_eq!(after.version, 65, "each PATCH moved the version");

    let gone = s
        .patch("t", &g.id, member_patch(&[], &[&ids[0], &ids[1]]))
        .expect("remove");
    assert_eq!(gone.resource.version, 66);
    assert!(matches!(
        s.patch("t", &g.id, member_patch(&["ghost"], &[])),
        Err(StoreError::MemberNotFound(id)) if id == "ghost"
    ));
    let mut lenient = member_patch(&["ghost", &ids[0]], &[]);
    lenient.skip_unknown_members = true;
    let done = s.patch("t", &g.id, lenient).expect("lenient");
    assert_eq!(done.skipped_members, ["ghost"]);
    let after = s
        .get("t", ResourceType::Group, &g.id, true)
        .expect("get")
        .expect("group");
    assert_eq!(after.members.map(|m| m.len()), Some(63));
}

/// A create in a tenant that is not (or no longer) registered is refused in its own
/// transaction: no row outlives `tenant remove`.
#[test]
fn creates_check_their_tenant_in_the_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    assert!(matches!(
        s.create("never-added", user("x")),
        Err(StoreError::TenantNotRegistered(_))
    ));
    backend::remove_tenant(dir.path(), "b");
    assert!(matches!(
        s.create("b", user("late")),
        Err(StoreError::TenantNotRegistered(_))
    ));
}

/// Queued creates run in the order queued, each alone: a later one taking an earlier one's
/// name fails by itself, and a group naming a user queued before it finds that user.
#[test]
fn queued_creates_run_in_order_and_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let first = s.create_queued("t", user("q0"));
    let mut pending: Vec<_> = (1..50)
        .map(|i| s.create_queued("t", user(&format!("q{}", if i == 25 { 0 } else { i }))))
        .collect();
    let u0 = first.wait().expect("the first q0 wins");
    let taken = pending.remove(24).wait();
    assert!(
        matches!(taken, Err(StoreError::UserNameTaken(_))),
        "{taken:?}"
    );
    let created: Vec<_> = pending
        .into_iter()
        .map(|p| p.wait().expect("created"))
        .collect();
    assert_eq!(created.len(), 48);
    let g = s
        .create_queued("t", group("queued", &[&u0.id, &created[0].id]))
        .wait()
        .expect("group");
    let got = s.get("t", ResourceType::Group, &g.id, true).expect("read");
    assert_eq!(got.and_then(|g| g.members).map(|m| m.len()), Some(2));
    assert!(matches!(
        s.create_queued("never-added", user("x")).wait(),
        Err(StoreError::TenantNotRegistered(_))
    ));
}

/// The audit row a write carries is committed with it, with the id, the version written
/// and the members a PATCH skipped filled in by storage; a write that fails leaves none.
#[test]
fn every_committed_write_has_its_audit_row_and_no_other_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let audited = |method: &str, status: u16| ChangeNote {
        audit: Some(AuditRecord {
            seq: 0,
            at: String::new(),
            tenant: "t".into(),
            subject: Some("idp".into()),
            jti: None,
            client: Some("192.0.2.7".into()),
            method: method.into(),
            resource_type: None,
            resource_id: None,
            version_before: None,
            version_after: None,
            plugins: None,
            status,
            detail: None,
            event_seq: None,
        }),
        ..ChangeNote::default()
    };
    let mut alice = user("alice");
    alice.change = audited("POST", 201);
    let a = s.create("t", alice).expect("alice");
    let mut taken = user("ALICE");
    taken.change = audited("POST", 201);
    assert!(s.create("t", taken).is_err());
    let g = s.create("t", group("g", &[])).expect("group, no row");
    let mut stale = group("g2", &[]);
    stale.change = audited("PUT", 200);
    assert!(s.replace("t", &g.id, Some(9), stale).is_err());
    let mut patch = member_patch(&[&a.id, "nobody-1", "nobody-2"], &[]);
    patch.skip_unknown_members = true;
    patch.change = audited("PATCH", 200);
    s.patch("t", &g.id, patch).expect("patch");
    s.delete("t", ResourceType::User, &a.id, None, audited("DELETE", 204))
        .expect("delete");

    // No flush: the rows were committed with their writes.
    let rows = s
        .audit(&AuditQuery {
            tenant: Some("t".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .expect("audit");
    let seen: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.resource_id.as_deref(),
                r.version_after,
                r.status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST", Some(a.id.as_str()), Some(1), 201),
            ("PATCH", Some(g.id.as_str()), Some(2), 200),
            ("DELETE", Some(a.id.as_str()), None, 204),
        ],
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .all(|r| !r.at.is_empty() && r.client.as_deref() == Some("192.0.2.7"))
    );
    let detail = rows[1].detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("nobody-1") && detail.contains("nobody-2"),
        "{detail}"
    );
    // Each row names the event its write made (the admin page's "what changed").
    let events = s.events("t", 0, 100).expect("events");
    for row in &rows {
        let seq = row.event_seq.expect("an event for a committed write");
        let event = events.iter().find(|e| e.seq == seq).expect("that event");
        assert_eq!(
            (Some(event.resource_id.as_str()), event.version),
            (row.resource_id.as_deref(), row.version_after),
            "{row:?}"
        );
    }
}

/// Every committed write has its event, numbered 1, 2, 3, … in its tenant; a write that
/// fails leaves neither an event nor a used number; another tenant counts on its own.
#[test]
fn every_committed_write_has_its_event_and_no_other_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let mut alice = user("alice");
    alice.external_id = Some("ext-alice".into());
    alice.change = ChangeNote {
        attributes: vec!["userName".into()],
        operations: None,
        activation: None,
        audit: None,
    };
    let a = s.create("t", alice).expect("alice");
    assert!(matches!(
        s.create("t", user("ALICE")),
        Err(StoreError::UserNameTaken(_))
    ));
    let g = s.create("t", group("g", &[&a.id])).expect("group");
    assert!(matches!(
        s.replace("t", &g.id, Some(9), group("g2", &[])),
        Err(StoreError::VersionMismatch { .. })
    ));
    s.create("other", user("bob")).expect("bob elsewhere");
    let mut patch = member_patch(&[], &[&a.id]);
    patch.change.operations = Some(json!([{"op": "remove", "path": "members"}]));
    s.patch("t", &g.id, patch).expect("remove alice");
    // Nothing to remove any more: no version moved, no event.
    s.patch("t", &g.id, member_patch(&[], &[&a.id]))
        .expect("remove again");
    s.delete("t", ResourceType::User, &a.id, None, ChangeNote::default())
        .expect("delete");

    let events = s.events("t", 0, 100).expect("events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "{events:#?}");
    let kinds: Vec<ChangeKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Create,
            ChangeKind::Create,
            ChangeKind::Patch,
            ChangeKind::Delete
        ]
    );
    let created = &events[0];
    assert_eq!(created.resource_id, a.id);
    assert_eq!(created.external_id.as_deref(), Some("ext-alice"));
    assert_eq!(created.version, Some(1));
    assert_eq!(created.attributes, ["userName"]);
    assert_eq!(
        created.data.as_ref().and_then(|d| d.get("userName")),
        Some(&json!("alice"))
    );
    let group_created = &events[1];
    assert_eq!(
        group_created
            .members
            .as_ref()
            .and_then(|m| m[0].get("value")),
        Some(&json!(a.id))
    );
    assert_eq!(events[2].version, Some(2));
    assert_eq!(
        events[2].data,
        Some(json!([{"op": "remove", "path": "members"}]))
    );
    let deleted = &events[3];
    assert_eq!(
        (deleted.resource_id.as_str(), deleted.external_id.as_deref()),
        (a.id.as_str(), Some("ext-alice"))
    );
    assert_eq!(deleted.version, None);
    let txns: std::collections::HashSet<&str> = events.iter().map(|e| e.txn.as_str()).collect();
    assert_eq!(txns.len(), events.len(), "each write its own txn");

    assert_eq!(s.event_head("t").expect("head"), 4);
    assert_eq!(s.events("t", 2, 1).expect("after 2")[0].seq, 3);
    let other = s.events("other", 0, 100).expect("other");
    assert_eq!(other.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(s.event_head("nobody").expect("head"), 0);
}

/// Writers racing in one tenant still number their events without a gap or a repeat.
#[test]
fn concurrent_writes_number_their_events_without_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                for i in 0..25 {
                    s.create("t", user(&format!("c{t}-{i}"))).expect("create");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("join");
    }
    let seqs: Vec<i64> = s
        .events("t", 0, 1000)
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<i64>>());
}

/// A consumer's position is kept, only moves forward by a save, and a commit wakes those
/// waiting for new events.
#[test]
fn positions_are_kept_and_commits_wake_waiters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    let at = |seq| EventPosition {
        consumer: "receiver:hr".into(),
        tenant: "t".into(),
        seq,
        updated: "2026-01-01T00:00:00Z".into(),
        state: "active".into(),
        failing_since: None,
        last_error: None,
    };
    s.save_event_position(at(5));
    s.save_event_position(at(3));
    let seen = s.wait_for_commit(0, std::time::Duration::from_secs(5));
    assert!(seen >= 1, "the queued saves committed");
    let positions = s.event_positions().expect("positions");
    assert_eq!(positions, [at(5)], "a save never moves a position back");
    assert_eq!(s.event_position("receiver:hr", "t").expect("one"), Some(5));
    assert_eq!(s.event_position("receiver:hr", "u").expect("one"), None);
    assert_eq!(s.event_position("receiver:h", "t").expect("one"), None);
    s.commit_event_position(at(7)).expect("commit");
    assert_eq!(
        s.event_position("receiver:hr", "t").expect("one"),
        Some(7),
        "committed when it returns"
    );
    s.commit_event_position(at(6)).expect("commit");
    assert_eq!(
        s.event_position("receiver:hr", "t").expect("one"),
        Some(7),
        "never back"
    );

    let waiter = {
        let s = Arc::clone(&s);
        let now = s.wait_for_commit(u64::MAX - 1, std::time::Duration::ZERO);
        thread::spawn(move || s.wait_for_commit(now, std::time::Duration::from_secs(10)))
    };
    thread::sleep(std::time::Duration::from_millis(50));
    s.create("t", user("wake")).expect("create");
    let woke_at = waiter.join().expect("join");
    assert!(woke_at > seen, "{woke_at} > {seen}");
}

/// Old events go once every receiver following their tenant and every cursor in it is
/// past them; numbers are never given twice after a prune.
#[test]
fn pruning_keeps_what_a_receiver_or_cursor_still_needs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    for i in 0..5 {
        s.create("t", user(&format!("pr{i}"))).expect("create");
    }
    s.create("other", user("elsewhere")).expect("create");
    let at = |consumer: &str, tenant: &str, seq| EventPosition {
        consumer: consumer.into(),
        tenant: tenant.into(),
        seq,
        updated: "2026-01-01T00:00:00Z".into(),
        state: "active".into(),
        failing_since: None,
        last_error: None,
    };
    s.save_event_position(at("receiver:a", "t", 3));
    s.save_event_position(at("cursor:x", "t", 4));
    s.save_event_position(at(r#"stream:["y",null]"#, "t", 2));
    let holds = [
        EventHold {
            consumer: "receiver:a".into(),
            tenants: Some(vec!["t".into()]),
        },
        EventHold {
            consumer: "receiver:b".into(),
            tenants: Some(vec!["other".into()]),
        },
    ];
    assert_eq!(
        s.prune_events("2000-01-01T00:00:00Z", &holds)
            .expect("prune"),
        0,
        "none that old"
    );
    assert_eq!(
        s.prune_events("2999-01-01T00:00:00Z", &holds)
            .expect("prune"),
        2
    );
    let left: Vec<i64> = s
        .events("t", 0, 100)
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        left,
        [3, 4, 5],
        "the receiver was at 3, the poll cursor at 4, the stream cursor at 2"
    );
    assert_eq!(
        s.events("other", 0, 100).expect("events").len(),
        1,
        "b has not got it yet"
    );
    s.create("t", user("pr-after")).expect("create");
    assert_eq!(
        s.event_head("t").expect("head"),
        6,
        "numbers go on after a prune"
    );
}

/// A tenant removed takes its events with it; one added again under the same name goes on
/// from the next number and sees none of the old ones.
#[test]
fn removing_a_tenant_removes_its_events_and_keeps_its_numbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(&dir);
    for i in 0..3 {
        s.create("b", user(&format!("gone{i}"))).expect("create");
    }
    backend::purge_tenant(dir.path(), "b");
    backend::add_tenant(dir.path(), "b");
    assert!(
        s.events("b", 0, 100).expect("events").is_empty(),
        "no old event"
    );
    s.create("b", user("new")).expect("create");
    let seqs: Vec<i64> = s
        .events("b", 0, 100)
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [4]);
}
