//! The SCIM 2.0 model of scimgate: schema definitions (RFC 7643), resource validation,
//! projection, filters and the SCIM error type. It knows neither HTTP nor SQL.

pub mod bulk;
pub mod casefold;
pub mod change;
pub mod clock;
pub mod dedup;
pub mod dialect;
pub mod error;
pub mod filter;
pub mod patch;
pub mod path;
pub mod projection;
pub mod registry;
pub mod resource_type;
pub mod schema;
pub mod schema_file;
pub mod schemas;
pub mod validate;

pub use casefold::fold_case;
pub use clock::{Clock, SystemClock, format_timestamp};
pub use error::{ScimError, ScimType, excerpt};
pub use resource_type::ResourceType;
pub use validate::{MemberInput, PasswordChange, ValidatedResource};

/// A tenant name: 1 to 64 ASCII letters, digits, `.`, `_` or `-` (it appears in URLs,
/// logs and file names).
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}
