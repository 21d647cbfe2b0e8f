//! The schemas of RFC 7643: core User (§4.1), Enterprise User (§4.3), Group (§4.2), and the
//! common attributes every resource carries (§3.1), transcribed from §8.7.1.

use std::sync::LazyLock;

use crate::schema::{AttrType, AttributeDef as A, Mutability, Returned, Schema, Uniqueness};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const TYPE_WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

/// `id`, `externalId` and `meta` (RFC 7643 §3.1), shared by every resource type.
pub static COMMON: LazyLock<Vec<A>> = LazyLock::new(|| {
    vec![
        A::string(
            "id",
            "Unique identifier for the SCIM resource as defined by the service provider.",
        )
        .case_exact()
        .mutability(Mutability::ReadOnly)
        .returned(Returned::Always)
        .unique(Uniqueness::Server),
        A::string(
            "externalId",
            "An identifier for the resource as defined by the provisioning client.",
        )
        .case_exact(),
        A::complex(
            "meta",
            "Resource metadata.",
            vec![
                A::string(
                    "resourceType",
                    "The name of the resource type of the resource.",
                )
                .case_exact()
                .mutability(Mutability::ReadOnly),
                A::new(
                    "created",
                    AttrType::DateTime,
                    "When the resource was added.",
                )
                .mutability(Mutability::ReadOnly),
                A::new(
                    "lastModified",
                    AttrType::DateTime,
                    "When the resource was last updated.",
                )
                .mutability(Mutability::ReadOnly),
                A::new("location", AttrType::Reference, "The URI of the resource.")
                    .case_exact()
                    .mutability(Mutability::ReadOnly)
                    .references(&["uri"]),
                A::string("version", "The version (weak ETag) of the resource.")
                    .case_exact()
                    .mutability(Mutability::ReadOnly),
            ],
        )
        .mutability(Mutability::ReadOnly),
    ]
});

/// value/display/type/primary, the shape of emails, phoneNumbers, ims, photos, entitlements
/// and roles; `value_type` differs for photos (a reference).
fn typed_values(
    name: &'static str,
    description: &'static str,
    value_type: AttrType,
    types: &'static [&'static str],
) -> A {
    let mut value = A::new("value", value_type, "The value of the attribute.");
    if value_type == AttrType::Reference {
        value = value.case_exact().references(&["external"]);
    }
    let mut ty = A::string("type", "A label indicating the attribute's function.");
    if !types.is_empty() {
        ty = ty.canonical(types);
    }
    A::complex(
        name,
        description,
        vec![
            value,
            A::string(
                "display",
                "A human-readable name, primarily used for display purposes.",
            ),
            ty,
            A::new(
                "primary",
                AttrType::Boolean,
                "Indicates the 'primary' or preferred value.",
            ),
        ],
    )
    .multi()
}

