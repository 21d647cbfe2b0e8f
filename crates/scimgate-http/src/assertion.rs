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
/// Most `jti`s remembered; past it the expired ones go, and then the oldest are refused.
const SEEN_CAPACITY: usize = 100_000;

/// The claims of an assertion that matter here.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    jti: Option<String>,
    exp: i64,
    iat: Option<i64>,
}

/// Keys fetched from each URL, and the `jti`s already taken.
#[derive(Default)]
pub struct Assertions {
    fetched: Mutex<HashMap<String, Fetched>>,
    seen: Mutex<HashMap<(String, String), i64>>,
}

struct Fetched {
    keys: JwkSet,
    at: Instant,
    /// When an unknown `kid` last had the keys fetched again.
    for_unknown: Option<Instant>,
}

impl Assertions {
    /// Checks `assertion` for `client` at `now` (Unix seconds); the reason it fails, for
    /// the `invalid_client` description (never the key material).
    pub fn verify(
        &self,
        client: &OAuthClient,
        assertion: &str,
        now: i64,
        leeway: u64,
    ) -> Result<(), String> {
        let trust = client
            .assertion
            .as_ref()
            .ok_or("this client authenticates with a secret, not an assertion")?;
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|e| format!("the assertion is not a JWT: {e}"))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or("the assertion's header has no 'kid'")?;
        let jwk = self.key(trust, kid)?;
        if !algorithm_fits(&jwk, header.alg) {
            return Err(format!("key '{kid}' cannot sign {:?}", header.alg));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key '{kid}': {e}"))?;
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
        let jti = claims.jti.ok_or("the assertion has no 'jti'")?;
        self.take_once(&client.client_id, jti, claims.exp, now)
    }

    /// The signer's key `kid`: from the file, or from the URL's keys, fetched again when
    /// they are old or do not have it (at most every `FETCH_GAP`).
    fn key(&self, trust: &scimgate_store::ClientAssertion, kid: &str) -> Result<Jwk, String> {
        if let Some(path) = &trust.jwks_file {
            let text = std::fs::read(path).map_err(|e| format!("the JWKS file {path}: {e}"))?;
            let set: JwkSet = serde_json::from_slice(&text)
                .map_err(|e| format!("the JWKS file {path} is not a JWKS: {e}"))?;
            return set
                .find(kid)
                .cloned()
                .ok_or_else(|| format!("no key '{kid}' in {path}"));
        }
        let url = trust.jwks_url.as_deref().ok_or("the client has no JWKS")?;
        let mut fetched = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = fetched.get(url);
        if let Some(f) = known
            && f.at.elapsed() < KEYS_KEPT
            && let Some(jwk) = f.keys.find(kid)
        {
            return Ok(jwk.clone());
        }
        // Keys still fresh that lack the `kid`: fetched again at most every FETCH_GAP.
        let unknown = known.is_some_and(|f| f.at.elapsed() < KEYS_KEPT);
        if unknown
            && known
                .and_then(|f| f.for_unknown)
                .is_some_and(|at| at.elapsed() < FETCH_GAP)
        {
            return Err(format!("no key '{kid}' at {url} (fetched moments ago)"));
        }
        // Held while fetching: one fetch of a URL at a time, others wait for its keys.
        let keys = fetch(url)?;
        let jwk = keys.find(kid).cloned();
        let now = Instant::now();
        fetched.insert(
            url.to_owned(),
            Fetched {
                keys,
                at: now,
                for_unknown: unknown.then_some(now),
            },
        );
        jwk.ok_or_else(|| format!("no key '{kid}' at {url}"))
    }

    /// Remembers `jti` until `exp`; refused when it was seen.
    fn take_once(&self, client: &str, jti: String, exp: i64, now: i64) -> Result<(), String> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= SEEN_CAPACITY {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= SEEN_CAPACITY {
                return Err("too many assertions are valid at once; try again later".into());
            }
        }
        match seen.entry((client.to_owned(), jti)) {
            std::collections::hash_map::Entry::Occupied(e) if *e.get() >= now => {
                Err("the assertion was used already ('jti')".into())
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.insert(exp);
                Ok(())
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(exp);
                Ok(())
            }
        }
    }
}

/// Whether a key of this type can have made a signature with `alg` (never an HMAC: a
/// public key is no shared secret).
fn algorithm_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm as A;
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
