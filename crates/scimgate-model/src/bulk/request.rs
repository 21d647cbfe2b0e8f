//! A Bulk request as the client sent it: `failOnErrors` and its operations, each checked
//! on its own. A malformed operation fails alone (its answer says why); only a body that
//! is not a Bulk request at all, or one with more operations than allowed, fails whole.

use serde_json::{Map, Value};

use super::refs::references;
use crate::{ResourceType, ScimError, ScimType};

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// The longest `bulkId` accepted: it is echoed in the answer and kept in memory per
/// reference.
const MAX_BULK_ID_BYTES: usize = 256;

/// The longest resource id a path may name (scimgate's are UUIDs): the id is echoed in the
/// operation's `location`.
const MAX_ID_BYTES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    fn parse(text: &str) -> Option<Method> {
        [Method::Post, Method::Put, Method::Patch, Method::Delete]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }
}

/// What an operation's `path` names: a resource type's endpoint (POST) or one resource,
/// by id or by the `bulkId` of a resource this request creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Endpoint(ResourceType),
    Resource(ResourceType, String),
    Created(ResourceType, String),
}

impl Target {
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Target::Endpoint(rt) | Target::Resource(rt, _) | Target::Created(rt, _) => *rt,
        }
    }
}

/// One operation. `problem` is why it cannot run, when it cannot; what could be read of
/// it (`method`, `bulk_id`) is still echoed in its answer.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: Option<Method>,
    pub bulk_id: Option<String>,
    pub version: Option<String>,
    pub target: Option<Target>,
    pub data: Option<Value>,
    /// The `bulkId`s this operation refers to (in its path and data), each once, in order.
    pub refs: Vec<String>,
    pub problem: Option<ScimError>,
}

#[derive(Debug, Clone)]
pub struct Request {
    /// Errors accepted before the rest is not run (`None`: no limit).
    pub fail_on_errors: Option<usize>,
    pub operations: Vec<Operation>,
}

/// Reads a Bulk request. `max_operations` is the advertised `maxOperations`: more is a
/// 413, as RFC 7644 §3.7.4 says.
pub fn parse(body: Value, max_operations: usize) -> Result<Request, ScimError> {
    let Value::Object(mut body) = body else {
        return Err(ScimError::invalid_syntax(
            "a Bulk request is a JSON object with 'Operations'",
        ));
    };
    if let Some(schemas) = field(&mut body, "schemas")? {
        let named = schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(BULK_REQUEST)));
        if !named {
            return Err(ScimError::invalid_value(format!(
                "'schemas' of a Bulk request must contain '{BULK_REQUEST}'"
            )));
        }
    }
    let fail_on_errors = match field(&mut body, "failOnErrors")? {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|n| *n >= 1) {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => {
                return Err(ScimError::invalid_value(
                    "'failOnErrors' must be an integer of at least 1",
                ));
            }
        },
    };
    let Some(Value::Array(list)) = field(&mut body, "Operations")? else {
        return Err(ScimError::invalid_syntax(
            "a Bulk request needs 'Operations', a list of operations",
        ));
    };
    if list.len() > max_operations {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "the Bulk request has {} operations; at most {max_operations} are accepted (maxOperations)",
                list.len()
            ),
        ));
    }
    Ok(Request {
        fail_on_errors,
        operations: list.into_iter().map(operation).collect(),
    })
}

/// A member of a JSON object by its name in any case (RFC 7643 §2.1), taken out; the same
/// name twice (`path` and `PATH`) is refused, since which one counts would be arbitrary.
fn field(obj: &mut Map<String, Value>, name: &str) -> Result<Option<Value>, ScimError> {
    let mut keys = obj.keys().filter(|k| k.eq_ignore_ascii_case(name));
    let Some(key) = keys.next().cloned() else {
        return Ok(None);
    };
    if keys.next().is_some() {
        return Err(ScimError::invalid_syntax(format!(
            "'{name}' is given twice (names compare case-insensitively)"
        )));
    }
    Ok(obj.remove(&key))
}

fn operation(value: Value) -> Operation {
    let mut op = Operation {
        method: None,
        bulk_id: None,
        version: None,
        target: None,
        data: None,
        refs: Vec::new(),
        problem: None,
    };
    if let Err(problem) = read_operation(value, &mut op) {
        op.problem = Some(problem);
    }
    op
}

