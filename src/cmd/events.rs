//! `scimgate events`: the change feed seen from the data folder, beside a running server.
//! `tail` reads the outbox; `receivers` says where each receiver and cursor stands;
//! `replay` and `enable` are taken by the running server's delivery threads within seconds;
//! `forget` drops a poll or stream cursor nobody reads any more.

use std::collections::BTreeMap;
use std::time::Duration;

use scimgate_events::consumer_name;
use scimgate_model::{Clock, SystemClock};
use scimgate_store::{Admin, EventRecord, is_cursor};
use serde_json::json;

use super::admin::admin_db;
use crate::{CliResult, EventsCommand};

pub fn events(cmd: EventsCommand) -> CliResult {
    match cmd {
        EventsCommand::Tail {
            tenant,
            count,
            follow,
            json,
            data,
        } => {
            let (_, db) = admin_db(data)?;
            let events = db.events_tail(tenant.as_deref(), count)?;
            let mut last: BTreeMap<String, i64> = db.event_heads()?.into_iter().collect();
            for e in &events {
                print_event(e, json)?;
            }
            if !follow {
                return Ok(());
            }
            loop {
                std::thread::sleep(Duration::from_millis(500));
                for (t, head) in db.event_heads()? {
                    if tenant.as_ref().is_some_and(|only| *only != t) {
                        continue;
                    }
                    let seen = last.get(&t).copied().unwrap_or(0);
                    if head > seen {
                        for e in db.events_after(&t, seen, 1000)? {
                            print_event(&e, json)?;
                            last.insert(t.clone(), e.seq);
                        }
                    }
                }
            }
        }
        EventsCommand::Receivers { json, data } => {
            let (config, db) = admin_db(data)?;
            receivers(&config, db.as_ref(), json)
        }
        EventsCommand::Replay {
            receiver,
            from,
            tenant,
            data,
        } => {
            let (config, db) = admin_db(data)?;
            let Some(r) = config.events.receivers.iter().find(|r| r.name == receiver) else {
                return Err(format!("no receiver '{receiver}' in the configuration").into());
            };
            if from < 1 {
                return Err("--from is an event's sequence number, 1 or more".into());
            }
            let follows = followed(&r.tenants, db.as_ref())?;
            let tenants = match tenant {
                Some(t)
                    if follows.contains(&t)
                        || (r.tenants.iter().any(|x| x == "*")
                            && db.snapshot()?.tenants.contains(&t)) =>
                {
                    vec![t]
                }
                Some(t) => {
                    return Err(
                        format!("receiver '{receiver}' does not follow tenant '{t}'").into(),
                    );
                }
                None => follows,
            };
            let heads: BTreeMap<String, i64> = db.event_heads()?.into_iter().collect();
            for t in &tenants {
                let head = heads.get(t).copied().unwrap_or(0);
                if from > head + 1 {
                    return Err(format!(
                        "tenant '{t}' has no event {from} yet (its last is {head}): a replay from there would skip the events between"
                    )
                    .into());
                }
            }
            for t in &tenants {
                db.request_replay(&consumer_name(&receiver), t, from)?;
                say!("receiver {receiver} replays tenant {t} from event {from}");
            }
            Ok(())
        }
        EventsCommand::Enable { receiver, data } => {
            let (_, db) = admin_db(data)?;
            match db.enable_consumer(&consumer_name(&receiver))? {
                0 => say!("receiver {receiver} was not dead-lettered"),
                n => say!("receiver {receiver} resumes in {n} tenant(s)"),
            }
            Ok(())
        }
        EventsCommand::Forget {
            cursor,
            tenant,
            data,
        } => {
            if !is_cursor(&cursor) {
                return Err(format!(
                    "'{cursor}' is not a poll or stream cursor (they start with 'cursor:' or 'stream:', as `scimgate events receivers` lists them)"
                )
                .into());
            }
            let (_, db) = admin_db(data)?;
            match db.forget_position(&cursor, tenant.as_deref())? {
                0 => return Err(format!("no cursor {cursor} is stored").into()),
                n => say!("forgot cursor {cursor} in {n} tenant(s)"),
            }
            Ok(())
        }
    }
}

/// The tenants a receiver follows: those named, or for `*` every tenant with events.
fn followed(tenants: &[String], db: &dyn Admin) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    if tenants.iter().any(|t| t == "*") {
        Ok(db.event_heads()?.into_iter().map(|(t, _)| t).collect())
    } else {
        Ok(tenants.to_vec())
    }
}

fn receivers(config: &scimgate::Config, db: &dyn Admin, as_json: bool) -> CliResult {
    let heads: BTreeMap<String, i64> = db.event_heads()?.into_iter().collect();
    let positions = db.event_positions()?;
    let mut rows = Vec::new();
    for r in &config.events.receivers {
        let consumer = consumer_name(&r.name);
        for tenant in followed(&r.tenants, db)? {
            let stored = positions
                .iter()
                .find(|p| p.consumer == consumer && p.tenant == tenant);
            rows.push((r.name.clone(), tenant, stored.cloned()));
        }
    }
    for p in positions.iter().filter(|p| is_cursor(&p.consumer)) {
        rows.push((p.consumer.clone(), p.tenant.clone(), Some(p.clone())));
    }
    let now = SystemClock.now();
    for (name, tenant, stored) in rows {
        let head = heads.get(&tenant).copied().unwrap_or(0);
        let seq = stored.as_ref().map_or(0, |p| p.seq);
        // How long the oldest event not yet delivered has waited.
        let waiting = if seq < head {
            db.events_after(&tenant, seq, 1)?
                .first()
                .and_then(|e| {
                    time::OffsetDateTime::parse(
                        &e.at,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                })
                .map(|at| (now - at).whole_seconds().max(0))
        } else {
            Some(0)
        };
        let state = stored.as_ref().map_or("active", |p| p.state.as_str());
        let error = stored.as_ref().and_then(|p| p.last_error.clone());
        let since = stored.as_ref().and_then(|p| p.failing_since.clone());
        if as_json {
            say!(
                "{}",
                json!({"receiver": name, "tenant": tenant, "delivered": seq, "head": head,
                       "lag_events": head - seq, "lag_seconds": waiting, "state": state,
                       "failing_since": since, "last_error": error})
            );
        } else {
            say!(
                "{name}  tenant={tenant}  delivered={seq}/{head}  lag={} events, {}s  state={state}{}{}",
                head - seq,
                waiting.unwrap_or(0),
                since
                    .map(|s| format!("  failing since {s}"))
                    .unwrap_or_default(),
                error
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(())
}

fn print_event(e: &EventRecord, as_json: bool) -> CliResult {
    let activation = match e.activation {
        Some(true) => " activate",
        Some(false) => " deactivate",
        None => "",
    };
    if as_json {
        say!(
            "{}",
            json!({"tenant": e.tenant, "seq": e.seq, "at": e.at, "txn": e.txn,
                   "operation": e.kind.name(), "resourceType": e.resource_type.name(),
                   "id": e.resource_id, "externalId": e.external_id, "version": e.version,
                   "attributes": e.attributes, "activation": e.activation})
        );
    } else {
        say!(
            "{}  {}  {}  {}{}  {}/{}  v{}  {}",
            e.seq,
            e.at,
            e.tenant,
            e.kind.name(),
            activation,
            e.resource_type.name(),
            e.resource_id,
            e.version.map_or("-".into(), |v| v.to_string()),
            e.attributes.join(","),
        );
    }
    Ok(())
}
