//! The plugin host with real modules: well-behaved and hostile WAT fixtures, each loaded,
//! validated and called as the server would.

use std::path::PathBuf;
use std::time::Instant;

use scimgate_plugins::{
    ABI_VERSION, CallFailure, CallInput, Decision, Limits, PluginHost, PluginLoadError, PluginSpec,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.wat"))
}

fn spec(name: &str) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        file: fixture(name),
        hooks: vec![],
        resource_types: vec![],
        tenants: None,
        config: json!({}),
        limits: Limits::default(),
        on_failure: Default::default(),
        sees_password: false,
        receivers: None,
    }
}

fn input<'a>(resource: &'a Value, config: &'a Value) -> CallInput<'a> {
    CallInput {
        abi: ABI_VERSION,
        hook: "create",
        resource_type: "User",
        tenant: "default",
        resource,
        before: None,
        operations: None,
        request_id: Some("r1"),
        receiver: None,
        config,
    }
}

fn call(name: &str, limits: Limits) -> Result<Decision, CallFailure> {
    let mut s = spec(name);
    s.limits = limits;
    let host = PluginHost::load(vec![s]).expect("loads");
    let (resource, config) = (json!({"userName": "u"}), json!({}));
    host.call(0, &input(&resource, &config))
}

#[test]
fn decisions_come_back_as_sent() {
    assert_eq!(call("accept", Limits::default()), Ok(Decision::Accept));
    assert_eq!(call("logger", Limits::default()), Ok(Decision::Accept));
    assert_eq!(
        call("reject", Limits::default()),
        Ok(Decision::Reject {
            status: 422,
            scim_type: Some("invalidValue".into()),
            detail: "department is required".into()
        })
    );
    let Ok(Decision::Modify { resource }) = call("modify", Limits::default()) else {
        panic!("modify")
    };
    assert_eq!(resource["title"], "stamped");
}

#[test]
fn hostile_plugins_fail_only_their_call() {
    let started = Instant::now();
    assert_eq!(
        call(
            "loop",
            Limits {
                deadline_ms: 30,
                ..Limits::default()
            }
        ),
        Err(CallFailure::Deadline(30))
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "the deadline stopped the loop"
    );
    assert_eq!(
        call(
            "grow",
            Limits {
                memory_bytes: 1 << 20,
                ..Limits::default()
            }
        ),
        Err(CallFailure::Memory(1 << 20))
    );
    assert!(
        matches!(call("trap", Limits::default()), Err(CallFailure::Trap(t)) if t.contains("unreachable"))
    );
    assert_eq!(
        call("huge", Limits::default()),
        Err(CallFailure::OutputTooLarge(104_857_600, 1 << 20))
    );
    assert!(matches!(
        call("bad-json", Limits::default()),
        Err(CallFailure::BadOutput(_))
    ));
    // The same host goes on serving after a failure.
    let host = PluginHost::load(vec![spec("trap"), spec("accept")]).expect("loads");
    let (r, c) = (json!({}), json!({}));
    assert!(host.call(0, &input(&r, &c)).is_err());
    assert_eq!(host.call(1, &input(&r, &c)), Ok(Decision::Accept));
}

#[test]
fn bad_modules_stop_the_load_with_a_reason() {
    let err = |name: &str| match PluginHost::load(vec![spec(name)]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{name} loaded"),
    };
    assert!(
        err("wasi").contains("imports 'wasi_snapshot_preview1.fd_write'"),
        "{}",
        err("wasi")
    );
    assert!(err("no-marker").contains("does not export 'scim_abi_v1'"));
    let mut missing = spec("accept");
    missing.file = PathBuf::from("/nonexistent/plugin.wasm");
    assert!(matches!(
        PluginHost::load(vec![missing]),
        Err(PluginLoadError::Read { .. })
    ));
}

