//! Duplicate detection over JSON values in linear time: a hash that ignores the order of an
//! object's keys (as `Value`'s equality does), with equality deciding between collisions.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use serde_json::Value;

/// An index of the values of a list, by hash: whether a value is already in the list costs
/// O(1), and the list itself is the only copy of the values. Hash keys are random per index,
/// so a client cannot choose values that all collide and turn it back into a scan.
#[derive(Default)]
pub struct ValueIndex {
    hasher: RandomState,
    by_hash: HashMap<u64, Vec<usize>>,
}

impl ValueIndex {
    /// An index of `list` as it is.
    pub fn of(list: &[Value]) -> Self {
        let mut index = Self::default();
        for (i, v) in list.iter().enumerate() {
            let h = index.hash(v);
            index.by_hash.entry(h).or_default().push(i);
        }
        index
    }

    /// Whether `list` (the list this index was built from and kept up with) holds `v`.
    pub fn contains(&self, list: &[Value], v: &Value) -> bool {
        self.by_hash
            .get(&self.hash(v))
            .is_some_and(|positions| positions.iter().any(|&i| list.get(i) == Some(v)))
    }

    /// Changes `list[i]` with `change`, keeping the index true to it.
    pub fn modify(&mut self, list: &mut [Value], i: usize, change: impl FnOnce(&mut Value)) {
        let Some(item) = list.get_mut(i) else { return };
        let old = self.hash(item);
        if let Some(positions) = self.by_hash.get_mut(&old) {
            positions.retain(|&p| p != i);
        }
        change(item);
        let new = self.hash(item);
        self.by_hash.entry(new).or_default().push(i);
    }

    /// Appends `v` to `list` unless it is there already; true when it was appended.
    pub fn push_new(&mut self, list: &mut Vec<Value>, v: Value) -> bool {
        let h = self.hash(&v);
        let positions = self.by_hash.entry(h).or_default();
        if positions.iter().any(|&i| list.get(i) == Some(&v)) {
            return false;
        }
        positions.push(list.len());
        list.push(v);
        true
    }

    fn hash(&self, v: &Value) -> u64 {
        let mut state = self.hasher.build_hasher();
        self.feed(v, &mut state);
        state.finish()
    }

    fn feed(&self, v: &Value, state: &mut impl Hasher) {
        match v {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => (1u8, b).hash(state),
            Value::Number(n) => (2u8, n.to_string()).hash(state),
            Value::String(s) => (3u8, s).hash(state),
            Value::Array(items) => {
                (4u8, items.len()).hash(state);
                for item in items {
                    self.feed(item, state);
                }
            }
            Value::Object(map) => {
                // Each member hashed alone and the results summed: the order of keys
                // does not change the sum.
                let sum = map.iter().fold(0u64, |acc, (k, x)| {
                    let mut member = self.hasher.build_hasher();
                    k.hash(&mut member);
                    self.feed(x, &mut member);
                    acc.wrapping_add(member.finish())
                });
                (5u8, map.len(), sum).hash(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_are_kept_once_whatever_the_key_order() {
        let mut list = Vec::new();
        let mut index = ValueIndex::default();
        assert!(index.push_new(&mut list, json!({"value": "a", "type": "work"})));
        assert!(!index.push_new(&mut list, json!({"type": "work", "value": "a"})));
        assert!(index.push_new(&mut list, json!({"type": "home", "value": "a"})));
        assert!(index.push_new(&mut list, json!("a")));
        assert!(!index.push_new(&mut list, json!("a")));
        assert!(index.push_new(&mut list, json!(1)));
        assert!(index.push_new(&mut list, json!([1, 2])));
        assert!(!index.push_new(&mut list, json!([1, 2])));
        assert!(index.push_new(&mut list, json!([2, 1])));
        assert_eq!(list.len(), 6);
        assert!(index.contains(&list, &json!({"type": "home", "value": "a"})));
        assert!(!index.contains(&list, &json!({"type": "other", "value": "a"})));
    }

    #[test]
    fn an_index_of_an_existing_list_finds_its_values() {
        let mut list = vec![json!({"value": "x"}), json!({"value": "y"})];
        let mut index = ValueIndex::of(&list);
        assert!(index.contains(&list, &json!({"value": "y"})));
        assert!(!index.push_new(&mut list, json!({"value": "x"})));
        assert!(index.push_new(&mut list, json!({"value": "z"})));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn a_modified_value_is_found_as_it_now_is() {
        let mut list = vec![json!({"value": "x", "primary": true})];
        let mut index = ValueIndex::of(&list);
        index.modify(&mut list, 0, |v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("primary");
            }
        });
        assert!(index.contains(&list, &json!({"value": "x"})));
        assert!(!index.contains(&list, &json!({"value": "x", "primary": true})));
    }

    #[test]
    fn many_distinct_values_are_all_new() {
        let mut list = Vec::new();
        let mut index = ValueIndex::default();
        for i in 0..20_000 {
            assert!(index.push_new(&mut list, json!({"value": format!("u{i}@example.com")})));
        }
    }
}
