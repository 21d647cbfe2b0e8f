//! The records of an import file, read one at a time (a file of a million users is never
//! held whole): a SCIM ListResponse, a Bulk request, or a JSON array (`scim-json`), one
//! resource per line (`ndjson`), or CSV rows of users with a header, mapped to attributes
//! (`csv`, `columns`).

use std::cell::RefCell;
use std::fmt;
use std::io::{BufRead, Read};

use scimgate_model::ResourceType;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::columns::Columns;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A SCIM ListResponse (`Resources`), a Bulk request (`Operations` with POST), or a
    /// JSON array of resources.
    ScimJson,
    /// One resource per line.
    Ndjson,
    /// Users, one per row, with a header naming each column's attribute.
    Csv,
}

impl Format {
    /// The format a file's name suggests.
    pub fn guess(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "json" => Some(Format::ScimJson),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// One record of the file: its place (1-based), and what it holds.
#[derive(Debug)]
pub struct Record {
    pub n: u64,
    pub body: Result<Resource, String>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub rt: ResourceType,
    pub doc: Value,
    /// How other records of the file name it: its `id` in the file, or its `bulkId`.
    pub file_id: Option<String>,
    /// CSV: the names of the groups the user belongs to (created or joined).
    pub groups: Vec<String>,
}

/// A resource as a SCIM client sends it: its type from `schemas`.
fn resource(value: Value, bulk: Option<(&str, Option<String>)>) -> Result<Resource, String> {
    let Value::Object(mut doc) = value else {
        return Err("a record must be a JSON object".into());
    };
    let rt = match bulk {
        Some((path, _)) => match path.trim_end_matches('/') {
            "/Users" => ResourceType::User,
            "/Groups" => ResourceType::Group,
            other => {
                return Err(format!(
                    "bulk operation path '{}': only POST to /Users or /Groups is imported",
                    scimgate_model::excerpt(other, 64)
                ));
            }
        },
        None => {
            let schemas = doc.get("schemas").and_then(Value::as_array);
            let has = |urn: &str| {
                schemas.is_some_and(|s| {
                    s.iter()
                        .any(|v| v.as_str().is_some_and(|t| t.eq_ignore_ascii_case(urn)))
                })
            };
            if has(USER_SCHEMA) {
                ResourceType::User
            } else if has(GROUP_SCHEMA) {
                ResourceType::Group
            } else {
                return Err(format!(
                    "'schemas' names neither {USER_SCHEMA} nor {GROUP_SCHEMA}"
                ));
            }
        }
    };
    let file_id = match bulk {
        Some((_, bulk_id)) => bulk_id,
        None => doc.get("id").and_then(Value::as_str).map(str::to_owned),
    };
    // The server gives ids and meta; what the file says of them is its own.
    doc.remove("id");
    doc.remove("meta");
    Ok(Resource {
        rt,
        doc: Value::Object(doc),
        file_id,
        groups: Vec::new(),
    })
}

/// A Bulk operation: POSTs are imported, anything else refused by name.
fn bulk_operation(value: Value) -> Result<Resource, String> {
    let Value::Object(mut op) = value else {
        return Err("a bulk operation must be a JSON object".into());
    };
    let method = op.get("method").and_then(Value::as_str).unwrap_or("");
    if !method.eq_ignore_ascii_case("POST") {
        return Err(format!(
            "bulk operation method '{}': only POST is imported",
            scimgate_model::excerpt(method, 16)
        ));
    }
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let bulk_id = op
        .get("bulkId")
        .and_then(Value::as_str)
        .map(|b| format!("bulkId:{b}"));
    let data = op.remove("data").unwrap_or(Value::Null);
    resource(data, Some((&path, bulk_id)))
}

/// Reads every record of `input` in `format`, handing each to `each` in file order.
pub fn read(
    input: impl BufRead,
    format: Format,
    columns: &Columns,
    mut each: impl FnMut(Record) -> Result<(), String>,
) -> Result<(), String> {
    match format {
        Format::Ndjson => read_lines(input, &mut each),
        Format::Csv => read_csv(input, columns, &mut each),
        Format::ScimJson => read_json(input, &mut each),
    }
}

fn read_lines(
    input: impl BufRead,
    each: &mut impl FnMut(Record) -> Result<(), String>,
) -> Result<(), String> {
    for (i, line) in input.split(b'\n').enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|e| format!("reading line {n}: {e}"))?;
        // A line that is not UTF-8 is that record's rejection, not the file's end.
        let body = match String::from_utf8(line) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("line {n} is not JSON: {e}"))
                .and_then(|v| resource(corrected(v), None)),
            Err(e) => Err(format!(
                "line {n} is not UTF-8 (byte {} of the line)",
                e.utf8_error().valid_up_to() + 1
            )),
        };
        each(Record { n, body })?;
    }
    Ok(())
}

