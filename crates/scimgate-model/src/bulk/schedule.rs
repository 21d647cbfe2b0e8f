//! The order a Bulk request's operations run in: the request's order, except that an
//! operation waits until every operation whose `bulkId` it refers to has run (RFC 7644
//! §3.7.2, "resolved in dependency order"). An operation overtakes an earlier one only when
//! the earlier one waits on an operation that has not started (a forward reference), never
//! when it merely waits for one that is running: then the caller waits too, so the outcome
//! is the one running them one by one in that order gives. When every operation left
//! waits on another (a circular reference, §3.7.1), a create on the circle (the first in
//! request order) is run with its references to operations not yet run set aside
//! (`refs::defer_pending`), which breaks the circle.
//!
//! Kahn's algorithm over the references, with the ready operations kept in request order:
//! the cost grows with the operations and references, never with their product (finding
//! a circle walks it, once per circle broken).

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
    /// For each operation, how many of the operations it refers to have not started.
    unstarted_refs: Vec<usize>,
    /// For each operation, those that refer to it.
    dependents: Vec<Vec<usize>>,
    /// For each operation, those it refers to (to walk a circle).
    refs_of: Vec<Vec<usize>>,
    ready: BTreeSet<usize>,
    /// Waiting operations whose references have all started: they will be ready once the
    /// running ones settle, and later operations must not overtake them.
    blocked: BTreeSet<usize>,
    /// For each create that broke a circle and is not complete yet, the operations that
    /// refer to it and wait until it is (all but its partners on the circle).
    held: HashMap<usize, Vec<usize>>,
    held_ops: std::collections::HashSet<usize>,
    /// Which operation creates each bulkId.
    creator: HashMap<String, usize>,
    running: usize,
}

