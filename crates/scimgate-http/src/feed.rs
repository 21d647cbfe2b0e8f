//! The change feed's HTTP side, outside `/scim/v2`:
//! - `GET /events/jwks.json`: the public key events are signed with (RFC 7517). It needs no
//!   token: it is public, and a receiver fetches it to verify.
//! - `POST /events/poll`: RFC 8936 poll delivery. A consumer (a token with `scim:events`)
//!   acknowledges what it has (`ack`, `setErrs`) and gets up to `maxEvents` more, at once
//!   or when they come (`returnImmediately: false`, up to 30 s). Its position is a named
//!   cursor (the token's subject, or `?cursor=NAME` under it), stored, so that it resumes
//!   after a reconnect or a restart: every event after the last one it acknowledged in
//!   order.
//! - `GET /events/stream`: the same events as Server-Sent Events, for simple consumers:
//!   `id` is the event's sequence number, so `Last-Event-ID` resumes after it; `data` is
//!   the SET's claims as JSON (the consumer is talking to this server directly, over TLS).
//!
//! Both are per tenant (`domain`, as for SCIM requests): a consumer sees only the tenants
//! its token may act for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use scimgate_events::{Audience, CONSUMER_AUDIENCE, Feed, Mode, jti, render};
use scimgate_model::{ScimError, ScimType};
use scimgate_store::{EventPosition, EventRecord, POLL_CURSOR, STREAM_CURSOR};
use serde_json::{Map, Value, json};

use crate::auth;
use crate::blocking::storage;
use crate::error::ApiError;
use crate::feed_watch::TenantWatch;
use crate::query::QueryParams;
use crate::state::AppState;
use crate::token::SCOPE_EVENTS;

/// Most events in one poll answer.
const MAX_EVENTS: usize = 1000;
/// Events read from the store at a time (each may be a large group).
const READ_AT_ONCE: usize = 20;
/// About the most bytes of SETs in one poll answer; past it, `moreAvailable`.
const PAGE_BYTES: usize = 4 << 20;
/// Most named cursors (`?cursor=`) one subject keeps in one tenant, polls and streams
/// together: each holds its tenant's events from pruning until it is read or forgotten.
const NAMED_CURSORS: usize = 16;
/// Longest a poll with `returnImmediately: false` waits for events.
const LONG_POLL: Duration = Duration::from_secs(30);
/// A comment line this often keeps an idle stream's proxies from closing it.
const KEEPALIVE: Duration = Duration::from_secs(5);

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(state.feed.key.jwks().to_string())
}

/// Who is reading the feed, in which tenant, under which cursor, in which mode, and until
/// when its token holds.
struct Consumer {
    tenant: String,
    /// The cursor's stored name: the subject and the name, unambiguous (JSON), under
    /// `cursor:` for polls and `stream:` for streams, which never share a position.
    cursor: String,
    /// Whether the cursor was named (`?cursor=`), not the subject's own.
    named: bool,
    /// What every stored cursor of the subject starts with after its kind (`cursor:` or
    /// `stream:`).
    subject_cursors: String,
    audience: String,
    mode: Mode,
    expires: i64,
    jti: Option<String>,
}

fn consumer(req: &HttpRequest, state: &AppState, kind: &str) -> Result<Consumer, ApiError> {
    let claims = auth::authenticate(req, state)?;
    let tenant = auth::tenant_for(req, &claims, state)?;
    auth::require_scope(&claims, &[SCOPE_EVENTS], "/events")?;
    auth::mark_authenticated(req, &claims, tenant.clone());
    let query = QueryParams::parse(req.query_string())?;
    // A cursor belongs to the token's subject: `?cursor=NAME` names one of its own, so
    // that one consumer can never move another's position.
    let name = match query.get("cursor") {
        None => None,
        Some(name)
            if !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Some(name.to_owned())
        }
        Some(name) => {
            return Err(invalid(format!(
                "'cursor' must be 1 to 64 letters, digits, '-', '_' or '.', not '{}'",
                scimgate_model::excerpt(name, 64)
            )));
        }
    };
    let mode = match query.get("mode") {
        None | Some("full") => Mode::Full,
        Some("notice") => Mode::Notice,
        Some(other) => {
            return Err(invalid(format!(
                "'mode' is 'full' or 'notice', not '{}'",
                scimgate_model::excerpt(other, 32)
            )));
        }
    };
    // `/` parts the subject from the cursor's name (which has none), so a `/` or `%` in
    // the subject is escaped: subject `a/n` and subject `a`'s cursor `n` never share an
    // audience, nor a jti.
    let subject = claims.sub.replace('%', "%25").replace('/', "%2F");
    let audience = match &name {
        None => format!("{CONSUMER_AUDIENCE}{subject}"),
        Some(name) => format!("{CONSUMER_AUDIENCE}{subject}/{name}"),
    };
    Ok(Consumer {
        tenant,
        cursor: format!("{kind}{}", json!([claims.sub, name])),
        named: name.is_some(),
        subject_cursors: json!([claims.sub])
            .to_string()
            .trim_end_matches(']')
            .to_owned()
            + ",",
        audience,
        mode,
        expires: claims.exp,
        jti: claims.jti.clone(),
    })
}

