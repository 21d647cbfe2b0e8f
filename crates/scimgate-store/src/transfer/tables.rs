//! What `scimgate migrate` copies: every table but `attr_paths` (whose ids each database
//! gives itself; `attr_index` is copied by path), with each column's type, and the order
//! both databases read it in, so that a table's checksum is the same on either side.

/// How a column is read, compared and written on each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    /// BIGINT (SQLite INTEGER).
    Int,
    /// INTEGER on PostgreSQL.
    Int32,
    /// BOOLEAN on PostgreSQL, 0 or 1 on SQLite.
    Bool,
    /// NUMERIC: SQLite's integer or real, PostgreSQL's exact number.
    Num,
}

pub struct Table {
    pub name: &'static str,
    /// The FROM clause the rows are read from.
    pub from: &'static str,
    /// Each column: what is read, the column written, how the value is written (`?`
    /// stands for the value), and its type.
    pub columns: &'static [(&'static str, &'static str, &'static str, Col)],
    /// What the rows are read in order of.
    pub order: &'static [(&'static str, Col)],
}

const fn plain(name: &'static str, col: Col) -> (&'static str, &'static str, &'static str, Col) {
    (name, name, "?", col)
}

use Col::{Bool, Int, Int32, Num, Text};

/// In the order they are written: what a row refers to comes first.
pub const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        from: "tenants",
        columns: &[plain("name", Text), plain("created", Text)],
        order: &[("name", Text)],
    },
    Table {
        name: "resources",
        from: "resources",
        columns: &[
            plain("seq", Int),
            plain("tenant", Text),
            plain("resource_type", Text),
            plain("id", Text),
            plain("name", Text),
            plain("name_key", Text),
            plain("display", Text),
            plain("external_id", Text),
            plain("attributes", Text),
            plain("password_hash", Text),
            plain("version", Int),
            plain("created", Text),
            plain("last_modified", Text),
        ],
        order: &[("seq", Int)],
    },
    Table {
        name: "memberships",
        from: "memberships",
        columns: &[
            plain("tenant", Text),
            plain("group_id", Text),
            plain("member_id", Text),
        ],
        order: &[("tenant", Text), ("group_id", Text), ("member_id", Text)],
    },
    Table {
        name: "attr_index",
        from: "attr_index a JOIN attr_paths p ON p.id = a.path_id",
        columns: &[
            ("a.tenant", "tenant", "?", Text),
            (
                "p.path",
                "path_id",
                "(SELECT id FROM attr_paths WHERE path = ?)",
                Text,
            ),
            ("a.text", "text", "?", Text),
            ("a.num", "num", "?", Num),
            ("a.seq", "seq", "?", Int),
            ("a.elem", "elem", "?", Int),
        ],
        order: &[("a.seq", Int), ("a.elem", Int), ("p.path", Text)],
    },
    Table {
        name: "resource_counts",
        // PostgreSQL keeps a count in several rows (its migration 4): their sum.
        from: "(SELECT tenant, resource_type, sum(n) AS n FROM resource_counts GROUP BY tenant, resource_type) c",
        columns: &[
            plain("tenant", Text),
            plain("resource_type", Text),
            plain("n", Int),
        ],
        order: &[("tenant", Text), ("resource_type", Text)],
    },
    Table {
        name: "tokens",
        from: "tokens",
        columns: &[
            plain("jti", Text),
            plain("subject", Text),
            plain("tenants", Text),
            plain("scope", Text),
            plain("issued_at", Int),
            plain("expires_at", Int),
            plain("revoked_at", Int),
        ],
        order: &[("jti", Text)],
    },
    Table {
        name: "audit",
        from: "audit",
        columns: &[
            plain("seq", Int),
            plain("at", Text),
            plain("tenant", Text),
            plain("subject", Text),
            plain("jti", Text),
            plain("client", Text),
            plain("method", Text),
            plain("resource_type", Text),
            plain("resource_id", Text),
            plain("version_before", Int),
            plain("version_after", Int),
            plain("plugins", Text),
            plain("status", Int32),
            plain("detail", Text),
            plain("event_seq", Int),
        ],
        order: &[("seq", Int)],
    },
    Table {
        name: "events",
        from: "events",
        columns: &[
            plain("tenant", Text),
            plain("seq", Int),
            plain("txn", Text),
            plain("at", Text),
            plain("operation", Text),
            plain("resource_type", Text),
            plain("resource_id", Text),
            plain("external_id", Text),
            plain("version", Int),
            plain("created", Text),
            plain("activation", Bool),
            plain("attributes", Text),
            plain("data", Text),
            plain("members", Text),
        ],
        order: &[("tenant", Text), ("seq", Int)],
    },
    Table {
        name: "event_sequences",
        from: "event_sequences",
        columns: &[plain("tenant", Text), plain("last_seq", Int)],
        order: &[("tenant", Text)],
    },
    Table {
        name: "event_positions",
        from: "event_positions",
        columns: &[
            plain("consumer", Text),
            plain("tenant", Text),
            plain("seq", Int),
            plain("updated", Text),
            plain("state", Text),
            plain("failing_since", Text),
            plain("last_error", Text),
        ],
        order: &[("consumer", Text), ("tenant", Text)],
    },
    Table {
        name: "event_replays",
        from: "event_replays",
        columns: &[
            plain("consumer", Text),
            plain("tenant", Text),
            plain("from_seq", Int),
        ],
        order: &[("consumer", Text), ("tenant", Text)],
    },
    Table {
        name: "oauth_clients",
        from: "oauth_clients",
        columns: &[
            plain("client_id", Text),
            plain("name", Text),
            plain("tenants", Text),
            plain("scope", Text),
            plain("token_ttl", Int),
            plain("created", Text),
            plain("assertion_issuer", Text),
            plain("assertion_subject", Text),
            plain("assertion_audience", Text),
            plain("jwks_url", Text),
            plain("jwks_file", Text),
        ],
        order: &[("client_id", Text)],
    },
    Table {
        name: "oauth_client_secrets",
        from: "oauth_client_secrets",
        columns: &[
            plain("client_id", Text),
            plain("digest", Text),
            plain("created", Int),
            plain("expires", Int),
        ],
        order: &[("client_id", Text), ("digest", Text)],
    },
    Table {
        name: "schema_set",
        from: "schema_set",
        columns: &[plain("id", Int32), plain("json", Text)],
        order: &[("id", Int32)],
    },
];
