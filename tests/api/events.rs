//! The change feed read over HTTP: RFC 8936 poll (acknowledge, resume, long poll) and the
//! Server-Sent Events stream (resumable with `Last-Event-ID`), per tenant, with the
//! `scim:events` scope; the SETs verify against the published JWKS.

use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::test::{TestRequest, call_service, init_service};
use base64::Engine;
use scimgate_http::build_app;
use serde_json::{Value, json};

use crate::common::*;

const PROV: &str = "urn:ietf:params:scim:event:prov:";

async fn poll(h: &Harness, token: &str, query: &str, body: Value) -> Resp {
    h.req(
        actix_web::http::Method::POST,
        &format!("/events/poll{query}"),
    )
    .token(token)
    .raw(Some("application/json"), body.to_string())
    .send()
    .await
}

/// The claims of a SET, checked against the key the server publishes.
async fn verified(h: &Harness, token: &str) -> Value {
    let jwks = h.get("/events/jwks.json").no_token().send().await;
    assert_eq!(jwks.status, 200);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.body).expect("JWKS");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("key");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("verifies")
        .claims
}

/// The sequence numbers of a poll answer's SETs, in order.
fn seqs(sets: &Value) -> Vec<i64> {
    jtis(sets).into_keys().collect()
}

/// The jtis of a poll answer, by sequence number.
fn jtis(sets: &Value) -> std::collections::BTreeMap<i64, String> {
    sets.as_object()
        .expect("sets")
        .keys()
        .map(|jti| {
            (
                jti.split('.')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("seq"),
                jti.clone(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn poll_acknowledges_resumes_and_keeps_tenants_apart() {
    let h = Harness::new();
    let events = h.token_for("default", "scim:events");
    for name in ["p1", "p2", "p3"] {
        h.create_user(name).await;
    }
    let r = poll(&h, &events, "", json!({"returnImmediately": true})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(seqs(&r.body["sets"]), [1, 2, 3]);
    assert_eq!(r.body["moreAvailable"], false);
    let mut jtis: Vec<(i64, String)> = Vec::new();
    for (jti, token) in r.body["sets"].as_object().expect("sets") {
        let claims = verified(&h, token.as_str().expect("a JWS")).await;
        assert_eq!(claims["jti"], jti.as_str());
        assert!(claims["events"].get(format!("{PROV}create:full")).is_some());
        jtis.push((claims["seq"].as_i64().expect("seq"), jti.clone()));
    }
    jtis.sort();

    // Acknowledge 1 and 2 (and 3 only as a gap after an unacknowledged one would be: not).
    let r = poll(
        &h,
        &events,
        "",
        json!({"returnImmediately": true, "ack": [jtis[0].1, jtis[1].1], "maxEvents": 10}),
    )
    .await;
    assert_eq!(seqs(&r.body["sets"]), [3]);
    // The position is stored: a restart resumes after it.
    let mut h = h;
    h.restart();
    let r = poll(&h, &events, "", json!({"returnImmediately": true})).await;
    assert_eq!(seqs(&r.body["sets"]), [3], "{}", r.body);
    let r = poll(
        &h,
        &events,
        "",
        json!({"returnImmediately": true, "setErrs": {(jtis[2].1.clone()): {"err": "x", "description": "y"}}}),
    )
    .await;
    assert_eq!(
        seqs(&r.body["sets"]),
        Vec::<i64>::new(),
        "a reported error counts as handled"
    );

    // maxEvents, and moreAvailable.
    for name in ["p4", "p5"] {
        h.create_user(name).await;
    }
    let r = poll(
        &h,
        &events,
        "?cursor=second",
        json!({"returnImmediately": true, "maxEvents": 2}),
    )
    .await;
    assert_eq!(
        seqs(&r.body["sets"]),
        [1, 2],
        "another named cursor starts at the beginning"
    );
    assert_eq!(r.body["moreAvailable"], true);

    // Another tenant: its own feed, not this one.
    let other = h.token_for("other", "scim:events");
    let r = poll(&h, &other, "", json!({"returnImmediately": true})).await;
    assert_eq!(seqs(&r.body["sets"]), Vec::<i64>::new());
    let r = poll(
        &h,
        &events,
        "?domain=other",
        json!({"returnImmediately": true}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The scope is needed.
    let reader = h.token_for("default", "scim:read");
    poll(&h, &reader, "", json!({}))
        .await
        .assert_error(403, None, "scim:events");
    poll(&h, &events, "?mode=everything", json!({}))
        .await
        .assert_error(400, Some("invalidValue"), "mode");
    let r = h
        .req(actix_web::http::Method::POST, "/events/poll")
        .token(&events)
        .raw(Some("application/json"), "{not json")
        .send()
        .await;
    r.assert_error(400, Some("invalidSyntax"), "poll request");
}

/// An acknowledgement moves a cursor only over events sent to it, named by the jti it was
/// sent with: a made-up jti, or another cursor's, moves nothing. A subject keeps a bounded
/// number of named cursors.
#[actix_web::test]
async fn acknowledgements_count_only_as_issued_and_named_cursors_are_bounded() {
    let h = Harness::new();
    let events = h.token_for("default", "scim:events");
    for name in ["a1", "a2", "a3"] {
        h.create_user(name).await;
    }
    let once = json!({"returnImmediately": true, "maxEvents": 1});
    let mine = jtis(&poll(&h, &events, "", once.clone()).await.body["sets"]);
    assert_eq!(mine.keys().copied().collect::<Vec<_>>(), [1]);
    let claims = verified(
        &h,
        poll(&h, &events, "", once.clone()).await.body["sets"][&mine[&1]]
            .as_str()
            .expect("a JWS"),
    )
    .await;
    assert_eq!(
        claims["aud"], "consumer:test",
        "a consumer's audience is marked as one"
    );
    let theirs = jtis(
        &poll(
            &h,
            &events,
            "?cursor=other",
            json!({"returnImmediately": true}),
        )
        .await
        .body["sets"],
    );
    assert_ne!(theirs[&3], "");
    let r = poll(
        &h,
        &events,
        "",
        json!({"returnImmediately": true, "ack": [mine[&1], "2.AAAAAAAAAAAAAAAA", theirs[&3]]}),
    )
    .await;
    assert_eq!(
        seqs(&r.body["sets"]),
        [2, 3],
        "only event 1 was acknowledged as sent: {}",
        r.body
    );
    let sent = jtis(&r.body["sets"]);
    let r = poll(
        &h,
        &events,
        "",
        json!({"returnImmediately": true, "ack": [sent[&2], sent[&3]]}),
    )
    .await;
    assert_eq!(seqs(&r.body["sets"]), Vec::<i64>::new());

    // A subject with a `/` in it is not another subject's named cursor: subject
    // `test/other` gets SETs of its own, and `test`'s cursor `other` cannot be moved by
    // them.
    let key = scimgate_http::SigningKey::load_or_create(h.data_dir()).expect("key");
    let (slashed, _) = key
        .mint(
            &scimgate_http::TokenRequest {
                subject: "test/other".into(),
                tenants: vec!["default".into()],
                scope: "scim:events".into(),
                ttl_secs: 3600,
            },
            now(),
        )
        .expect("mint");
    let r = poll(&h, &slashed, "", json!({"returnImmediately": true})).await;
    let slashed_jtis = jtis(&r.body["sets"]);
    assert_ne!(slashed_jtis[&1], theirs[&1], "an audience of its own");
    let claims = verified(&h, r.body["sets"][&slashed_jtis[&1]].as_str().expect("JWS")).await;
    assert_eq!(claims["aud"], "consumer:test%2Fother");
    poll(
        &h,
        &slashed,
        "",
        json!({"returnImmediately": true, "ack": [slashed_jtis[&1]]}),
    )
    .await;
    let r = poll(
        &h,
        &events,
        "?cursor=other",
        json!({"returnImmediately": true}),
    )
    .await;
    assert_eq!(
        seqs(&r.body["sets"]),
        [1, 2, 3],
        "`test`'s cursor `other` did not move"
    );

    // Named cursors: each holds events from pruning from its first use, so a subject
    // keeps 16 (`other` above is one).
    for i in 0..15 {
        let query = format!("?cursor=c{i}");
        let sets = jtis(&poll(&h, &events, &query, once.clone()).await.body["sets"]);
        let r = poll(
            &h,
            &events,
            &query,
            json!({"returnImmediately": true, "ack": [sets[&1]]}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Positions are saved with the writer's next batch: wait until all are stored.
    let db = h.admin();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while db.event_positions().expect("positions").len() < 17 {
        assert!(
            std::time::Instant::now() < deadline,
            "positions never stored"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    poll(&h, &events, "?cursor=c16", once.clone())
        .await
        .assert_error(400, Some("invalidValue"), "16 named cursors");
    let r = h
        .get("/events/stream?cursor=c17")
        .token(&events)
        .send()
        .await;
    r.assert_error(400, Some("invalidValue"), "scimgate events forget");
    assert_eq!(
        seqs(&poll(&h, &events, "?cursor=c3", once.clone()).await.body["sets"]),
        [2]
    );
    assert_eq!(
        poll(&h, &events, "", once).await.status,
        200,
        "the subject's own cursor"
    );
}

#[actix_web::test]
async fn a_long_poll_answers_when_an_event_commits() {
    let h = Harness::new();
    let events = h.token_for("default", "scim:events");
    let waiting = poll(
        &h,
        &events,
        "?mode=notice",
        json!({"returnImmediately": false}),
    );
    let writing = async {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        h.create_user("late").await
    };
    let (r, _) = futures_util::join!(waiting, writing);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(seqs(&r.body["sets"]), [1]);
    let token = r.body["sets"]
        .as_object()
        .expect("sets")
        .values()
        .next()
        .expect("one");
    let claims = verified(&h, token.as_str().expect("JWS")).await;
    let payload = &claims["events"][format!("{PROV}create:notice")];
    assert!(
        payload["attributes"]
            .as_array()
            .expect("names")
            .contains(&json!("userName"))
    );
}

/// Reads the stream until `n` events came (or panics after a few seconds).
async fn stream_events(
    h: &Harness,
    token: &str,
    last_event_id: Option<&str>,
    n: usize,
) -> Vec<(i64, String, Value)> {
    let app = init_service(build_app(h.state())).await;
    let mut req = TestRequest::get()
        .uri("/events/stream")
        .insert_header(("authorization", format!("Bearer {token}")));
    if let Some(id) = last_event_id {
        req = req.insert_header(("last-event-id", id));
    }
    let resp = call_service(&app, req.to_request()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = resp.into_body();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} events: {text}",
            out.len()
        );
        let chunk = actix_web::rt::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)),
        )
        .await
        .expect("a chunk in time")
        .expect("the stream goes on")
        .unwrap_or_else(|_| panic!("the stream failed"));
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let mut id = None;
            let (mut name, mut data) = (String::new(), Value::Null);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).expect("JSON data");
                }
            }
            if let Some(id) = id {
                out.push((id, name, data));
            }
        }
    }
    out
}

#[actix_web::test]
async fn the_stream_sends_events_as_they_commit_and_resumes_after_last_event_id() {
    let mut h = Harness::new();
    let events = h.token_for("default", "scim:events");
    let u = h.create_user("s1").await;
    let id = id_of(&u);
    let r = h
        .req(
            actix_web::http::Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
        )
        .json(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": "S"}]}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200);
    let (got, _) = futures_util::join!(stream_events(&h, &events, None, 3), async {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        h.delete(&format!("/scim/v2/Users/{id}")).send().await
    });
    let ids: Vec<i64> = got.iter().map(|e| e.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(got[0].1, format!("{PROV}create:full"));
    assert_eq!(got[1].1, format!("{PROV}patch:full"));
    assert_eq!(got[2].1, format!("{PROV}delete"));
    assert_eq!(got[1].2["seq"], 2);
    assert_eq!(got[1].2["sub_id"]["uri"], format!("/Users/{id}"));

    let resumed = stream_events(&h, &events, Some("2"), 1).await;
    assert_eq!(resumed[0].0, 3, "after Last-Event-ID 2 comes 3");
    // After a restart too, and without Last-Event-ID the stream goes on after what it
    // sent its cursor last.
    h.restart();
    let resumed = stream_events(&h, &events, Some("1"), 2).await;
    assert_eq!((resumed[0].0, resumed[1].0), (2, 3));
    let (after_restart, _) = futures_util::join!(stream_events(&h, &events, None, 2), async {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        h.create_user("s2").await
    });
    // The cursor moves only over what the connection took before it asked for more: the
    // last event a client got just before it went may come again, none is skipped.
    assert_eq!(after_restart[0].0, 3, "from after the stored cursor (2)");
    assert_eq!(after_restart[1].0, 4);
    let bad = h
        .get("/events/stream")
        .token(&events)
        .header("last-event-id", "yesterday")
        .send()
        .await;
    bad.assert_error(400, Some("invalidValue"), "Last-Event-ID");
    let reader = h.token_for("default", "scim:read");
    h.get("/events/stream")
        .token(&reader)
        .send()
        .await
        .assert_error(403, None, "scim:events");
    // The published key needs no token and says what it is.
    let jwks = h.get("/events/jwks.json").no_token().send().await;
    assert_eq!(
        jwks.header("content-type"),
        Some("application/jwk-set+json")
    );
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
    let _ = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwks.body["keys"][0]["x"].as_str().expect("x"))
        .expect("base64url");
}

/// Open streams and waiting polls are shared fairly: a tenant holding its share of them
/// gets 503 for one more, and another tenant still gets its own.
#[actix_web::test]
async fn one_tenant_cannot_hold_every_stream() {
    let h = Harness::new();
    let greedy = h.token_for("greedy", "scim:events");
    let other = h.token_for("other", "scim:events");
    let app = init_service(build_app(h.state())).await;
    let open = |token: &str| {
        TestRequest::get()
            .uri("/events/stream")
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request()
    };
    let mut held = Vec::new();
    loop {
        let resp = call_service(&app, open(&greedy)).await;
        if resp.status() == 503 {
            assert!(held.len() >= 8, "refused after only {}", held.len());
            assert_eq!(
                resp.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1")
            );
            break;
        }
        assert_eq!(resp.status(), 200);
        held.push(resp);
        assert!(held.len() <= 256, "no share was enforced");
    }
    let resp = call_service(&app, open(&other)).await;
    assert_eq!(resp.status(), 200, "another tenant still gets a stream");
    // A closed stream gives its place back.
    held.pop();
    let resp = call_service(&app, open(&greedy)).await;
    assert_eq!(resp.status(), 200);
}

/// A stream ends when its token is revoked, as a new request with it would be refused.
#[actix_web::test]
async fn a_stream_ends_when_its_token_is_revoked() {
    let h = Harness::new();
    let key = scimgate_http::SigningKey::load_or_create(h.data_dir()).expect("key");
    let (token, claims) = key
        .mint(
            &scimgate_http::TokenRequest {
                subject: "revoked-reader".into(),
                tenants: vec!["default".into()],
                scope: "scim:events".into(),
                ttl_secs: 3600,
            },
            now(),
        )
        .expect("mint");
    let app = init_service(build_app(h.state())).await;
    let resp = call_service(
        &app,
        TestRequest::get()
            .uri("/events/stream")
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let jti = claims.jti.expect("a jti");
    let db = h.admin();
    db.revoke_token(&jti, now(), true).expect("revoke");
    h.wait_for_access(|a| a.revoked.contains(&jti));
    // A commit wakes the stream, which then sees the revocation and ends.
    h.create_user("after-revoke").await;
    let ended = actix_web::rt::time::timeout(Duration::from_secs(20), async {
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
                None => return true,
                Some(Ok(chunk)) => {
                    let text = String::from_utf8_lossy(&chunk).into_owned();
                    assert!(
                        !text.contains("after-revoke"),
                        "an event after the revocation: {text}"
                    );
                }
                Some(Err(_)) => return true,
            }
        }
    })
    .await;
    assert_eq!(ended.ok(), Some(true), "the stream ended");
}

/// A PATCH whose result a write plugin changed: the event's operations end with what the
/// plugin changed, so that a consumer applying them gets what was stored.
#[actix_web::test]
async fn a_patch_event_carries_what_write_plugins_changed() {
    let h = Harness::with_config(|c| {
        let mut spec = crate::example_plugins::example("username-from-email", json!({}));
        spec.hooks = vec![
            scimgate_plugins::Hook::Create,
            scimgate_plugins::Hook::Patch,
        ];
        c.plugins.specs = vec![spec];
    });
    let events = h.token_for("default", "scim:events");
    let u = h
        .create_user_with(json!({"schemas": [USER_SCHEMA], "userName": "old@x.com",
            "emails": [{"value": "old@x.com", "type": "work", "primary": true}]}))
        .await;
    let id = id_of(&u);
    let r = h
        .req(actix_web::http::Method::PATCH, &format!("/scim/v2/Users/{id}"))
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "emails", "value": [{"value": "New@x.com", "type": "work", "primary": true}]}]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userName"], "new@x.com");
    let r = poll(&h, &events, "", json!({"returnImmediately": true})).await;
    let patch = r.body["sets"]
        .as_object()
        .expect("sets")
        .iter()
        .find(|(jti, _)| jti.starts_with("2."))
        .map(|(_, t)| t.as_str().expect("JWS").to_owned())
        .expect("the patch's event");
    let claims = verified(&h, &patch).await;
    let ops = &claims["events"][format!("{PROV}patch:full")]["data"]["Operations"];
    assert_eq!(ops[0]["path"], "emails");
    assert!(
        ops.as_array()
            .expect("ops")
            .contains(&json!({"op": "replace", "path": "userName", "value": "new@x.com"})),
        "{ops}"
    );
}