/// A line of a rejects file (`{"record", "status", …, "data"}`) is its `data`: the
/// rejected records, corrected there, import as they are.
fn corrected(line: Value) -> Value {
    match line {
        Value::Object(mut o)
            if o.contains_key("record") && !o.contains_key("schemas") && o.contains_key("data") =>
        {
            o.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

fn read_csv(
    input: impl Read,
    columns: &Columns,
    each: &mut impl FnMut(Record) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| format!("the CSV header: {e}"))?
        .clone();
    let plan = columns.plan(&header)?;
    for (i, row) in reader.records().enumerate() {
        let n = i as u64 + 1;
        let body = match row {
            Ok(row) => plan.user(&row).map(|(doc, groups)| Resource {
                rt: ResourceType::User,
                doc,
                file_id: None,
                groups,
            }),
            Err(e) => Err(format!("row {n}: {e}")),
        };
        each(Record { n, body })?;
    }
    Ok(())
}

/// The streaming JSON reader: the top object's `Resources` or `Operations` (or a top
/// array) element by element, everything else skipped.
fn read_json(
    input: impl Read,
    each: &mut impl FnMut(Record) -> Result<(), String>,
) -> Result<(), String> {
    let sink = Sink {
        each: RefCell::new(each),
        n: RefCell::new(0),
        stopped: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let found = serde::Deserializer::deserialize_any(&mut de, Top { sink: &sink });
    if let Some(stop) = sink.stopped.into_inner() {
        return Err(stop);
    }
    found.map_err(|e| {
        format!("the file is not the JSON of a SCIM ListResponse, Bulk request or array: {e}")
    })?;
    de.end()
        .map_err(|e| format!("after the JSON document: {e}"))
}

/// Where the elements go, and why reading stopped when `each` said so.
struct Sink<'a, F> {
    each: RefCell<&'a mut F>,
    n: RefCell<u64>,
    stopped: RefCell<Option<String>>,
}

impl<F: FnMut(Record) -> Result<(), String>> Sink<'_, F> {
    fn give(&self, body: Result<Resource, String>) -> Result<(), String> {
        let n = {
            let mut n = self.n.borrow_mut();
            *n += 1;
            *n
        };
        (self.each.borrow_mut())(Record { n, body })
    }
}

struct Top<'s, 'a, F> {
    sink: &'s Sink<'a, F>,
}

impl<'de, F: FnMut(Record) -> Result<(), String>> Visitor<'de> for Top<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a ListResponse, a Bulk request or an array of resources")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "Resources" => map.next_value_seed(Elements {
                    sink: self.sink,
                    bulk: false,
                })?,
                "Operations" => map.next_value_seed(Elements {
                    sink: self.sink,
                    bulk: true,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Elements {
            sink: self.sink,
            bulk: false,
        }
        .visit_seq(seq)
    }
}

/// The elements of one array, each parsed alone and handed on.
struct Elements<'s, 'a, F> {
    sink: &'s Sink<'a, F>,
    bulk: bool,
}

