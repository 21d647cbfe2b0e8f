//! Workload identity federation: a client that authenticates at `/oauth/token` with a JWT
//! its identity provider signed (RFC 7523 §2.2, `client_assertion_type`
//! `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`), as Entra ID does with no
//! stored secret. The assertion's `iss`, `sub` and `aud` must be exactly the client's;
//! `exp` is required, `nbf` and `iat` are checked with the token leeway; its signature is
//! checked against the signer's published keys (a JWKS by URL, kept by `kid` and fetched
//! again periodically and on an unknown `kid`, or a JWKS file); and a `jti` is taken once
//! while the assertion is valid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use scimgate_store::OAuthClient;
use serde::Deserialize;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long fetched keys are kept before they are fetched again.
const KEYS_KEPT: Duration = Duration::from_secs(3600);
/// Least time between two fetches of one URL asked by an unknown `kid`: a key rotation is
/// seen at once, but a stream of made-up `kid`s must not make the server hammer the
/// identity provider.
const FETCH_GAP: Duration = Duration::from_secs(30);
/// Most bytes of a JWKS document.
const JWKS_BYTES: u64 = 1 << 20;

/// Longest an assertion may be valid for (from now to its `exp`): what is remembered
/// against replay is bounded by it.
const LONGEST_LIFETIME: i64 = 24 * 3600;
/// Most `jti`s remembered per client; past it the expired ones go, and then that client's
/// new assertions are refused until some expire (no other client is affected).
const SEEN_PER_CLIENT: usize = 10_000;
/// Longest `jti` taken.
const JTI_BYTES: usize = 256;

/// The claims of an assertion that matter here.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    jti: Option<String>,
    exp: i64,
    iat: Option<i64>,
}

/// Keys fetched from each URL, and each client's `jti`s already taken.
#[derive(Default)]
pub struct Assertions {
    fetched: Mutex<HashMap<String, Fetched>>,
    seen: Mutex<HashMap<String, HashMap<String, i64>>>,
}

#[derive(Default)]
struct Fetched {
    /// The keys of the last fetch that worked, and when it was.
    keys: Option<(JwkSet, Instant)>,
    /// When a fetch was last begun (worked or not): the next waits `FETCH_GAP`, unless
    /// the keys are too old.
    tried: Option<Instant>,
}

/// Why an assertion is refused: what the client is told, and what only the log gets
/// (URLs, paths and what a fetch returned are the operator's, not the caller's).
pub struct Refusal {
    pub client: String,
    pub log: Option<String>,
}

impl From<&str> for Refusal {
    fn from(client: &str) -> Refusal {
        Refusal {
            client: client.to_owned(),
            log: None,
        }
    }
}

impl From<String> for Refusal {
    fn from(client: String) -> Refusal {
        Refusal { client, log: None }
    }
}

fn unavailable(log: String) -> Refusal {
    Refusal {
        client: "the keys of the assertion's signer are not available now; try again later".into(),
        log: Some(log),
    }
}

