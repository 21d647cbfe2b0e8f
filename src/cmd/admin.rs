//! The commands that work on the data folder beside a running server: `token` (mint, list,
//! revoke), `tenant` (add, list, remove) and `audit tail`.

use scimgate::Config;
use scimgate::config::FlagOverrides;
use scimgate_http::{SigningKey, TokenRequest};
use scimgate_model::SystemClock;
use scimgate_store::{Admin, AdminDb, AuditQuery, PgAdmin, RemoveOutcome, Revocation, TokenRecord};

use crate::{AuditCommand, CliResult, DataArgs, TenantCommand, TokenCli, TokenCommand};

/// Every scope a token may carry.
const SCOPES: [&str; 5] = [
    "scim:read",
    "scim:write",
    "scim:admin",
    "scim:metrics",
    "scim:events",
];

/// Refuses an empty scope list or an unknown scope, naming the known ones.
pub(crate) fn check_scopes(scope: &str) -> CliResult {
    if scope.split_ascii_whitespace().next().is_none() {
        return Err(format!("--scope is empty; the scopes are {}", SCOPES.join(", ")).into());
    }
    if let Some(unknown) = scope.split_ascii_whitespace().find(|s| !SCOPES.contains(s)) {
        return Err(format!(
            "unknown scope '{unknown}'; the scopes are {}",
            SCOPES.join(", ")
        )
        .into());
    }
    Ok(())
}

/// Refuses a tenant that is not a valid name or not registered.
pub(crate) fn check_registered(db: &dyn Admin, tenants: &[String]) -> CliResult {
    let registered = db.snapshot()?.tenants;
    for t in tenants {
        check_tenant_name(t)?;
        if !registered.contains(t) {
            return Err(format!(
                "the tenant '{t}' is not registered; add it first: scimgate tenant add {t}"
            )
            .into());
        }
    }
    Ok(())
}

/// The configuration's data folder, and its database (the SQLite file in it, or the
/// PostgreSQL database the servers share) opened for the admin commands.
pub(crate) fn admin_db(
    data: DataArgs,
) -> Result<(Config, Box<dyn Admin>), Box<dyn std::error::Error>> {
    let flags = FlagOverrides {
        data: data.data,
        database: data.database,
        ..Default::default()
    };
    let config = Config::load(data.config.as_deref(), &flags)?;
    if let Some(options) = scimgate::pg_options(&config)? {
        if data.init {
            scimgate::data_dir::create_private(&config.data)?;
        }
        return Ok((config, Box::new(PgAdmin::open(&options)?)));
    }
    let file = config.data.join(scimgate::DATABASE_FILE);
    if !file.exists() {
        if !data.init {
            return Err(format!(
                "no scimgate database in {}: start the server on it once (scimgate serve), give the right --data or --config, or pass --init to create one here",
                config.data.display()
            )
            .into());
        }
        scimgate::data_dir::create_private(&config.data)?;
        scimgate::data_dir::create_private_file(&file)?;
    }
    let db = AdminDb::open(&file)?;
    Ok((config, Box::new(db)))
}

fn check_tenant_name(name: &str) -> Result<(), String> {
    if scimgate_http::auth_tenant_is_valid(name) {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a valid tenant name (1-64 of A-Z a-z 0-9 . _ -)"
        ))
    }
}

pub(crate) fn unix_now() -> i64 {
    scimgate_model::Clock::now(&SystemClock).unix_timestamp()
}

/// `scimgate admin login-url`: a token good for one sign-in to the admin page (scope
/// `admin:sign-in`, recorded so that the server can revoke it once used), in the link's
/// fragment (which browsers never send to a server, so that it stays out of logs).
pub fn login_url(
    tenants: Vec<String>,
    ttl: u64,
    sub: Option<String>,
    url: Option<String>,
    data: DataArgs,
) -> CliResult {
    if !(30..=3600).contains(&ttl) {
        return Err("--ttl is 30 to 3600 seconds: a sign-in link is for now".into());
    }
    let (config, db) = admin_db(data)?;
    check_registered(db.as_ref(), &tenants)?;
    let key = SigningKey::load_or_create(&config.data)?;
    let subject = sub.unwrap_or_else(|| {
        format!(
            "admin:{}",
            std::env::var("USER").unwrap_or_else(|_| "operator".into())
        )
    });
    let request = TokenRequest {
        subject,
        tenants,
        scope: scimgate_http::console::session::SCOPE_SIGN_IN.into(),
        ttl_secs: ttl,
    };
    let (token, claims) = key.mint(&request, unix_now())?;
    let mut recorded = vec![claims.tenant.clone()];
    recorded.extend(claims.tenants.iter().cloned());
    db.record_token(&TokenRecord {
        jti: claims.jti.clone().unwrap_or_default(),
        subject: Some(claims.sub.clone()),
        tenants: recorded,
        scope: Some(claims.scope.clone()),
        issued_at: claims.iat,
        expires_at: Some(claims.exp),
        revoked_at: None,
    })?;
    let base = url
        .or(config.http.public_base_url.clone())
        .unwrap_or_else(|| {
            let scheme = if config.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            format!(
                "{scheme}://{}",
                config.listen.replace("0.0.0.0", "127.0.0.1")
            )
        });
    say!("{}/admin/#t={token}", base.trim_end_matches('/'));
    Ok(())
}