pub static USER: LazyLock<Schema> = LazyLock::new(|| Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: vec![
        A::string(
            "userName",
            "Unique identifier for the User, typically used to authenticate.",
        )
        .required()
        .unique(Uniqueness::Server),
        A::complex(
            "name",
            "The components of the user's real name.",
            vec![
                A::string("formatted", "The full name, formatted for display."),
                A::string("familyName", "The family name of the User."),
                A::string("givenName", "The given name of the User."),
                A::string("middleName", "The middle name(s) of the User."),
                A::string("honorificPrefix", "The honorific prefix(es) of the User."),
                A::string("honorificSuffix", "The honorific suffix(es) of the User."),
            ],
        ),
        A::string(
            "displayName",
            "The name of the User, suitable for display to end-users.",
        ),
        A::string(
            "nickName",
            "The casual way to address the user in real life.",
        ),
        A::new(
            "profileUrl",
            AttrType::Reference,
            "A fully qualified URL pointing to a page representing the User's online profile.",
        )
        .references(&["external"]),
        A::string("title", "The user's title, such as \"Vice President\"."),
        A::string(
            "userType",
            "Used to identify the relationship between the organization and the user.",
        ),
        A::string(
            "preferredLanguage",
            "The User's preferred written or spoken language (RFC 7231 Accept-Language).",
        ),
        A::string(
            "locale",
            "The User's default location for localizing items (language tag).",
        ),
        A::string(
            "timezone",
            "The User's time zone in the IANA Time Zone database format.",
        ),
        A::new(
            "active",
            AttrType::Boolean,
            "The User's administrative status.",
        ),
        A::string("password", "The User's cleartext password, write-only.")
            .mutability(Mutability::WriteOnly)
            .returned(Returned::Never),
        typed_values(
            "emails",
            "Email addresses for the user.",
            AttrType::String,
            TYPE_WORK_HOME_OTHER,
        ),
        typed_values(
            "phoneNumbers",
            "Phone numbers for the User.",
            AttrType::String,
            &["work", "home", "mobile", "fax", "pager", "other"],
        ),
        typed_values(
            "ims",
            "Instant messaging addresses for the User.",
            AttrType::String,
            &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
        ),
        typed_values(
            "photos",
            "URLs of photos of the User.",
            AttrType::Reference,
            &["photo", "thumbnail"],
        ),
        A::complex(
            "addresses",
            "A physical mailing address for this User.",
            vec![
                A::string(
                    "formatted",
                    "The full mailing address, formatted for display.",
                ),
                A::string("streetAddress", "The full street address component."),
                A::string("locality", "The city or locality component."),
                A::string("region", "The state or region component."),
                A::string("postalCode", "The zip code or postal code component."),
                A::string(
                    "country",
                    "The country name component (ISO 3166-1 alpha-2).",
                ),
                A::string("type", "A label indicating the attribute's function.")
                    .canonical(TYPE_WORK_HOME_OTHER),
                A::new(
                    "primary",
                    AttrType::Boolean,
                    "Indicates the 'primary' or preferred address.",
                ),
            ],
        )
        .multi(),
        A::complex(
            "groups",
            "A list of groups to which the user belongs, computed by the service provider.",
            vec![
                A::string("value", "The identifier of the User's group.")
                    .mutability(Mutability::ReadOnly),
                A::new(
                    "$ref",
                    AttrType::Reference,
                    "The URI of the corresponding 'Group' resource.",
                )
                .references(&["User", "Group"])
                .mutability(Mutability::ReadOnly),
                A::string("display", "A human-readable name of the group.")
                    .mutability(Mutability::ReadOnly),
                A::string("type", "Membership: 'direct' or 'indirect'.")
                    .canonical(&["direct", "indirect"])
                    .mutability(Mutability::ReadOnly),
            ],
        )
        .multi()
        .mutability(Mutability::ReadOnly),
        typed_values(
            "entitlements",
            "A list of entitlements for the User.",
            AttrType::String,
            &[],
        ),
        typed_values(
            "roles",
            "A list of roles for the User.",
            AttrType::String,
            &[],
        ),
        typed_values(
            "x509Certificates",
            "A list of certificates issued to the User (DER, base64).",
            AttrType::Binary,
            &[],
        ),
    ],
});

pub static ENTERPRISE_USER: LazyLock<Schema> = LazyLock::new(|| Schema {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: vec![
        A::string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person.",
        ),
        A::string("costCenter", "Identifies the name of a cost center."),
        A::string("organization", "Identifies the name of an organization."),
        A::string("division", "Identifies the name of a division."),
        A::string("department", "Identifies the name of a department."),
        A::complex(
            "manager",
            "The User's manager.",
            vec![
                A::string(
                    "value",
                    "The id of the SCIM resource representing the User's manager.",
                ),
                A::new(
                    "$ref",
                    AttrType::Reference,
                    "The URI of the SCIM resource representing the User's manager.",
                )
                .references(&["User"]),
                A::string("displayName", "The displayName of the User's manager.")
                    .mutability(Mutability::ReadOnly),
            ],
        ),
    ],
});

pub static GROUP: LazyLock<Schema> = LazyLock::new(|| Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: vec![
        A::string("displayName", "A human-readable name for the Group.").required(),
        A::complex(
            "members",
            "A list of members of the Group.",
            vec![
                A::string("value", "Identifier of the member of this Group.")
                    .case_exact()
                    .mutability(Mutability::Immutable),
                A::new(
                    "$ref",
                    AttrType::Reference,
                    "The URI of the member resource.",
                )
                .references(&["User", "Group"])
                .mutability(Mutability::Immutable),
                A::string("type", "The type of the member resource.")
                    .canonical(&["User", "Group"])
                    .mutability(Mutability::Immutable),
                A::string(
                    "display",
                    "The displayName or userName of the member, computed by the service provider.",
                )
                .mutability(Mutability::ReadOnly),
            ],
        )
        .multi(),
    ],
});

/// Every schema served by `/Schemas`.
pub fn all() -> [&'static Schema; 3] {
    [&USER, &ENTERPRISE_USER, &GROUP]
}