impl Assertions {
    /// Checks `assertion` for `client` at `now` (Unix seconds).
    pub fn verify(
        &self,
        client: &OAuthClient,
        assertion: &str,
        now: i64,
        leeway: u64,
    ) -> Result<(), Refusal> {
        let trust = client
            .assertion
            .as_ref()
            .ok_or("unknown client, or a credential it does not use")?;
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|e| format!("the assertion is not a JWT: {e}"))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or("the assertion's header has no 'kid'")?;
        let jwk = self.key(trust, kid)?;
        if !algorithm_fits(&jwk, header.alg) {
            return Err(format!("the key named by 'kid' cannot sign {:?}", header.alg).into());
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| unavailable(format!("a signing key of client {}: {e}", client.name)))?;
        let mut v = Validation::new(header.alg);
        v.leeway = leeway;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.set_issuer(&[&trust.issuer]);
        v.set_audience(&[&trust.audience]);
        v.sub = Some(trust.subject.clone());
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &v)
            .map_err(|e| format!("the assertion does not hold: {e}"))?
            .claims;
        let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err("the assertion was issued in the future ('iat')".into());
        }
        if claims.exp.saturating_sub(now) > LONGEST_LIFETIME {
            return Err("the assertion is valid for longer than a day ('exp')".into());
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= JTI_BYTES)
            .ok_or("the assertion needs a 'jti' of 1 to 256 bytes")?;
        // Remembered until no check would take it any more: its `exp` and the leeway.
        self.take_once(
            &client.client_id,
            jti,
            claims.exp.saturating_add(leeway),
            now,
        )
    }

    /// The signer's key `kid`: from the file, or from the URL's keys. The keys are
    /// fetched when they are older than `KEYS_KEPT` or lack the `kid`, at most once per
    /// `FETCH_GAP` whether the fetch worked or not, and never while the lock is held:
    /// a slow or failing signer makes its clients wait, not the server.
    fn key(&self, trust: &scimgate_store::ClientAssertion, kid: &str) -> Result<Jwk, Refusal> {
        if let Some(path) = &trust.jwks_file {
            let read = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_slice::<JwkSet>(&text).map_err(|e| e.to_string()))
                .map_err(|e| unavailable(format!("the JWKS file {path}: {e}")))?;
            return read
                .find(kid)
                .cloned()
                .ok_or_else(|| "no key of the signer has that 'kid'".into());
        }
        let url = trust
            .jwks_url
            .as_deref()
            .ok_or_else(|| unavailable("an assertion client without a JWKS".into()))?;
        let lacking = {
            let mut fetched = self
                .fetched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = fetched.entry(url.to_owned()).or_default();
            let fresh = entry
                .keys
                .as_ref()
                .filter(|(_, at)| at.elapsed() < KEYS_KEPT);
            if let Some((keys, _)) = fresh
                && let Some(jwk) = keys.find(kid)
            {
                return Ok(jwk.clone());
            }
            let lacking = fresh.is_some();
            if entry.tried.is_some_and(|at| at.elapsed() < FETCH_GAP) {
                return Err(if lacking {
                    "no key of the signer has that 'kid'".into()
                } else {
                    unavailable(format!("the JWKS at {url} was tried moments ago"))
                });
            }
            // Marked before the fetch, so that requests meanwhile do not fetch too.
            entry.tried = Some(Instant::now());
            lacking
        };
        let got = fetch(url);
        let mut fetched = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = fetched.entry(url.to_owned()).or_default();
        match got {
            Ok(keys) => {
                let jwk = keys.find(kid).cloned();
                entry.keys = Some((keys, Instant::now()));
                // Only a fetch that an unknown `kid` asked for (or one that failed) holds
                // the next one off: a key rotation right after the keys were first read
                // is still seen at once.
                if !lacking {
                    entry.tried = None;
                }
                jwk.ok_or_else(|| "no key of the signer has that 'kid'".into())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Remembers `jti` for `client` until `until`; refused when it is remembered.
    fn take_once(&self, client: &str, jti: String, until: i64, now: i64) -> Result<(), Refusal> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = seen.entry(client.to_owned()).or_default();
        if taken.len() >= SEEN_PER_CLIENT {
            taken.retain(|_, end| *end >= now);
            if taken.len() >= SEEN_PER_CLIENT {
                return Err("too many of this client's assertions are valid at once".into());
            }
        }
        match taken.get(&jti) {
            Some(end) if *end >= now => Err("the assertion was used already ('jti')".into()),
            _ => {
                taken.insert(jti, until);
                Ok(())
            }
        }
    }
}

/// Whether this key can have made a signature with `alg`: by its type (never an HMAC: a
/// public key is no shared secret), its own `alg` when it names one, and its `use` when
/// that is not signing.
fn algorithm_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm as A;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return false;
    }
    if let Some(named) = jwk.common.key_algorithm
        && named.to_string() != format!("{alg:?}")
    {
        return false;
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            matches!(
                alg,
                A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
            )
        }
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, A::ES256) | (EllipticCurve::P384, A::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(_) => alg == A::EdDSA,
        // A shared secret (`oct`), or a key type this version does not know.
        _ => false,
    }
}

/// The JWKS at `url`, within a few seconds and a megabyte.
fn fetch(url: &str) -> Result<JwkSet, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .max_redirects(0)
        .build()
        .into();
    let mut answer = agent
        .get(url)
        .call()
        .map_err(|e| format!("could not fetch the JWKS at {url}: {e}"))?;
    let body = answer
        .body_mut()
        .with_config()
        .limit(JWKS_BYTES)
        .read_to_vec()
        .map_err(|e| format!("could not read the JWKS at {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not a JWKS: {e}"))
}

/// Refuses a JWKS URL that is not `https` (or `http` to a loopback address, for a signer
/// on the same host).
pub fn check_jwks_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("'{url}': {e}"))?;
    let host = uri.host().ok_or_else(|| format!("'{url}' has no host"))?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(format!(
            "'{url}' must be https (http only to a loopback address)"
        )),
    }
}
