//! What a list is ordered by, whatever the backend: `sortBy` resolved to a column of the
//! resource row or to a path of the attribute index. Each backend writes its own SQL for
//! it; which attributes sort, and how, is decided once here.

use scimgate_model::ResourceType;
use scimgate_model::schema::AttrType;

use crate::SortBy;
use crate::error::StoreError;
use crate::index_rows::PathIds;

/// What a list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Creation order (no `sortBy`).
    Seq,
    /// userName of Users, displayName of Groups: the folded `name_key` column.
    Name,
    Id,
    Created,
    Modified,
    Version,
    /// Any other singular attribute, through the attribute index.
    Index(i64),
}

/// The key `sort` orders by (`None`: creation order).
pub fn sort_key(
    rt: ResourceType,
    sort: Option<&SortBy>,
    paths: &PathIds,
) -> Result<SortKey, StoreError> {
    let Some(sort) = sort else {
        return Ok(SortKey::Seq);
    };
    let name = sort.path.canonical();
    if sort.path.attr.multi_valued || sort.path.leaf().ty == AttrType::Complex {
        return Err(StoreError::UnsupportedSort(format!(
            "sortBy '{name}' must name a singular, non-complex attribute"
        )));
    }
    Ok(match (rt, name.as_str()) {
        (_, "id") => SortKey::Id,
        (ResourceType::User, "userName") | (ResourceType::Group, "displayName") => SortKey::Name,
        (_, "meta.created") => SortKey::Created,
        (_, "meta.lastModified") => SortKey::Modified,
        (_, "meta.version") => SortKey::Version,
        // Never returned, so never an order to see.
        (ResourceType::User, "password") => {
            return Err(StoreError::UnsupportedSort(
                "sortBy 'password' is not sortable: it is never returned".into(),
            ));
        }
        // The other meta attributes are the same for every resource of a list
        // (resourceType) or derived from the id (location): no order to give.
        (_, other) if other.starts_with("meta.") => {
            return Err(StoreError::UnsupportedSort(format!(
                "sortBy '{other}' is not sortable: it does not vary within one resource type; sort by id, meta.created, meta.lastModified or meta.version"
            )));
        }
        _ => SortKey::Index(paths.get(&name).ok_or_else(|| {
            StoreError::UnsupportedSort(format!("sortBy '{name}' is not sortable"))
        })?),
    })
}
