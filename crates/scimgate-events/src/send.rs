//! One try of one event at one receiver: the SET rendered for it, passed through the
//! `event` hook, signed (RFC 8935 push) or made a Standard Webhooks body, POSTed, and the
//! answer read as what the delivery loop (`push`) does next.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use scimgate_store::EventRecord;
use serde_json::{Value, json};

use crate::config::{Format, ReceiverConfig};
use crate::error::EventsError;
use crate::feed::Feed;
use crate::set::{Audience, Mode, render};

/// How one try went.
pub(crate) enum Outcome {
    Accepted,
    /// The `event` hook dropped it for this receiver: passed, and counted.
    Dropped,
    /// The receiver refused this event (400): it is passed, and counted.
    Rejected(String),
    Retry {
        /// The wait the receiver asked for (`Retry-After` on a 429 or 503).
        after: Option<Duration>,
        error: String,
        /// Whether every event would meet it (the receiver unreachable, overloaded, or its
        /// set-up refused), rather than this event alone (a 500 or 413 to it, a failed
        /// `event` hook): the first holds the receiver's every tenant, the second only
        /// the event's own.
        whole: bool,
    },
}

/// How to reach one receiver: its URL and audience, what it wants, its secrets (read
/// from their files once, at start) and its HTTP agent.
pub(crate) struct Sender {
    name: String,
    url: String,
    audience: Option<String>,
    mode: Mode,
    format: Format,
    authorization: Option<String>,
    secret: Option<Vec<u8>>,
    agent: ureq::Agent,
}

impl Sender {
    pub(crate) fn new(config: &ReceiverConfig) -> Result<Sender, EventsError> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| {
                    EventsError::Config(format!(
                        "events.receivers '{}': {what} {}: {e}",
                        config.name,
                        path.display()
                    ))
                })
        };
        let authorization = config
            .authorization_file
            .as_deref()
            .map(|p| read(p, "authorization_file"))
            .transpose()?;
        let secret = match &config.secret_file {
            Some(path) => Some(webhook_secret(&read(path, "secret_file")?).map_err(|why| {
                EventsError::Config(format!("events.receivers '{}': {why}", config.name))
            })?),
            None => None,
        };
        // The timeout bounds each step of a try (connect, send, the answer), not the whole:
        // a whole-call timeout makes the HTTP client resolve the host on a new thread on
        // every call, a thread per event. The name is resolved on this receiver's own
        // thread, which only this receiver waits on.
        let timeout = Some(Duration::from_millis(config.timeout_ms.max(1)));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(timeout)
            .timeout_send_request(timeout)
            .timeout_send_body(timeout)
            .timeout_recv_response(timeout)
            .timeout_recv_body(timeout)
            .max_redirects(0)
            .build()
            .into();
        Ok(Sender {
            name: config.name.clone(),
            url: config.url.clone(),
            audience: config.audience.clone(),
            mode: config.mode,
            format: config.format,
            authorization,
            secret,
            agent,
        })
    }

    pub(crate) fn send(&self, feed: &Feed, event: &EventRecord) -> Outcome {
        let audience = self.audience.as_deref().unwrap_or(&self.url);
        let claims = render(
            event,
            &Audience {
                issuer: &feed.issuer,
                audience,
                mode: self.mode,
                base_url: feed.base_url.as_deref(),
            },
        );
        let claims = match &feed.hook {
            None => claims,
            Some(hook) => match hook.apply(&self.name, event, claims) {
                Ok(Some(claims)) => claims,
                Ok(None) => return Outcome::Dropped,
                Err(error) => {
                    return Outcome::Retry {
                        after: None,
                        error,
                        whole: false,
                    };
                }
            },
        };
        let mut request = self.agent.post(&self.url);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        let sent = match self.format {
            Format::Set => match feed.key.sign(&claims) {
                Ok(token) => request
                    .header("content-type", "application/secevent+jwt")
                    .header("accept", "application/json")
                    .send(token),
                Err(e) => {
                    return Outcome::Retry {
                        after: None,
                        error: e.to_string(),
                        whole: true,
                    };
                }
            },
            Format::Webhook => {
                let body = webhook_body(&claims, &event.at).to_string();
                let id = claims["jti"].as_str().unwrap_or_default().to_owned();
                let timestamp = feed.clock.now().unix_timestamp().to_string();
                let signature = self.sign_webhook(&id, &timestamp, &body);
                request
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", &timestamp)
                    .header("webhook-signature", &signature)
                    .send(body)
            }
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    error: e.to_string(),
                    whole: true,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, feed.clock.now()));
        let body = response
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        match status {
            200..=299 => Outcome::Accepted,
            // RFC 8935 §2.4: a 400 names what is wrong. `invalid_request` is this event's
            // (passed, counted); the others (credentials, key, issuer, audience) are the
            // receiver's set-up, which every event would meet: tried again, so that a
            // rotated token does not silently pass the whole feed.
            400 if !receiver_wide(&body) => {
                Outcome::Rejected(scimgate_model::excerpt(&body, 300).into_owned())
            }
            _ => Outcome::Retry {
                after: retry_after.filter(|_| matches!(status, 429 | 503)),
                error: format!(
                    "{} answered {status}: {}",
                    self.url,
                    scimgate_model::excerpt(&body, 200)
                ),
                whole: matches!(status, 400 | 401 | 403 | 404 | 405 | 429 | 502 | 503 | 504),
            },
        }
    }

    /// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` (Standard Webhooks).
    fn sign_webhook(&self, id: &str, timestamp: &str, body: &str) -> String {
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            self.secret.as_deref().unwrap_or_default(),
        );
        let tag = ring::hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): seconds, or an HTTP date, as the wait from