impl<'de, F: FnMut(Record) -> Result<(), String>> DeserializeSeed<'de> for Elements<'_, '_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(Record) -> Result<(), String>> Visitor<'de> for Elements<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            let body = if self.bulk {
                bulk_operation(value)
            } else {
                resource(value, None)
            };
            if let Err(stop) = self.sink.give(body) {
                *self.sink.stopped.borrow_mut() = Some(stop.clone());
                return Err(serde::de::Error::custom(stop));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, format: Format) -> Vec<Record> {
        let mut out = Vec::new();
        read(text.as_bytes(), format, &Columns::default(), |r| {
            out.push(r);
            Ok(())
        })
        .expect("read");
        out
    }

    #[test]
    fn each_json_shape_gives_its_resources_in_order() {
        let user = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"u1","userName":"a"}"#;
        let group = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"g1","displayName":"G","members":[{"value":"u1"}]}"#;
        let cases = [
            (
                format!(
                    r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":2,"Resources":[{user},{group}],"itemsPerPage":2}}"#
                ),
                Format::ScimJson,
            ),
            (format!("[{user},{group}]"), Format::ScimJson),
            (format!("{user}\n\n{group}\n"), Format::Ndjson),
        ];
        for (text, format) in cases {
            let records = all(&text, format);
            let kinds: Vec<_> = records
                .iter()
                .map(|r| {
                    let r = r.body.as_ref().expect("resource");
                    (r.rt, r.file_id.clone(), r.doc.get("id").is_some())
                })
                .collect();
            assert_eq!(
                kinds,
                vec![
                    (ResourceType::User, Some("u1".into()), false),
                    (ResourceType::Group, Some("g1".into()), false)
                ],
                "{text}"
            );
        }
    }

    #[test]
    fn bulk_posts_are_named_by_bulk_id_and_other_methods_refused() {
        let text = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[
            {"method":"POST","path":"/Users","bulkId":"q1","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a"}},
            {"method":"DELETE","path":"/Users/x"},
            {"method":"POST","path":"/Groups","bulkId":"g","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"G","members":[{"value":"bulkId:q1"}]}}]}"#;
        let records = all(text, Format::ScimJson);
        assert_eq!(records.len(), 3);
        let first = records[0].body.as_ref().expect("post");
        assert_eq!(
            (first.rt, first.file_id.as_deref()),
            (ResourceType::User, Some("bulkId:q1"))
        );
        let refused = records[1].body.as_ref().expect_err("delete");
        assert!(refused.contains("only POST"), "{refused}");
        assert_eq!(records[2].n, 3);
    }

    #[test]
    fn a_line_of_a_rejects_file_imports_as_its_data() {
        let line = r#"{"record":3,"resourceType":"User","status":409,"scimType":"uniqueness","detail":"taken","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"b"}}"#;
        let records = all(line, Format::Ndjson);
        let r = records[0].body.as_ref().expect("resource");
        assert_eq!(r.doc["userName"], "b");
        assert!(r.doc.get("record").is_none());
    }

    #[test]
    fn a_bad_record_is_refused_alone_and_a_broken_file_stops_the_read() {
        let records = all("{\"schemas\":[\"x\"]}\nnot json\n[1]\n", Format::Ndjson);
        let errors: Vec<String> = records
            .into_iter()
            .map(|r| r.body.expect_err("refused"))
            .collect();
        assert!(errors[0].contains("neither"), "{}", errors[0]);
        assert!(errors[1].contains("line 2 is not JSON"), "{}", errors[1]);
        assert!(errors[2].contains("JSON object"), "{}", errors[2]);
        // A line that is not UTF-8 is refused alone; the lines after it are read.
        let mut bytes = b"\xff\xfe\n".to_vec();
        bytes.extend_from_slice(
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u"}"#,
        );
        let mut found = Vec::new();
        read(&bytes[..], Format::Ndjson, &Columns::default(), |r| {
            found.push(r);
            Ok(())
        })
        .expect("read");
        assert!(
            found[0]
                .body
                .as_ref()
                .expect_err("refused")
                .contains("not UTF-8")
        );
        assert_eq!(found[1].body.as_ref().expect("user").doc["userName"], "u");
        let broken = read(
            r#"{"Resources":[{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]},"#
                .as_bytes(),
            Format::ScimJson,
            &Columns::default(),
            |_| Ok(()),
        );
        assert!(broken.is_err());
    }
}