#[test]
fn every_call_gets_a_fresh_instance() {
    let host = PluginHost::load(vec![spec("accept")]).expect("loads");
    let (r, c) = (json!({"userName": "x".repeat(1000)}), json!({"k": 1}));
    for _ in 0..200 {
        assert_eq!(host.call(0, &input(&r, &c)), Ok(Decision::Accept));
    }
    // Reused pool slots are reset in place: no memory, grown page or global survives.
    let host = PluginHost::load(vec![spec("stateful")]).expect("loads");
    for _ in 0..300 {
        assert_eq!(host.call(0, &input(&r, &c)), Ok(Decision::Accept));
    }
    // From several threads at once, as the server calls it.
    let host = std::sync::Arc::new(host);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let host = std::sync::Arc::clone(&host);
            std::thread::spawn(move || {
                let (r, c) = (json!({}), json!({}));
                (0..100).all(|_| host.call(0, &input(&r, &c)) == Ok(Decision::Accept))
            })
        })
        .collect();
    for t in threads {
        assert!(
            t.join().expect("thread"),
            "a call saw an earlier call's state"
        );
    }
}

#[test]
fn compiled_code_is_cached_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let first = PluginHost::load_cached(vec![spec("reject")], Some(&cache)).expect("first");
    let files: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").collect();
    assert_eq!(files.len(), 1, "one compiled module cached");
    let (r, c) = (json!({}), json!({}));
    let second = PluginHost::load_cached(vec![spec("reject")], Some(&cache)).expect("second");
    assert_eq!(
        first.call(0, &input(&r, &c)),
        second.call(0, &input(&r, &c))
    );
    // A damaged cache file is not trusted blindly: the module is compiled again.
    let cached = std::fs::read_dir(&cache)
        .expect("dir")
        .next()
        .expect("file")
        .expect("entry")
        .path();
    std::fs::write(&cached, b"garbage").expect("damage");
    let third = PluginHost::load_cached(vec![spec("reject")], Some(&cache)).expect("recompiles");
    assert!(matches!(
        third.call(0, &input(&r, &c)),
        Ok(Decision::Reject { .. })
    ));
}

/// Issue 10, defect 4: one tenant's calls once took every pooled instance and another
/// tenant's plugins failed (and failed open). A tenant past its share is refused as
/// overload, which is not the plugin's failure; the other tenant's call runs.
#[test]
fn a_tenant_past_its_instance_share_is_refused_as_overload_while_others_run() {
    let mut s = spec("loop");
    s.limits.deadline_ms = 300;
    let host = std::sync::Arc::new(
        PluginHost::load(vec![s])
            .expect("loads")
            .with_instance_share(Some(1), std::time::Duration::from_millis(10)),
    );
    let running = {
        let host = std::sync::Arc::clone(&host);
        std::thread::spawn(move || {
            let (resource, config) = (json!({"userName": "u"}), json!({}));
            host.call(0, &input(&resource, &config))
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (resource, config) = (json!({"userName": "u"}), json!({}));
    let refused = host.call(0, &input(&resource, &config));
    match &refused {
        Err(failure) => assert!(failure.is_overload(), "{failure}"),
        Ok(d) => panic!("expected overload, got {d:?}"),
    }
    let mut other = input(&resource, &config);
    other.tenant = "other";
    let ran = host.call(0, &other);
    assert_eq!(ran, Err(CallFailure::Deadline(300)));
    assert_eq!(
        running.join().expect("thread"),
        Err(CallFailure::Deadline(300))
    );
}

/// The deadline counts the plugin's own CPU time: a call that waits for a core while the
/// machine is busy is not cut short for the waiting. (Wall time still bounds a call, at
/// twenty times its deadline.)
#[test]
fn the_deadline_is_measured_in_cpu_time() {
    let mut s = spec("loop");
    s.limits.deadline_ms = 100;
    let host = PluginHost::load(vec![s]).expect("loads");
    let (resource, config) = (json!({"userName": "u"}), json!({}));
    let started = Instant::now();
    assert_eq!(
        host.call(0, &input(&resource, &config)),
        Err(CallFailure::Deadline(100))
    );
    // On an idle core CPU time and wall time agree: the loop ran about its deadline.
    assert!(started.elapsed() >= std::time::Duration::from_millis(100));
}