/// `now` (none for a date already past).
fn retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = time::OffsetDateTime::from(httpdate::parse_http_date(value).ok()?);
    Duration::try_from(at - now).ok()
}

/// A Standard Webhooks secret: `whsec_` and the base64 of the key.
fn webhook_secret(text: &str) -> Result<Vec<u8>, String> {
    let encoded = text
        .strip_prefix("whsec_")
        .ok_or("the webhook secret must be 'whsec_' followed by base64")?;
    // The decoder's own message would quote a byte of the secret: not repeated.
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the webhook secret after 'whsec_' is not base64".to_owned())?;
    if key.len() < 24 {
        return Err("the webhook secret must hold at least 24 bytes".into());
    }
    Ok(key)
}

/// Whether a 400's body names an RFC 8935 error of the receiver's set-up rather than of
/// the event.
fn receiver_wide(body: &str) -> bool {
    const SET_UP: [&str; 5] = [
        "authentication_failed",
        "access_denied",
        "invalid_key",
        "invalid_issuer",
        "invalid_audience",
    ];
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("err").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|err| SET_UP.contains(&err.as_str()))
}

/// A webhook's body: the event's type, time and the SET's claims.
fn webhook_body(claims: &Value, at: &str) -> Value {
    let kind = claims["events"]
        .as_object()
        .and_then(|events| events.keys().next())
        .cloned()
        .unwrap_or_default();
    json!({"type": kind, "timestamp": at, "data": claims})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = time::macros::datetime!(2026-11-29 12:00:00 UTC);
        let cases: [(&str, Option<Duration>); 7] = [
            ("30", Some(Duration::from_secs(30))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "Sun, 29 Nov 2026 12:01:30 GMT",
                Some(Duration::from_secs(90)),
            ),
            // RFC 850 and asctime forms are HTTP dates too (RFC 9110 §5.6.7).
            (
                "Sunday, 29-Nov-26 12:00:10 GMT",
                Some(Duration::from_secs(10)),
            ),
            ("Sun Nov 29 12:00:05 2026", Some(Duration::from_secs(5))),
            ("Sun, 29 Nov 2026 11:59:00 GMT", None),
            ("soon", None),
        ];
        for (value, expected) in cases {
            assert_eq!(retry_after(value, now), expected, "{value:?}");
        }
    }
}
