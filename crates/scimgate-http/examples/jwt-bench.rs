//! What verifying one bearer token costs, per key kind: the key ring as the server builds
//! it, the test key pairs from `tests/fixtures/keys`. "first use" verifies the signature
//! (each token once); "again" is the same token on later requests, as IdPs send it.
//!
//!   cargo run --release -p scimgate-http --example jwt-bench [TOKENS]

use std::path::PathBuf;
use std::time::Instant;

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use scimgate_http::{AuthSettings, KeyRing, KeySpec, SigningKey, TokenRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokens: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let keys = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keys");
    let dir = std::env::temp_dir().join(format!("scimgate-jwt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secret = [3u8; 32];
    std::fs::write(
        dir.join("hs.secret"),
        base64::engine::general_purpose::STANDARD.encode(secret),
    )?;
    let spec = |kid: &str, algorithm: &str, file: PathBuf| KeySpec {
        kid: Some(kid.into()),
        algorithm: algorithm.into(),
        file,
        issuer: None,
        audience: None,
    };
    let local = SigningKey::from_secret(&[9u8; 32])?;
    let ring = KeyRing::load(
        &local,
        &AuthSettings {
            keys: vec![
                spec("rs", "RS256", keys.join("rsa-public.pem")),
                spec("es", "ES256", keys.join("ec256-public.pem")),
                spec("ed", "EdDSA", keys.join("ed25519-public.pem")),
            ],
            ..Default::default()
        },
    )?;
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let sign = |alg,
                kid: &str,
                key: &EncodingKey,
                n: usize|
     -> Result<String, jsonwebtoken::errors::Error> {
        let claims = serde_json::json!({"sub": "bench", "tenant": "default", "scope": "scim:read",
                                        "exp": now + 3600, "jti": format!("bench-{n}")});
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &claims, key)
    };
    let pem = |f: &str| std::fs::read(keys.join(f));
    let request = TokenRequest {
        subject: "bench".into(),
        tenants: vec!["default".into()],
        scope: "scim:read".into(),
        ttl_secs: 3600,
    };
    let rs = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")?)?;
    let es = EncodingKey::from_ec_pem(&pem("ec256-private.pem")?)?;
    let ed = EncodingKey::from_ed_pem(&pem("ed25519-private.pem")?)?;
    type Minter<'a> = Box<dyn Fn(usize) -> Result<String, Box<dyn std::error::Error>> + 'a>;
    let cases: Vec<(&str, Minter)> = vec![
        (
            "HS256 (scimgate token)",
            Box::new(|_| Ok(local.mint(&request, now)?.0)),
        ),
        (
            "RS256 2048-bit",
            Box::new(|n| Ok(sign(Algorithm::RS256, "rs", &rs, n)?)),
        ),
        (
            "ES256",
            Box::new(|n| Ok(sign(Algorithm::ES256, "es", &es, n)?)),
        ),
        (
            "EdDSA",
            Box::new(|n| Ok(sign(Algorithm::EdDSA, "ed", &ed, n)?)),
        ),
    ];
    let summary = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        format!("p50 {:7.1} µs  p99 {:7.1} µs", at(0.5), at(0.99))
    };
    for (label, mint) in cases {
        let minted: Vec<String> = (0..tokens).map(&mint).collect::<Result<_, _>>()?;
        let mut first = Vec::with_capacity(tokens);
        for token in &minted {
            let t = Instant::now();
            ring.verify(token, 0)?;
            first.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let mut again = Vec::with_capacity(tokens * 10);
        for _ in 0..10 {
            for token in &minted {
                let t = Instant::now();
                ring.verify(token, 0)?;
                again.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        println!(
            "verify {label:<24} first use {}   again {}",
            summary(first),
            summary(again)
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
