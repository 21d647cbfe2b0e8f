//! The order a Bulk request's operations run in: the request's order, except that an
//! operation waits until every operation whose `bulkId` it refers to has run (RFC 7644
//! §3.7.2, "resolved in dependency order"). When every operation left waits on another
//! (a circular reference, §3.7.1), the first of them that creates a resource is run with
//! its pending references set aside (`refs::defer_pending`), which breaks the circle.
//!
//! Kahn's algorithm over the references, with the ready operations kept in request order:
//! the cost grows with the operations and references, never with their product.

use std::collections::{BTreeSet, HashMap};

use super::request::{Method, Operation};
use crate::ScimError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Running,
    Settled,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run this operation: everything it refers to has run.
    Run(usize),
    /// Run this create with its references to operations not yet run set aside, to be
    /// added once they have: nothing else can run.
    BreakCycle(usize),
    /// Nothing can start until a running operation settles.
    Wait,
    Done,
}

#[derive(Debug)]
pub struct Schedule {
    state: Vec<State>,
    /// For each operation, how many of the operations it refers to have not settled.
    unsettled_refs: Vec<usize>,
    /// For each operation, those that refer to it.
    dependents: Vec<Vec<usize>>,
    ready: BTreeSet<usize>,
    /// Which operation creates each bulkId.
    creator: HashMap<String, usize>,
    running: usize,
}