pub fn token(cli: TokenCli) -> CliResult {
    let (config, db) = admin_db(cli.data)?;
    match cli.command {
        Some(TokenCommand::List) => {
            say!(
                "{:<36}  {:<16}  {:<24}  {:<20}  {:<20}  revoked",
                "jti",
                "subject",
                "tenants",
                "issued",
                "expires"
            );
            let when = |t: Option<i64>| {
                t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "-".into())
            };
            for t in db.tokens()? {
                say!(
                    "{:<36}  {:<16}  {:<24}  {:<20}  {:<20}  {}",
                    t.jti,
                    t.subject.as_deref().unwrap_or("-"),
                    if t.tenants.is_empty() {
                        "-".into()
                    } else {
                        t.tenants.join(",")
                    },
                    when(t.issued_at),
                    when(t.expires_at),
                    when(t.revoked_at),
                );
            }
            Ok(())
        }
        Some(TokenCommand::Revoke { jti, external }) => {
            // A pasted jti often carries a space or a newline; a jti never does.
            let jti = jti.trim();
            if jti.is_empty() {
                return Err("the jti to revoke is empty".into());
            }
            match db.revoke_token(jti, unix_now(), external)? {
                Revocation::Revoked => {
                    say!("revoked {jti}; the server refuses it within a second")
                }
                Revocation::AlreadyRevoked => say!("{jti} was already revoked"),
                Revocation::Unknown => {
                    return Err(format!(
                        "no token with jti '{jti}' was minted here (scimgate token list); for a token from an operator key, add --external"
                    )
                    .into());
                }
            }
            Ok(())
        }
        None => {
            let args = cli.mint;
            check_scopes(&args.scope)?;
            if args.ttl == 0 {
                return Err("--ttl 0 would mint a token that has already expired".into());
            }
            check_registered(db.as_ref(), &args.tenant)?;
            let key = SigningKey::load_or_create(&config.data)?;
            let request = TokenRequest {
                subject: args.sub,
                tenants: args.tenant,
                scope: args.scope,
                ttl_secs: args.ttl,
            };
            let (token, claims) = key.mint(&request, unix_now())?;
            let mut tenants = vec![claims.tenant.clone()];
            tenants.extend(claims.tenants.iter().cloned());
            db.record_token(&TokenRecord {
                jti: claims.jti.clone().unwrap_or_default(),
                subject: Some(claims.sub.clone()),
                tenants,
                scope: Some(claims.scope.clone()),
                issued_at: claims.iat,
                expires_at: Some(claims.exp),
                revoked_at: None,
            })?;
            say!("{token}");
            Ok(())
        }
    }
}

pub fn audit(cmd: AuditCommand) -> CliResult {
    let AuditCommand::Tail {
        tenant,
        since,
        count,
        json,
        data,
    } = cmd;
    let since = match since {
        None => None,
        Some(text) => Some(
            scimgate_model::clock::normalize_timestamp(&text)
                .ok_or_else(|| format!("--since must be an RFC 3339 time, not '{text}'"))?,
        ),
    };
    let (_, db) = admin_db(data)?;
    let rows = db.audit(&AuditQuery {
        tenant,
        since,
        after_seq: None,
        limit: count,
        newest: true,
        ..Default::default()
    })?;
    for r in rows {
        if json {
            say!("{}", serde_json::to_string(&r)?);
            continue;
        }
        // What callers sent (ids, details) is printed with control characters escaped: no
        // forged line breaks or terminal escapes in an operator's terminal.
        let printable = |v: &str| v.escape_debug().to_string();
        let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "-".into(), printable);
        let version = |v: Option<i64>| v.map_or("-".into(), |v| v.to_string());
        say!(
            "{}  {}  {}  {}  {} {}/{}  v{}->v{}  {}  sub={} jti={} from={}{}{}",
            r.seq,
            r.at,
            r.tenant,
            r.status,
            r.method,
            opt(&r.resource_type),
            opt(&r.resource_id),
            version(r.version_before),
            version(r.version_after),
            printable(r.detail.as_deref().unwrap_or("")),
            opt(&r.subject),
            opt(&r.jti),
            opt(&r.client),
            if r.plugins.is_some() { " plugins=" } else { "" },
            r.plugins.as_deref().unwrap_or(""),
        );
    }
    Ok(())
}

pub fn tenant(cmd: TenantCommand) -> CliResult {
    match cmd {
        TenantCommand::Add { name, data } => {
            check_tenant_name(&name)?;
            let (_, db) = admin_db(data)?;
            let now =
                scimgate_model::clock::format_timestamp(scimgate_model::Clock::now(&SystemClock));
            if db.add_tenant(&name, &now)? {
                say!("added tenant {name}");
            } else {
                say!("tenant {name} exists already");
            }
            Ok(())
        }
        TenantCommand::List { data } => {
            let (_, db) = admin_db(data)?;
            say!("{:<32}  {:>9}  {:>9}  created", "tenant", "users", "groups");
            for t in db.tenants()? {
                say!(
                    "{:<32}  {:>9}  {:>9}  {}",
                    t.name,
                    t.users,
                    t.groups,
                    t.created
                );
            }
            Ok(())
        }
        TenantCommand::Remove { name, purge, data } => {
            let (_, mut db) = admin_db(data)?;
            match db.remove_tenant(&name, purge)? {
                RemoveOutcome::Removed { users, groups } => {
                    say!("removed tenant {name} ({users} users and {groups} groups deleted)");
                    Ok(())
                }
                RemoveOutcome::NotFound => Err(format!("no tenant '{name}'").into()),
                RemoveOutcome::HasData { users, groups } => Err(format!(
                    "tenant '{name}' has {users} users and {groups} groups; --purge deletes them with it"
                )
                .into()),
            }
        }
    }
}
