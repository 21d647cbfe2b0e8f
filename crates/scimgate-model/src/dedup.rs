//! Duplicate detection over JSON values in linear time: a hash that ignores the order of an
//! object's keys (as `Value`'s equality does), with equality deciding between collisions.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use serde_json::Value;

/// The values seen so far. Hash keys are random per set, so a client cannot choose values
/// that all collide and turn the set back into a list.
#[derive(Default)]
pub struct SeenValues {
    hasher: RandomState,
    by_hash: HashMap<u64, Vec<Value>>,
}

impl SeenValues {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `v`; true when it was not seen before.
    pub fn insert(&mut self, v: &Value) -> bool {
        let h = self.hash(v);
        let bucket = self.by_hash.entry(h).or_default();
        if bucket.iter().any(|seen| seen == v) {
            return false;
        }
        bucket.push(v.clone());
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
    fn equal_values_are_seen_once_whatever_the_key_order() {
        let mut seen = SeenValues::new();
        assert!(seen.insert(&json!({"value": "a", "type": "work"})));
        assert!(!seen.insert(&json!({"type": "work", "value": "a"})));
        assert!(seen.insert(&json!({"type": "home", "value": "a"})));
        assert!(seen.insert(&json!("a")));
        assert!(!seen.insert(&json!("a")));
        assert!(seen.insert(&json!(1)));
        assert!(seen.insert(&json!([1, 2])));
        assert!(!seen.insert(&json!([1, 2])));
        assert!(seen.insert(&json!([2, 1])));
    }

    #[test]
    fn many_distinct_values_are_all_new() {
        let mut seen = SeenValues::new();
        for i in 0..20_000 {
            assert!(seen.insert(&json!({"value": format!("u{i}@example.com")})));
        }
    }
}