impl Schedule {
    /// Plans `ops`. A second operation with a `bulkId` already taken gets its problem here
    /// (a reference to that bulkId means the first).
    pub fn new(ops: &mut [Operation]) -> Schedule {
        let mut creator = HashMap::new();
        for (i, op) in ops.iter_mut().enumerate() {
            if op.problem.is_some() || op.method != Some(Method::Post) {
                continue;
            }
            let Some(id) = op.bulk_id.clone() else {
                continue;
            };
            if let Some(first) = creator.get(&id) {
                op.problem = Some(ScimError::invalid_value(format!(
                    "bulkId '{}' is already used by operation {}",
                    crate::excerpt(&id, 64),
                    first + 1
                )));
            } else {
                creator.insert(id, i);
            }
        }
        let mut unsettled_refs = vec![0; ops.len()];
        let mut dependents = vec![Vec::new(); ops.len()];
        for (i, op) in ops.iter().enumerate() {
            if op.problem.is_some() {
                continue;
            }
            // `refs` holds each bulkId once: one edge per referenced operation.
            for r in &op.refs {
                if let Some(&j) = creator.get(r) {
                    unsettled_refs[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
        let mut state = vec![State::Waiting; ops.len()];
        let mut ready = BTreeSet::new();
        for (i, n) in unsettled_refs.iter().enumerate() {
            if *n == 0 {
                state[i] = State::Ready;
                ready.insert(i);
            }
        }
        Schedule {
            state,
            unsettled_refs,
            dependents,
            ready,
            creator,
            running: 0,
        }
    }

    pub fn next_step(&mut self) -> Next {
        if let Some(i) = self.ready.pop_first() {
            self.state[i] = State::Running;
            self.running += 1;
            return Next::Run(i);
        }
        if self.running > 0 {
            return Next::Wait;
        }
        // Stuck: every operation left waits on another that waits too. The bulkIds they
        // wait on are created by POSTs among them, so there is one to start with.
        let first = self
            .creator
            .values()
            .copied()
            .filter(|&i| self.state[i] == State::Waiting)
            .min();
        match first {
            Some(i) => {
                self.state[i] = State::Running;
                self.running += 1;
                Next::BreakCycle(i)
            }
            None => Next::Done,
        }
    }

    /// Whether the operation creating `bulk_id` has yet to run (its references are what a
    /// `BreakCycle` sets aside).
    pub fn pending(&self, bulk_id: &str) -> bool {
        self.creator
            .get(bulk_id)
            .is_some_and(|&j| matches!(self.state[j], State::Waiting | State::Ready))
    }

    /// Operation `i` has run (whatever its outcome): those waiting on it may go.
    pub fn settle(&mut self, i: usize) {
        if self.state[i] != State::Running {
            return;
        }
        self.state[i] = State::Settled;
        self.running -= 1;
        for d in std::mem::take(&mut self.dependents[i]) {
            self.unsettled_refs[d] = self.unsettled_refs[d].saturating_sub(1);
            if self.unsettled_refs[d] == 0 && self.state[d] == State::Waiting {
                self.state[d] = State::Ready;
                self.ready.insert(d);
            }
        }
    }

    /// Whether `i` is running (handed out and not settled).
    pub fn is_running(&self, i: usize) -> bool {
        self.state[i] == State::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::parse;
    use serde_json::{Value, json};

    fn post(bulk_id: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": format!("bulkId:{m}")}))
            .collect();
        json!({"method": "POST", "path": "/Groups", "bulkId": bulk_id,
               "data": {"displayName": bulk_id, "members": members}})
    }

    /// Runs the schedule to the end, settling each operation as soon as it is handed out;
    /// returns the order, cycle breaks marked with `*`.
    fn order(ops: Vec<Value>) -> Vec<String> {
        let mut req = parse(json!({"Operations": ops}), 100).expect("request");
        let mut s = Schedule::new(&mut req.operations);
        let mut out = Vec::new();
        loop {
            match s.next_step() {
                Next::Run(i) => {
                    out.push(i.to_string());
                    s.settle(i);
                }
                Next::BreakCycle(i) => {
                    out.push(format!("{i}*"));
                    s.settle(i);
                }
                Next::Wait => panic!("nothing is running"),
                Next::Done => return out,
            }
        }
    }

    #[test]
    fn operations_run_in_dependency_order() {
        let rows: Vec<(&str, Vec<Value>, Vec<&str>)> = vec![
            (
                "no references: request order",
                vec![post("a", &[]), post("b", &[]), post("c", &[])],
                vec!["0", "1", "2"],
            ),
            (
                "a forward reference waits",
                vec![post("g", &["u"]), post("u", &[])],
                vec!["1", "0"],
            ),
            (
                "a chain",
                vec![post("a", &["b"]), post("b", &["c"]), post("c", &[])],
                vec!["2", "1", "0"],
            ),
            (
                "two in a circle: the first breaks it",
                vec![post("a", &["b"]), post("b", &["a"])],
                vec!["0*", "1"],
            ),
            (
                "a circle of three after a free one",
                vec![
                    post("x", &[]),
                    post("a", &["c"]),
                    post("b", &["a"]),
                    post("c", &["b"]),
                ],
                vec!["0", "1*", "2", "3"],
            ),
            ("itself", vec![post("a", &["a"])], vec!["0*"]),
            (
                "an unknown reference does not wait",
                vec![post("a", &["nobody"])],
                vec!["0"],
            ),
        ];
        for (label, ops, want) in rows {
            assert_eq!(order(ops), want, "{label}");
        }
    }

    #[test]
    fn a_patch_of_a_created_resource_waits_for_it() {
        let ops = vec![
            json!({"method": "PATCH", "path": "/Groups/bulkId:g", "data": {"Operations": []}}),
            json!({"method": "DELETE", "path": "/Users/bulkId:u"}),
            post("g", &[]),
            json!({"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "u"}}),
        ];
        assert_eq!(order(ops), ["2", "0", "3", "1"]);
    }

    #[test]
    fn a_repeated_bulk_id_fails_the_second() {
        let mut req =
            parse(json!({"Operations": [post("a", &[]), post("a", &[])]}), 10).expect("request");
        let _ = Schedule::new(&mut req.operations);
        assert!(req.operations[0].problem.is_none());
        let p = req.operations[1].problem.as_ref().expect("a problem");
        assert!(p.detail.contains("operation 1"), "{}", p.detail);
    }

    #[test]
    fn while_one_runs_its_dependents_wait() {
        let mut req = parse(
            json!({"Operations": [post("u", &[]), post("g", &["u"])]}),
            10,
        )
        .expect("request");
        let mut s = Schedule::new(&mut req.operations);
        assert_eq!(s.next_step(), Next::Run(0));
        assert!(s.is_running(0));
        assert_eq!(s.next_step(), Next::Wait);
        assert!(!s.pending("u"), "running, not pending");
        assert!(s.pending("g"));
        s.settle(0);
        assert_eq!(s.next_step(), Next::Run(1));
        s.settle(1);
        assert_eq!(s.next_step(), Next::Done);
    }
}