fn read_operation(value: Value, op: &mut Operation) -> Result<(), ScimError> {
    let Value::Object(mut obj) = value else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    // The bulkId first, so that even a malformed operation's answer names it.
    op.bulk_id = match field(&mut obj, "bulkId")? {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if valid_bulk_id(&id) => Some(id),
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "'bulkId' must be a string of 1 to {MAX_BULK_ID_BYTES} bytes without ':' or '/'"
            )));
        }
    };
    let method = match field(&mut obj, "method")? {
        Some(Value::String(m)) => Method::parse(&m).ok_or_else(|| {
            ScimError::invalid_value(format!(
                "'method' '{}' is not one of POST, PUT, PATCH, DELETE",
                crate::excerpt(&m, 16)
            ))
        })?,
        _ => {
            return Err(ScimError::invalid_value(
                "'method' is required: POST, PUT, PATCH or DELETE",
            ));
        }
    };
    op.method = Some(method);
    op.version = match field(&mut obj, "version")? {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v),
        Some(_) => return Err(ScimError::invalid_value("'version' must be a string")),
    };
    let Some(Value::String(path)) = field(&mut obj, "path")? else {
        return Err(ScimError::bad_request(
            ScimType::InvalidPath,
            "'path' is required: '/Users' or '/Groups' for POST, '/Users/{id}' otherwise",
        ));
    };
    let target = target(&path)?;
    match (method, &target) {
        (Method::Post, Target::Endpoint(_)) if op.bulk_id.is_none() => {
            return Err(ScimError::invalid_value("'bulkId' is required with POST"));
        }
        (Method::Post, Target::Endpoint(_)) => {}
        (Method::Post, _) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!(
                    "POST takes a resource type's path ('/Users', '/Groups'), not '{}'",
                    crate::excerpt(&path, 64)
                ),
            ));
        }
        (_, Target::Endpoint(_)) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!(
                    "{} takes one resource's path ('/Users/{{id}}'), not '{}'",
                    method.as_str(),
                    crate::excerpt(&path, 64)
                ),
            ));
        }
        _ => {}
    }
    let data = field(&mut obj, "data")?.filter(|d| !d.is_null());
    match (method, &data) {
        (Method::Delete, _) => {}
        (_, Some(Value::Object(_))) => {}
        (_, _) => {
            return Err(ScimError::invalid_syntax(format!(
                "'data' (a JSON object) is required with {}",
                method.as_str()
            )));
        }
    }
    if let Target::Created(_, id) = &target {
        op.refs.push(id.clone());
    }
    if let Some(d) = &data {
        // Each once, in order: a set, so that a hundred thousand references cost linear time.
        let mut seen: std::collections::HashSet<String> = op.refs.iter().cloned().collect();
        for r in references(d) {
            if seen.insert(r.clone()) {
                op.refs.push(r);
            }
        }
    }
    op.target = Some(target);
    op.data = if method == Method::Delete { None } else { data };
    Ok(())
}

fn valid_bulk_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_BULK_ID_BYTES && !id.contains([':', '/'])
}

