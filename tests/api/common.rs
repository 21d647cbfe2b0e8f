//! The harness: the real actix app from `build_app`, on a real SQLite file in a temporary
//! data folder, with tokens minted by the same key the server verifies. With
//! `API_TEST_BACKEND=postgres` the same app runs on PostgreSQL instead (the server
//! `POSTGRES_TEST_URL` names, a schema of its own per harness), as `scripts/test` runs the
//! suite a second time.

use std::path::Path;

use actix_web::http::Method;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::web;
use scimgate::{Config, build_state};
use scimgate_http::{AppState, SigningKey, TokenRequest, build_app};
use scimgate_store::{Admin, AdminDb, PgAdmin, PgOptions};
use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Whether the suite runs on PostgreSQL (`API_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    match std::env::var("API_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("API_TEST_BACKEND={other}: no such backend"),
    }
}

/// The app's state, built on a thread of its own: the tests run inside actix's runtime,
/// where PostgreSQL's blocking client may not connect (the server builds it before its
/// runtime starts).
fn built(config: &Config) -> web::Data<AppState> {
    off_runtime(|| build_state(config).expect("state"))
}

/// Runs `f` on a thread of its own, off the test's async runtime.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join()).expect("off the runtime")
}

/// A schema of its own on the test server; the address that puts it on the search path.
fn new_schema() -> String {
    let server = std::env::var("POSTGRES_TEST_URL").expect(
        "POSTGRES_TEST_URL names the PostgreSQL server the tests use; scripts/with-postgres starts one",
    );
    let schema = format!("api_{}", uuid::Uuid::new_v4().simple());
    postgres::Client::connect(&server, postgres::NoTls)
        .expect("connect")
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    format!("{server} options=-csearch_path={schema}")
}

pub struct Harness {
    _dir: tempfile::TempDir,
    pub config: Config,
    state: Option<web::Data<AppState>>,
    token: String,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A harness whose configuration `adjust` may change before the server starts.
    pub fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data: dir.path().join("data"),
            database: on_postgres().then(|| off_runtime(new_schema)),
            ..Config::default()
        };
        adjust(&mut config);
        let state = built(&config);
        let mut h = Harness {
            _dir: dir,
            config,
            state: Some(state),
            token: String::new(),
        };
        h.token = h.token_for("default", "scim:read scim:write");
        h
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone().expect("running")
    }

    /// Stops the app (the store closes when its last handle goes) and starts it again on
    /// the same data folder.
    pub fn restart(&mut self) {
        // Dropping the last handle closes the store; its writer drains and exits first.
        self.state = None;
        self.state = Some(built(&self.config));
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.config.data.join(scimgate::DATABASE_FILE)
    }

    /// The command-line tools' view of the database the server runs on.
    pub fn admin(&self) -> Box<dyn Admin> {
        match &self.config.database {
            Some(url) => Box::new(PgAdmin::open(&PgOptions::new(url)).expect("admin connection")),
            None => Box::new(AdminDb::open(&self.db_path()).expect("admin db")),
        }
    }

    /// The stored password hash of resource `id`, read from the database itself.
    pub fn password_hash(&self, id: &str) -> Option<String> {
        match &self.config.database {
            Some(url) => off_runtime(|| {
                postgres::Client::connect(url, postgres::NoTls)
                    .expect("connect")
                    .query_one("SELECT password_hash FROM resources WHERE id = $1", &[&id])
                    .expect("row")
                    .get(0)
            }),
            None => rusqlite::Connection::open(self.db_path())
                .expect("open db")
                .query_row(
                    "SELECT password_hash FROM resources WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .expect("row"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data
    }

    /// A token for `tenant`, registering the tenant first (as `scimgate tenant add` does)
    /// and waiting until the server has seen it.
    pub fn token_for(&self, tenant: &str, scope: &str) -> String {
        self.token_for_tenants(&[tenant], scope)
    }

    /// A token that may act for every tenant in `tenants` (the first is its default).
    pub fn token_for_tenants(&self, tenants: &[&str], scope: &str) -> String {
        for t in tenants {
            self.add_tenant(t);
        }
        let key = SigningKey::load_or_create(&self.config.data).expect("key");
        let req = TokenRequest {
            subject: "test".into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            scope: scope.into(),
            ttl_secs: 3600,
        };
        key.mint(&req, now()).expect("mint").0
    }

    /// Registers `tenant` in the database and waits until the server's cache has it.
    pub fn add_tenant(&self, tenant: &str) {
        self.admin()
            .add_tenant(tenant, "2026-01-01T00:00:00.000Z")
            .expect("add tenant");
        self.wait_for_access(|a| a.tenants.contains(tenant));
    }

    /// Waits (at most 5 s) until the server's view of tenants and revocations satisfies `done`.
    pub fn wait_for_access(&self, done: impl Fn(&scimgate_store::AccessSnapshot) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !done(&self.state().access.current()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the access cache did not refresh"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn req(&self, method: Method, path: &str) -> Req<'_> {
        Req {
            h: self,
            inner: TestRequest::default().method(method).uri(path),
            token: Some(self.token.clone()),
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.req(Method::GET, path)
    }
    pub fn post(&self, path: &str, body: Value) -> Req<'_> {
        self.req(Method::POST, path).json(&body)
    }
    pub fn put(&self, path: &str, body: Value) -> Req<'_> {
        self.req(Method::PUT, path).json(&body)
    }
    pub fn delete(&self, path: &str) -> Req<'_> {
        self.req(Method::DELETE, path)
    }

    /// Creates a user and returns its JSON.
    pub async fn create_user(&self, user_name: &str) -> Value {
        self.create_user_with(json!({"schemas": [USER_SCHEMA], "userName": user_name}))
            .await
    }

    pub async fn create_user_with(&self, body: Value) -> Value {
        let r = self.post("/scim/v2/Users", body).send().await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    pub async fn create_group(&self, name: &str, member_ids: &[&str]) -> Value {
        let members: Vec<Value> = member_ids.iter().map(|id| json!({"value": id})).collect();
        let r = self
            .post(
                "/scim/v2/Groups",
                json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members}),
            )
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }
}

pub fn now() -> i64 {
    std::time::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub struct Req<'a> {
    h: &'a Harness,
    inner: TestRequest,
    token: Option<String>,
}

impl Req<'_> {
    pub fn json(mut self, body: &Value) -> Self {
        self.inner = self
            .inner
            .insert_header(("content-type", "application/scim+json"))
            .set_payload(body.to_string());
        self
    }

    pub fn raw(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        if let Some(ct) = content_type {
            self.inner = self.inner.insert_header(("content-type", ct));
        }
        self.inner = self.inner.set_payload(body.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner = self
            .inner
            .insert_header((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header beside any of the same name (`header` replaces).
    pub fn append_header(mut self, name: &str, value: &str) -> Self {
        self.inner = self
            .inner
            .append_header((name.to_owned(), value.to_owned()));
        self
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// The client's address as the server sees the TCP peer.
    pub fn peer(mut self, addr: &str) -> Self {
        self.inner = self.inner.peer_addr(addr.parse().expect("socket address"));
        self
    }

    pub fn no_token(mut self) -> Self {
        self.token = None;
        self
    }

    pub async fn send(self) -> Resp {
        let app = init_service(build_app(self.h.state())).await;
        let mut req = self.inner;
        if let Some(t) = self.token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        let resp = call_service(&app, req.to_request()).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = read_body(resp).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a SCIM error: status, `scimType`, content type, and that `detail` names `needle`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>, needle: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/scim+json"));
        assert_eq!(
            self.body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(self.body["status"], json!(status.to_string()));
        assert_eq!(
            self.body.get("scimType").and_then(Value::as_str),
            scim_type,
            "body: {}",
            self.body
        );
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(needle),
            "detail '{detail}' does not mention '{needle}'"
        );
    }
}

/// One of the plugin host's WAT test fixtures as a plugin on every hook, failing closed.
pub fn wat_plugin(name: &str) -> scimgate_plugins::PluginSpec {
    scimgate_plugins::PluginSpec {
        name: name.into(),
        file: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("crates/scimgate-plugins/tests/fixtures/{name}.wat")),
        hooks: vec![],
        resource_types: vec![],
        tenants: None,
        config: json!({}),
        limits: scimgate_plugins::Limits::default(),
        on_failure: scimgate_plugins::FailMode::Closed,
        sees_password: false,
        receivers: None,
    }
}

/// Reads the tenant's audit through the API until `n` rows are there (rows are committed
/// with the writer's next batch, a moment after the answer).
pub async fn audit_rows(h: &Harness, token: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let r = h.get("/admin/audit?count=1000").token(token).send().await;
        assert_eq!(r.status, 200, "{}", r.body);
        let rows = r.body["entries"].as_array().cloned().unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("fewer than {n} audit rows");
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}