impl Schedule {
    /// Plans `ops`. A second operation with a `bulkId` already taken gets its problem here
    /// (a reference to that bulkId means the first).
    pub fn new(ops: &mut [Operation]) -> Schedule {
        let mut creator = HashMap::new();
        let mut first_use: HashMap<String, usize> = HashMap::new();
        for (i, op) in ops.iter_mut().enumerate() {
            let Some(id) = op.bulk_id.clone() else {
                continue;
            };
            // Every operation's bulkId counts, a malformed one's too: the answer must never
            // hold two operations with one bulkId.
            if let Some(first) = first_use.get(&id) {
                op.problem = Some(ScimError::invalid_value(format!(
                    "bulkId '{}' is already used by operation {}",
                    crate::excerpt(&id, 64),
                    first + 1
                )));
                continue;
            }
            first_use.insert(id.clone(), i);
            if op.problem.is_none() && op.method == Some(Method::Post) {
                creator.insert(id, i);
            }
        }
        let mut unsettled_refs = vec![0; ops.len()];
        let mut dependents = vec![Vec::new(); ops.len()];
        let mut refs_of = vec![Vec::new(); ops.len()];
        for (i, op) in ops.iter().enumerate() {
            if op.problem.is_some() {
                continue;
            }
            // `refs` holds each bulkId once: one edge per referenced operation.
            for r in &op.refs {
                if let Some(&j) = creator.get(r) {
                    unsettled_refs[i] += 1;
                    dependents[j].push(i);
                    refs_of[i].push(j);
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
            unstarted_refs: unsettled_refs.clone(),
            unsettled_refs,
            dependents,
            refs_of,
            ready,
            blocked: BTreeSet::new(),
            held: HashMap::new(),
            held_ops: std::collections::HashSet::new(),
            creator,
            running: 0,
        }
    }

    /// Marks `i` running; those waiting only on started operations are blocked, not waiting.
    fn start(&mut self, i: usize) {
        self.state[i] = State::Running;
        self.running += 1;
        for &d in &self.dependents[i] {
            if self.unstarted_refs[d] > 0 {
                self.unstarted_refs[d] -= 1;
                if self.unstarted_refs[d] == 0
                    && self.state[d] == State::Waiting
                    && !self.held_ops.contains(&d)
                {
                    self.blocked.insert(d);
                }
            }
        }
    }

    /// An operation on a circle of waiting operations: walk from the first waiting one
    /// along references to operations not started until one repeats; of the circle found,
    /// the first in request order.
    fn on_a_circle(&self) -> Option<usize> {
        let start = (0..self.state.len()).find(|&i| self.state[i] == State::Waiting)?;
        let mut seen_at: HashMap<usize, usize> = HashMap::new();
        let mut path = Vec::new();
        let mut at = start;
        loop {
            if let Some(&k) = seen_at.get(&at) {
                return path[k..].iter().copied().min();
            }
            seen_at.insert(at, path.len());
            path.push(at);
            at = *self.refs_of[at]
                .iter()
                .find(|&&j| self.state[j] == State::Waiting)?;
        }
    }

    pub fn next_step(&mut self) -> Next {
        let first_ready = self.ready.first().copied();
        if let Some(&b) = self.blocked.first()
            && first_ready.is_none_or(|r| b < r)
        {
            // An earlier operation waits for a running one: nothing may overtake it.
            return Next::Wait;
        }
        if let Some(i) = self.ready.pop_first() {
            self.start(i);
            return Next::Run(i);
        }
        if self.running > 0 {
            return Next::Wait;
        }
        // Stuck: every operation left waits on another that has not started.
        match self.on_a_circle() {
            Some(i) => {
                self.start(i);
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

    /// Whether the operation creating `bulk_id` has run (or there is none).
    pub fn settled(&self, bulk_id: &str) -> bool {
        self.creator
            .get(bulk_id)
            .is_none_or(|&j| self.state[j] == State::Settled)
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
                self.blocked.remove(&d);
                self.ready.insert(d);
            }
        }
    }

    /// Create `i`, which broke a circle, has run: the operations creating `partners` (the
    /// bulkIds it set aside) may go, to be added to it; the others that refer to it wait
    /// until it is complete (`complete`), so that they see it whole.
    pub fn settle_breaker(&mut self, i: usize, partners: &[String]) {
        if self.state[i] != State::Running {
            return;
        }
        let partner_ops: Vec<usize> = partners
            .iter()
            .filter_map(|p| self.creator.get(p).copied())
            .collect();
        let (go, wait): (Vec<usize>, Vec<usize>) = std::mem::take(&mut self.dependents[i])
            .into_iter()
            .partition(|d| partner_ops.contains(d));
        for &d in &wait {
            self.blocked.remove(&d);
            self.held_ops.insert(d);
        }
        self.held.insert(i, wait);
        self.dependents[i] = go;
        self.settle(i);
    }

    /// Create `i`, which broke a circle, is complete (or undone): those held for it go on.
    pub fn complete(&mut self, i: usize) {
        for d in self.held.remove(&i).unwrap_or_default() {
            self.held_ops.remove(&d);
            self.unsettled_refs[d] = self.unsettled_refs[d].saturating_sub(1);
            if self.state[d] != State::Waiting {
                continue;
            }
            if self.unsettled_refs[d] == 0 {
                self.state[d] = State::Ready;
                self.blocked.remove(&d);
                self.ready.insert(d);
            } else if self.unstarted_refs[d] == 0 {
                self.blocked.insert(d);
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
    fn nothing_overtakes_an_operation_waiting_for_a_running_one() {
        // 0 is queued (running); 1 waits for it; 2 is ready but must not overtake 1.
        let ops = vec![
            json!({"method": "POST", "path": "/Users", "bulkId": "d", "data": {"userName": "r"}}),
            json!({"method": "DELETE", "path": "/Users/bulkId:d"}),
            json!({"method": "POST", "path": "/Users", "bulkId": "e", "data": {"userName": "r"}}),
        ];
        let mut req = parse(json!({"Operations": ops}), 10).expect("request");
        let mut s = Schedule::new(&mut req.operations);
        assert_eq!(s.next_step(), Next::Run(0));
        assert_eq!(s.next_step(), Next::Wait, "2 may not overtake 1");
        s.settle(0);
        assert_eq!(s.next_step(), Next::Run(1));
        s.settle(1);
        assert_eq!(s.next_step(), Next::Run(2));
    }

    #[test]
    fn a_repeated_bulk_id_fails_the_second() {
        let mut req =
            parse(json!({"Operations": [post("a", &[]), post("a", &[])]}), 10).expect("request");
        let _ = Schedule::new(&mut req.operations);
        assert!(req.operations[0].problem.is_none());
        let p = req.operations[1].problem.as_ref().expect("a problem");
        assert!(p.detail.contains("operation 1"), "{}", p.detail);
        // The first use malformed: the second is still a repeat.
        let bad = json!({"method": "POST", "path": "/Nope", "bulkId": "a", "data": {}});
        let mut req = parse(json!({"Operations": [bad, post("a", &[])]}), 10).expect("request");
        let _ = Schedule::new(&mut req.operations);
        assert!(req.operations[1].problem.is_some());
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