/// `/Users`, `/Groups/{id}`, `/Users/bulkId:{bulkId}`: a leading slash, no query, no more.
fn target(path: &str) -> Result<Target, ScimError> {
    let invalid = |why: &str| {
        ScimError::bad_request(
            ScimType::InvalidPath,
            format!("'path' '{}' {why}", crate::excerpt(path, 64)),
        )
    };
    if path.contains(['?', '#']) {
        return Err(invalid("may not have a query or fragment"));
    }
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut parts = rest.splitn(2, '/');
    let endpoint = parts.next().unwrap_or_default();
    let rt = crate::ResourceType::ALL
        .into_iter()
        .find(|rt| rt.endpoint() == endpoint)
        .ok_or_else(|| invalid("names neither '/Users' nor '/Groups'"))?;
    match parts.next() {
        None | Some("") => Ok(Target::Endpoint(rt)),
        Some(id) if id.contains('/') => Err(invalid("has more than a resource id after the type")),
        Some(id) if id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) => Err(invalid(
            "names an id longer than 256 bytes or with control characters, which no resource has",
        )),
        Some(id) => match id.strip_prefix(super::refs::PREFIX) {
            Some(bulk_id) if valid_bulk_id(bulk_id) => Ok(Target::Created(rt, bulk_id.to_owned())),
            Some(_) => Err(invalid("names a malformed bulkId")),
            None => Ok(Target::Resource(rt, id.to_owned())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(op: Value) -> Operation {
        let mut r = parse(json!({"Operations": [op]}), 10).expect("a request");
        r.operations.remove(0)
    }

    #[test]
    fn whole_request_refusals() {
        let rows: Vec<(&str, Value, u16, &str)> = vec![
            ("not an object", json!([1]), 400, "JSON object"),
            ("no Operations", json!({}), 400, "'Operations'"),
            (
                "Operations not a list",
                json!({"Operations": {}}),
                400,
                "'Operations'",
            ),
            (
                "wrong schema",
                json!({"schemas": ["urn:x"], "Operations": []}),
                400,
                BULK_REQUEST,
            ),
            (
                "failOnErrors 0",
                json!({"failOnErrors": 0, "Operations": []}),
                400,
                "failOnErrors",
            ),
            (
                "failOnErrors text",
                json!({"failOnErrors": "1", "Operations": []}),
                400,
                "failOnErrors",
            ),
            (
                "over maxOperations",
                json!({"Operations": [{}, {}, {}]}),
                413,
                "maxOperations",
            ),
        ];
        for (label, body, status, says) in rows {
            let e = parse(body, 2).expect_err(label);
            assert_eq!(e.status, status, "{label}");
            assert!(e.detail.contains(says), "{label}: {}", e.detail);
        }
    }

    #[test]
    fn each_operation_is_checked_on_its_own() {
        let rows: Vec<(&str, Value, &str)> = vec![
            ("not an object", json!("x"), "JSON object"),
            (
                "no method",
                json!({"path": "/Users", "bulkId": "a", "data": {}}),
                "'method'",
            ),
            ("GET", json!({"method": "GET", "path": "/Users/1"}), "'GET'"),
            ("no path", json!({"method": "DELETE"}), "'path'"),
            (
                "POST without bulkId",
                json!({"method": "POST", "path": "/Users", "data": {}}),
                "'bulkId'",
            ),
            (
                "POST to one resource",
                json!({"method": "POST", "path": "/Users/1", "bulkId": "a", "data": {}}),
                "POST takes",
            ),
            (
                "PUT to an endpoint",
                json!({"method": "PUT", "path": "/Users", "data": {}}),
                "PUT takes",
            ),
            (
                "unknown type",
                json!({"method": "DELETE", "path": "/Devices/1"}),
                "neither",
            ),
            (
                "query in path",
                json!({"method": "DELETE", "path": "/Users/1?domain=other"}),
                "query",
            ),
            (
                "deeper path",
                json!({"method": "DELETE", "path": "/Users/1/x"}),
                "more than",
            ),
            (
                "PATCH without data",
                json!({"method": "PATCH", "path": "/Users/1"}),
                "'data'",
            ),
            (
                "data not an object",
                json!({"method": "PUT", "path": "/Users/1", "data": [1]}),
                "'data'",
            ),
            (
                "bulkId with colon",
                json!({"method": "POST", "path": "/Users", "bulkId": "a:b", "data": {}}),
                "'bulkId'",
            ),
            (
                "version a number",
                json!({"method": "DELETE", "path": "/Users/1", "version": 3}),
                "'version'",
            ),
        ];
        for (label, op, says) in rows {
            let op = one(op);
            let problem = op.problem.expect(label);
            assert!(problem.detail.contains(says), "{label}: {}", problem.detail);
            assert!(problem.status == 400, "{label}");
        }
    }

    #[test]
    fn a_malformed_operation_still_names_its_bulk_id() {
        let op = one(json!({"method": "POST", "bulkId": "b1", "path": "/Nope", "data": {}}));
        assert_eq!(op.bulk_id.as_deref(), Some("b1"));
        assert!(op.problem.is_some());
    }

    #[test]
    fn targets_and_references() {
        let op = one(json!({
            "method": "PATCH", "path": "/Groups/bulkId:g", "version": "W/\"2\"",
            "data": {"Operations": [{"op": "add", "path": "members",
                "value": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}, {"value": "bulkId:u1"}]}]}
        }));
        assert!(op.problem.is_none(), "{:?}", op.problem);
        assert_eq!(
            op.target,
            Some(Target::Created(ResourceType::Group, "g".into()))
        );
        assert_eq!(op.refs, ["g", "u1", "u2"]);
        assert_eq!(op.version.as_deref(), Some("W/\"2\""));
        let op = one(json!({"method": "delete", "path": "Users/abc"}));
        assert_eq!(
            op.target,
            Some(Target::Resource(ResourceType::User, "abc".into()))
        );
        assert!(op.data.is_none());
    }
}
