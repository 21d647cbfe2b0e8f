//! How a list page is filled, whatever the backend: rows in order until the page has its
//! count or its budget of bytes and related values, and the position after its last
//! resource when more follow (cursor paging).

use serde_json::Value;

use crate::Position;
use crate::error::StoreError;
use crate::records::StoredDocument;

/// How much one list page may carry: related values (members, groups) and bytes (stored
/// JSON plus related ids and display names). A page ends early, after the resource that
/// reaches either, and always holds at least one resource.
#[derive(Debug, Clone, Copy)]
pub struct PageBudget {
    pub relations: usize,
    pub bytes: usize,
}

/// Fills a page of at most `count` resources from `rows` (each resource, its sort key and
/// its stored JSON's size), loading relations with `load` when asked. `cursor`: the rows
/// hold one more than `count`, and the position after the page is returned when more
/// follow.
pub fn fill_page(
    rows: impl Iterator<Item = Result<(StoredDocument, Value, usize), StoreError>>,
    budget: PageBudget,
    with_relations: bool,
    count: u64,
    cursor: bool,
    mut load: impl FnMut(&mut StoredDocument) -> Result<(), StoreError>,
) -> Result<(Vec<StoredDocument>, Option<Position>), StoreError> {
    let (mut resources, mut keys) = (Vec::new(), Vec::new());
    let mut cut_short = false;
    // The page also ends once its resources hold `budget.bytes` of stored JSON: a page
    // of large users must not become a response of hundreds of megabytes.
    let mut bytes = 0usize;
    for row in rows {
        let (resource, key, size) = row?;
        if !resources.is_empty() && bytes.saturating_add(size) > budget.bytes {
            cut_short = true;
            break;
        }
        bytes += size;
        resources.push(resource);
        keys.push(key);
    }
    if with_relations {
        // Members and groups are loaded resource by resource until the budget is
        // spent; the page then ends there (itemsPerPage says so, and a cursor page
        // gives the next position), so no page grows with the groups' sizes.
        let mut carried = 0usize;
        let mut loaded = 0;
        while loaded < resources.len()
            && (loaded == 0 || (carried < budget.relations && bytes < budget.bytes))
        {
            let r = &mut resources[loaded];
            load(r)?;
            carried +=
                r.members.as_ref().map_or(0, Vec::len) + r.groups.as_ref().map_or(0, Vec::len);
            bytes += relation_bytes(r);
            loaded += 1;
        }
        if loaded < resources.len() {
            resources.truncate(loaded);
            keys.truncate(loaded);
            cut_short = true;
        }
    }
    let mut next = None;
    if cursor && (cut_short || resources.len() as u64 > count) {
        resources.truncate(count as usize);
        keys.truncate(count as usize);
        if let (Some(last), Some(key)) = (resources.last(), keys.pop()) {
            next = Some(Position {
                key,
                id: last.id.clone(),
            });
        }
    }
    Ok((resources, next))
}

/// About what a resource's members or groups add to the page.
fn relation_bytes(r: &StoredDocument) -> usize {
    let members = r
        .members
        .iter()
        .flatten()
        .map(|m| m.value.len() + m.display.len());
    let groups = r
        .groups
        .iter()
        .flatten()
        .map(|g| g.value.len() + g.display.len());
    members.chain(groups).map(|n| n + 64).sum()
}