fn invalid(detail: String) -> ApiError {
    ApiError::Scim(ScimError::new(400, Some(ScimType::InvalidValue), detail))
}

/// An RFC 8936 poll request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PollRequest {
    max_events: Option<usize>,
    return_immediately: Option<bool>,
    ack: Vec<String>,
    set_errs: Map<String, Value>,
}

pub async fn poll(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = consumer(&req, &state, POLL_CURSOR)?;
    let request: PollRequest = if body.is_empty() {
        PollRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Scim(ScimError::invalid_syntax(format!("poll request: {e}"))))?
    };
    let max = request.max_events.unwrap_or(100).min(MAX_EVENTS);
    let feed = state.feed.clone();
    let position = cursor_position(&state, &who).await?;
    if let Some((jti, err)) = request.set_errs.iter().next() {
        // One line a poll, whatever the consumer sends.
        tracing::warn!(
            cursor = %scimgate_model::excerpt(&who.cursor, 200), reported = request.set_errs.len(),
            first = %scimgate_model::excerpt(jti, 64), error = %scimgate_model::excerpt(&err.to_string(), 300),
            "a consumer reported events it could not process"
        );
    }
    // Acknowledged (or reported as failed, which the consumer has dealt with): the
    // position moves over every one in order; a gap stays, to be sent again.
    let acked: std::collections::HashSet<&str> = request
        .ack
        .iter()
        .chain(request.set_errs.keys())
        .take(MAX_EVENTS)
        .map(String::as_str)
        .collect();
    let at = acknowledged(&feed, &who, position, &acked).await?;
    if at != position {
        // Committed before the answer: the consumer's next poll, which may come at once,
        // must start from here, or its acknowledgements of the next events would wait on
        // a gap that is not one.
        let (store, stored) = (Arc::clone(&feed.store), position_at(&feed, &who, at));
        storage(store.answer_deadline(), move || {
            Ok(store.commit_event_position(stored)?)
        })
        .await?;
    }
    let started = Instant::now();
    let wait = if request.return_immediately.unwrap_or(false) || max == 0 {
        Duration::ZERO
    } else {
        LONG_POLL
    };
    // A poll that may wait holds one of its tenant's places for waiting while it does.
    let _place = if wait > Duration::ZERO {
        Some(state.feed_watch.admit(&who.tenant)?)
    } else {
        None
    };
    // Read a few at a time (each may be a large group); answer up to maxEvents and up to
    // a byte budget, so that a page of large groups never holds hundreds of megabytes.
    let chunk = max.clamp(1, READ_AT_ONCE);
    let mut watch = state.feed_watch.subscribe(&who.tenant);
    loop {
        let mut batch = read(&feed, &who.tenant, at, chunk + 1).await?;
        if !batch.is_empty() || started.elapsed() >= wait {
            let (mut sets, mut bytes, mut last, mut more) = (Map::new(), 0usize, at, false);
            loop {
                let after_this = batch.len() > chunk;
                for event in batch.iter().take(chunk) {
                    if sets.len() >= max || bytes >= PAGE_BYTES {
                        more = true;
                        break;
                    }
                    let claims = render(event, &audience(&feed, &who));
                    let token = feed
                        .key
                        .sign(&claims)
                        .map_err(|e| ApiError::Internal(e.to_string()))?;
                    bytes += token.len();
                    last = event.seq;
                    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
                    sets.insert(jti, json!(token));
                }
                if more || !after_this {
                    break;
                }
                if sets.len() >= max || bytes >= PAGE_BYTES {
                    more = true;
                    break;
                }
                batch = read(&feed, &who.tenant, last, chunk + 1).await?;
            }
            return Ok(HttpResponse::Ok().json(json!({"sets": sets, "moreAvailable": more})));
        }
        watch
            .wait_past(at, wait.saturating_sub(started.elapsed()))
            .await;
    }
}

pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = consumer(&req, &state, STREAM_CURSOR)?;
    let place = state.feed_watch.admit(&who.tenant)?;
    let feed = state.feed.clone();
    // Read (and a new named cursor admitted) even when `Last-Event-ID` says where to start.
    let stored = cursor_position(&state, &who).await?;
    let after = match req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(QueryParams::parse(req.query_string())?.get("after"))
    {
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("Last-Event-ID must be an event's sequence number".into()))?,
        None => stored,
    };
    let state = StreamState {
        feed,
        access: Arc::clone(&state.access),
        watch: state.feed_watch.subscribe(&who.tenant),
        _place: place,
        who: Arc::new(who),
        after,
        last_sent: Instant::now(),
        pending: std::collections::VecDeque::new(),
        handed: after,
        saved: after,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((chunk, s))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

struct StreamState {
    feed: Feed,
    /// Tenants and revocations as the server sees them now: a stream ends when its token
    /// is revoked or expires, or its tenant is removed, as a new request would be refused.
    access: Arc<crate::access::AccessCache>,
    /// The tenant's last event number, which wakes the stream.
    watch: TenantWatch,
    /// The tenant's place for this stream, given back when the client goes.
    _place: scimgate_limits::Slot,
    who: Arc<Consumer>,
    after: i64,
    last_sent: Instant,
    /// Events read, rendered, not yet handed to the connection: (seq, frame).
    pending: std::collections::VecDeque<(i64, Bytes)>,
    /// The last event handed to the connection, and the last position saved: a position
    /// is saved only for events the connection has taken (it asks for the next piece once
    /// it wrote the last), never for events merely read.
    handed: i64,
    saved: i64,
}

impl StreamState {
    /// The next piece of the stream: events, or a keep-alive comment when none came;
    /// `None` ends the stream (its token or tenant no longer holds).
    async fn next_chunk(&mut self) -> Option<Result<Bytes, actix_web::Error>> {
        loop {
            if !self.still_allowed() {
                return None;
            }
            if self.pending.is_empty() && self.handed > self.saved {
                save_position(&self.feed, &self.who, self.handed);
                self.saved = self.handed;
            }
            if let Some((seq, chunk)) = self.pending.pop_front() {
                self.last_sent = Instant::now();
                self.handed = seq;
                return Some(Ok(chunk));
            }
            let events = match read(&self.feed, &self.who.tenant, self.after, READ_AT_ONCE).await {
                Ok(events) => events,
                Err(e) => return Some(Err(e.into())),
            };
            if let Some(last) = events.last() {
                self.after = last.seq;
            }
            for event in &events {
                let claims = render(event, &audience(&self.feed, &self.who));
                let name = claims["events"]
                    .as_object()
                    .and_then(|e| e.keys().next().cloned())
                    .unwrap_or_default();
                let frame = format!("id: {}\nevent: {name}\ndata: {claims}\n\n", event.seq);
                self.pending.push_back((event.seq, Bytes::from(frame)));
            }
            if self.pending.is_empty() {
                if self.last_sent.elapsed() >= KEEPALIVE {
                    self.last_sent = Instant::now();
                    return Some(Ok(Bytes::from_static(b": keepalive\n\n")));
                }
                self.watch.wait_past(self.after, KEEPALIVE).await;
            }
        }
    }
}

impl StreamState {
    fn still_allowed(&self) -> bool {
        let access = self.access.current();
        let now = self.feed.clock.now().unix_timestamp();
        now < self.who.expires
            && access.tenants.contains(&self.who.tenant)
            && self
                .who
                .jti
                .as_ref()
                .is_none_or(|jti| !access.revoked.contains(jti))
    }
}

fn audience<'a>(feed: &'a Feed, who: &'a Consumer) -> Audience<'a> {
    Audience {
        issuer: &feed.issuer,
        audience: &who.audience,
        mode: who.mode,
        base_url: feed.base_url.as_deref(),
    }
}

async fn read(
    feed: &Feed,
    tenant: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRecord>, ApiError> {
    let (store, tenant) = (Arc::clone(&feed.store), tenant.to_owned());
    storage(store.answer_deadline(), move || {
        Ok(store.events(&tenant, after, limit)?)
    })
    .await
}

/// Where the consumer's cursor stands (0: at the start). A named cursor the subject does
/// not have yet is stored now, unless the subject has its fill of them in the tenant;
/// they are counted and stored one at a time, so that concurrent first uses cannot pass
/// the cap together.
async fn cursor_position(state: &AppState, who: &Consumer) -> Result<i64, ApiError> {
    let stored = {
        let (store, cursor, tenant) = (
            Arc::clone(&state.feed.store),
            who.cursor.clone(),
            who.tenant.clone(),
        );
        storage(store.answer_deadline(), move || {
            Ok(store.event_position(&cursor, &tenant)?)
        })
        .await?
    };
    if let Some(seq) = stored {
        return Ok(seq);
    }
    if !who.named {
        return Ok(0);
    }
    let _one_at_a_time = state.feed_watch.new_cursors.lock().await;
    let (store, prefix) = (Arc::clone(&state.feed.store), who.subject_cursors.clone());
    let (cursor, tenant, new) = (
        who.cursor.clone(),
        who.tenant.clone(),
        position_at(&state.feed, who, 0),
    );
    let admitted = storage(store.answer_deadline(), move || {
        if let Some(seq) = store.event_position(&cursor, &tenant)? {
            return Ok(Some(seq));
        }
        // The rare path (a cursor's first use) reads every position.
        let others = store
            .event_positions()?
            .iter()
            .filter(|p| {
                let named = p
                    .consumer
                    .strip_prefix(POLL_CURSOR)
                    .or_else(|| p.consumer.strip_prefix(STREAM_CURSOR))
                    .is_some_and(|c| c.starts_with(&prefix) && !c.ends_with(",null]"));
                p.tenant == tenant && named
            })
            .count();
        if others >= NAMED_CURSORS {
            return Ok(None);
        }
        store.commit_event_position(new)?;
        Ok(Some(0))
    })
    .await?;
    admitted.ok_or_else(|| {
        invalid(format!(
            "this subject already has {NAMED_CURSORS} named cursors in tenant '{}': read on with one of them, or have the operator forget one (scimgate events forget)",
            who.tenant
        ))
    })
}

/// How far the acknowledgements move the cursor from `position`: over each next event
/// whose `jti` was acknowledged exactly as it was issued to this consumer (a consumer
/// cannot acknowledge an event it was not sent, nor one past the last).
async fn acknowledged(
    feed: &Feed,
    who: &Consumer,
    position: i64,
    acked: &std::collections::HashSet<&str>,
) -> Result<i64, ApiError> {
    let mut at = position;
    loop {
        if !acked
            .iter()
            .any(|jti| jti.starts_with(&format!("{}.", at + 1)))
        {
            return Ok(at);
        }
        let events = read(feed, &who.tenant, at, READ_AT_ONCE).await?;
        for event in &events {
            if !acked.contains(jti(event, &who.audience).as_str()) {
                return Ok(at);
            }
            at = event.seq;
        }
        if events.len() < READ_AT_ONCE {
            return Ok(at);
        }
    }
}

/// Queues the consumer's position (a stream's: it keeps its own place meanwhile).
fn save_position(feed: &Feed, who: &Consumer, seq: i64) {
    feed.store.save_event_position(position_at(feed, who, seq));
}

fn position_at(feed: &Feed, who: &Consumer, seq: i64) -> EventPosition {
    EventPosition {
        consumer: who.cursor.clone(),
        tenant: who.tenant.clone(),
        seq,
        updated: scimgate_model::format_timestamp(feed.clock.now()),
        state: "active".into(),
        failing_since: None,
        last_error: None,
    }
}
