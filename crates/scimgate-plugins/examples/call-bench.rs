//! Times whole plugin calls: a fresh instance, a 1 KB user in, the plugin's JSON out.
//! `cargo run --release -p scimgate-plugins --example call-bench -- PLUGIN.wasm [CALLS]`

use std::time::Instant;

use scimgate_plugins::{ABI_VERSION, CallInput, PluginHost, PluginSpec};
use serde_json::json;

// The server's allocator (src/main.rs): with glibc's, malloc and free were a sixth of a call.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args.next().ok_or("usage: call-bench PLUGIN.wasm [CALLS]")?;
    let calls: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let spec = PluginSpec {
        name: "bench".into(),
        file: file.into(),
        hooks: vec![],
        resource_types: vec![],
        tenants: None,
        config: json!({}),
        limits: Default::default(),
        on_failure: Default::default(),
        sees_password: false,
        receivers: None,
    };
    let loading = Instant::now();
    let host = PluginHost::load(vec![spec])?;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    // About 1 KB of user; userName differs from the work email, so username-from-email
    // rewrites it and re-serialises the whole resource.
    let resource = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "E0012345",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
        "displayName": "Babs Jensen",
        "title": "Tour Guide",
        "locale": "en-US",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}, {"value": "555-555-4444", "type": "mobile"}],
        "addresses": [{"streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA", "postalCode": "91608", "country": "US", "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios", "division": "Theme Park", "department": "Tour Operations"},
    });
    let config = json!({});
    let size = serde_json::to_vec(&resource)?.len();
    let input = CallInput {
        abi: ABI_VERSION,
        hook: "create",
        resource_type: "User",
        tenant: "t",
        resource: &resource,
        before: None,
        operations: None,
        request_id: None,
        receiver: None,
        config: &config,
    };
    for _ in 0..200 {
        host.call(0, &input)?;
    }
    let mut micros = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        host.call(0, &input)?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let pct = |p: f64| micros[((micros.len() as f64 * p) as usize).min(micros.len() - 1)];
    println!(
        "{calls} calls, {size}-byte user: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (module compiled and linked in {load_ms:.0} ms)",
        pct(0.50),
        pct(0.99),
        micros[micros.len() - 1]
    );
    Ok(())
}
