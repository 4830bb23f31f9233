//! The protocol driven by hand, from scripted store answers: several transactions are
//! interleaved on one thread, so every branch is reached deterministically.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use super::calls::{Answer, Call};
use super::{Exclusive, Group, Input, Mode, Step, Txn};
use crate::error::Error;
use crate::options::Options;
use crate::state::{Core, Outcome};
use crate::store::{Committed, Observed, Snapshot, Version};
use crate::value::Value;

const V1: Version = Version::new(1, 0);
const V2: Version = Version::new(2, 0);

/// An atom at `value`, version [`V1`], and the transitions its watches see.
fn atom<T: Value + Clone>(value: T, options: Options<T>) -> (Core<T>, Group<T>, Seen<T>) {
    let core = Core::new("test cell".into(), options, Arc::new(value), V1, None);
    let seen: Seen<T> = Arc::default();
    let log = Arc::clone(&seen);
    core.add_watch(
        "log".into(),
        Arc::new(move |old: &T, new: &T| log.lock().unwrap().push((old.clone(), new.clone()))),
    );
    (core, Group::new(), seen)
}

type Seen<T> = Arc<Mutex<Vec<(T, T)>>>;

/// Swaps that do not check the store first and wait for their peers (blocking drivers).
const SWAP: Mode = Mode {
    check_first: false,
    refresh: false,
    following: false,
    gather: true,
};

fn snapshot(text: &str, version: Version) -> Snapshot {
    Snapshot {
        bytes: text.as_bytes().to_vec(),
        version,
    }
}

fn what<T>(step: &Step<T>) -> &'static str {
    match step {
        Step::Check(_) => "check",
        Step::Call(Call::Check(_)) => "call: check",
        Step::Call(Call::Commit { .. }) => "call: commit",
        Step::Call(Call::Load) => "call: load",
        Step::Wait(_) => "wait",
        Step::Gather { .. } => "gather",
        Step::Done(Ok(_)) => "done",
        Step::Done(Err(_)) => "failed",
    }
}

fn commit<T: Copy>(step: Step<T>) -> (Version, T) {
    match step {
        Step::Call(Call::Commit {
            expected, value, ..
        }) => (expected, *value),
        other => panic!("expected a commit, got {}", what(&other)),
    }
}

fn done<T: Copy>(step: Step<T>) -> (T, T) {
    match step {
        Step::Done(Ok(Outcome { old, new })) => (*old, *new),
        Step::Done(Err(e)) => panic!("expected success, got {e}"),
        other => panic!("expected the end, got {}", what(&other)),
    }
}

fn failed<T>(step: Step<T>) -> Error {
    match step {
        Step::Done(Err(e)) => e,
        other => panic!("expected a failure, got {}", what(&other)),
    }
}

fn expect(step: &Step<impl Sized>, expected: &str) {
    assert_eq!(what(step), expected);
}

fn stored(version: Version) -> Input {
    Input::Answered(Answer::Committed(Ok(Committed::Done(version))))
}

fn lost() -> Error {
    Error::Uncertain {
        resource: "test cell".into(),
        message: "the answer was lost".into(),
        source: None,
    }
}

fn add(n: u64) -> impl FnMut(&u64) -> Option<Arc<u64>> {
    move |v| Some(Arc::new(v + n))
}

#[test]
fn a_lone_swap_commits_then_publishes() {
    let (core, group, seen) = atom(0u64, Options::new());
    let mut txn = Txn::new(&group, &core, SWAP, add(1));
    assert_eq!(commit(txn.next(Input::Go)), (V1, 1));
    assert_eq!(
        *core.value(),
        0,
        "nothing is published before it is durable"
    );
    assert_eq!(done(txn.next(stored(V2))), (0, 1));
    assert_eq!(core.current(), (Arc::new(1), V2));
    assert_eq!(*seen.lock().unwrap(), [(0, 1)]);
}

#[test]
fn checking_first_adopts_another_writers_value() {
    let (core, group, seen) = atom(0u64, Options::new());
    let mode = Mode {
        check_first: true,
        ..SWAP
    };
    let mut txn = Txn::new(&group, &core, mode, add(1));
    let step = txn.next(Input::Go);
    assert!(matches!(step, Step::Check(V1)));
    let other = Input::Checked(Ok(Observed::Changed(snapshot("5", Version::new(7, 0)))));
    assert_eq!(commit(txn.next(other)), (Version::new(7, 0), 6));
    assert_eq!(done(txn.next(stored(Version::new(8, 0)))), (5, 6));
    assert_eq!(*seen.lock().unwrap(), [(0, 5), (5, 6)]);
}

#[test]
fn each_step_another_writer_kept_is_a_transition_of_its_own() {
    let (core, group, seen) = atom(0u64, Options::new());
    let mode = Mode {
        check_first: true,
        ..SWAP
    };
    let mut txn = Txn::new(&group, &core, mode, add(1));
    assert!(matches!(txn.next(Input::Go), Step::Check(V1)));
    let steps = (2..=4).map(|n| snapshot(&n.to_string(), Version::new(n, 0)));
    let other = Input::Checked(Ok(Observed::Steps(
        steps.map(crate::store::Step::Value).collect(),
    )));
    assert_eq!(commit(txn.next(other)), (Version::new(4, 0), 5));
    assert_eq!(done(txn.next(stored(Version::new(5, 0)))), (4, 5));
    assert_eq!(*seen.lock().unwrap(), [(0, 2), (2, 3), (3, 4), (4, 5)]);
    // No steps at all: nothing changed.
    let mut txn = Txn::new(&group, &core, mode, add(1));
    assert!(matches!(txn.next(Input::Go), Step::Check(_)));
    let none = Input::Checked(Ok(Observed::Steps(Vec::new())));
    assert_eq!(commit(txn.next(none)), (Version::new(5, 0), 6));
}

#[test]
fn a_failed_check_changes_nothing_and_lets_the_next_swap_in() {
    let (core, group, _) = atom(0u64, Options::new());
    let mode = Mode {
        check_first: true,
        ..SWAP
    };
    let mut txn = Txn::new(&group, &core, mode, add(1));
    txn.next(Input::Go);
    let e = failed(txn.next(Input::Checked(Err(lost()))));
    assert!(e.may_have_been_stored());
    let mut next = Txn::new(&group, &core, mode, add(1));
    assert!(matches!(next.next(Input::Go), Step::Check(V1)));
}

#[test]
fn a_conflict_reloads_and_runs_f_again() {
    let (core, group, seen) = atom(0u64, Options::new());
    let runs = Cell::new(0);
    let mut txn = Txn::new(&group, &core, SWAP, |v: &u64| {
        runs.set(runs.get() + 1);
        Some(Arc::new(v + 1))
    });
    commit(txn.next(Input::Go));
    let step = txn.next(Input::Answered(Answer::Committed(Ok(Committed::Conflict))));
    expect(&step, "call: load");
    let v5 = Version::new(5, 0);
    let step = txn.next(Input::Answered(Answer::Loaded(Ok(Some(
        snapshot("10", v5).into(),
    )))));
    assert_eq!(commit(step), (v5, 11));
    assert_eq!(done(txn.next(stored(Version::new(6, 0)))), (10, 11));
    assert_eq!(runs.get(), 2);
    assert_eq!(*seen.lock().unwrap(), [(0, 10), (10, 11)]);
}

#[test]
fn a_lost_acknowledgement_shows_what_is_stored_and_never_runs_again() {
    let (core, group, seen) = atom(0u64, Options::new());
    let runs = Cell::new(0);
    let mut txn = Txn::new(&group, &core, SWAP, |v: &u64| {
        runs.set(runs.get() + 1);
        Some(Arc::new(v + 1))
    });
    commit(txn.next(Input::Go));
    let step = txn.next(Input::Answered(Answer::Committed(Err(lost()))));
    expect(&step, "call: load");
    let step = txn.next(Input::Answered(Answer::Loaded(Ok(Some(
        snapshot("1", V2).into(),
    )))));
    assert!(failed(step).may_have_been_stored());
    assert_eq!(runs.get(), 1, "an uncertain commit must never be repeated");
    assert_eq!(
        core.current(),
        (Arc::new(1), V2),
        "the atom shows what the store holds"
    );
    assert_eq!(*seen.lock().unwrap(), [(0, 1)]);
}

#[test]
fn a_definite_failure_fails_the_swap_and_changes_nothing() {
    let (core, group, seen) = atom(0u64, Options::new());
    let mut txn = Txn::new(&group, &core, SWAP, add(1));
    commit(txn.next(Input::Go));
    let io = Error::io("write", "/x", std::io::Error::other("disk on fire"));
    let e = failed(txn.next(Input::Answered(Answer::Committed(Err(io)))));
    assert!(matches!(e, Error::Io { .. }));
    assert_eq!(core.current(), (Arc::new(0), V1));
    assert!(seen.lock().unwrap().is_empty());
    // The atom goes on.
    let mut txn = Txn::new(&group, &core, SWAP, add(1));
    assert_eq!(commit(txn.next(Input::Go)), (V1, 1));
}

/// Three swaps in one batch: `a` leads and gathers, `b` and `c` join while it does.
fn three_in_a_batch<'a, T: Value, A, B, C>(
    group: &'a Group<T>,
    core: &'a Core<T>,
    a: A,
    b: B,
    c: C,
) -> (Txn<'a, T, A>, Txn<'a, T, B>, Txn<'a, T, C>)
where
    A: FnMut(&T) -> Option<Arc<T>>,
    B: FnMut(&T) -> Option<Arc<T>>,
    C: FnMut(&T) -> Option<Arc<T>>,
{
    group.expect_batches_of(3);
    let mut a = Txn::new(group, core, SWAP, a);
    expect(&a.next(Input::Go), "gather");
    let mut b = Txn::new(group, core, SWAP, b);
    expect(&b.next(Input::Go), "wait");
    let mut c = Txn::new(group, core, SWAP, c);
    expect(&c.next(Input::Go), "wait");
    (a, b, c)
}

#[test]
fn a_batch_commits_its_last_value_once_and_publishes_every_transition() {
    let (core, group, seen) = atom(0u64, Options::new());
    let (mut a, mut b, mut c) = three_in_a_batch(&group, &core, add(1), add(10), add(100));
    assert_eq!(commit(a.next(Input::Go)), (V1, 111));
    assert_eq!(done(a.next(stored(V2))), (0, 1));
    assert_eq!(done(b.next(Input::Go)), (1, 11));
    assert_eq!(done(c.next(Input::Go)), (11, 111));
    assert_eq!(*seen.lock().unwrap(), [(0, 1), (1, 11), (11, 111)]);
    assert_eq!(group.unclaimed_results(), 0);
}

#[test]
fn a_value_that_does_not_encode_fails_alone_in_a_batch() {
    let (core, group, _) = atom(0.0f64, Options::new());
    let (mut a, mut b, mut c) = three_in_a_batch(
        &group,
        &core,
        |v: &f64| Some(Arc::new(v + 1.0)),
        |_: &f64| Some(Arc::new(f64::NAN)),
        |v: &f64| Some(Arc::new(v + 10.0)),
    );
    // The batch's earlier values are encoded before its commit: b's NaN fails it, before
    // anything is sent, and every swap runs again, encoding its own value first.
    expect(&a.next(Input::Go), "gather");
    assert!(matches!(failed(b.next(Input::Go)), Error::Encode { .. }));
    expect(&c.next(Input::Go), "wait");
    assert_eq!(commit(a.next(Input::Go)), (V1, 11.0));
    assert_eq!(done(a.next(stored(V2))), (0.0, 1.0));
    assert_eq!(done(c.next(Input::Go)), (1.0, 11.0));
    assert_eq!(*core.value(), 11.0);
}

#[test]
fn a_panicking_f_fails_alone_in_a_batch() {
    let (core, group, seen) = atom(0u64, Options::new());
    group.expect_batches_of(3);
    let mut a = Txn::new(&group, &core, SWAP, add(1));
    expect(&a.next(Input::Go), "gather");
    let mut b = Txn::new(&group, &core, SWAP, |_: &u64| -> Option<Arc<u64>> {
        panic!("f panicked")
    });
    let panicked = catch_unwind(AssertUnwindSafe(|| b.next(Input::Go)));
    assert!(panicked.is_err(), "the panic reaches the caller");
    drop(b);
    let mut c = Txn::new(&group, &core, SWAP, add(100));
    expect(&c.next(Input::Go), "wait");
    assert_eq!(commit(a.next(Input::Go)), (V1, 101));
    assert_eq!(done(a.next(stored(V2))), (0, 1));
    assert_eq!(done(c.next(Input::Go)), (1, 101));
    assert_eq!(*seen.lock().unwrap(), [(0, 1), (1, 101)]);
}

#[test]
fn a_refused_value_fails_alone_in_a_batch() {
    let (core, group, _) = atom(0u64, Options::new().validator(|n: &u64| *n < 1000));
    group.expect_batches_of(3);
    let mut a = Txn::new(&group, &core, SWAP, add(1));
    expect(&a.next(Input::Go), "gather");
    let mut b = Txn::new(&group, &core, SWAP, add(5000));
    assert!(matches!(failed(b.next(Input::Go)), Error::Invalid { .. }));
    let mut c = Txn::new(&group, &core, SWAP, add(100));
    expect(&c.next(Input::Go), "wait");
    assert_eq!(commit(a.next(Input::Go)), (V1, 101));
    assert_eq!(done(a.next(stored(V2))), (0, 1));
    assert_eq!(done(c.next(Input::Go)), (1, 101));
}

#[test]
fn a_release_in_the_middle_of_a_batch_fails_every_swap_of_it() {
    let (core, group, seen) = atom(0u64, Options::new());
    let (mut a, mut b, mut c) = three_in_a_batch(&group, &core, add(1), add(10), add(100));
    commit(a.next(Input::Go));
    let step = a.next(Input::Answered(Answer::Committed(Ok(Committed::Conflict))));
    expect(&step, "call: load");
    let step = a.next(Input::Answered(Answer::Loaded(Ok(None))));
    assert!(matches!(failed(step), Error::Released));
    assert!(matches!(failed(b.next(Input::Go)), Error::Released));
    assert!(matches!(failed(c.next(Input::Go)), Error::Released));
    assert!(core.is_released());
    assert_eq!(*core.value(), 0, "deref keeps the last value");
    assert!(seen.lock().unwrap().is_empty());
    let mut late = Txn::new(&group, &core, SWAP, add(1));
    assert!(matches!(failed(late.next(Input::Go)), Error::Released));
}

#[test]
fn a_store_that_answers_released_releases_the_atom() {
    let (core, group, _) = atom(0u64, Options::new());
    let mut txn = Txn::new(&group, &core, SWAP, add(1));
    commit(txn.next(Input::Go));
    let step = txn.next(Input::Answered(Answer::Committed(Err(Error::Released))));
    assert!(matches!(failed(step), Error::Released));
    assert!(core.is_released(), "every clone sees the release");
}

#[test]
fn a_release_waits_for_the_batch_under_way_and_keeps_new_swaps_out() {
    let (core, group, _) = atom(0u64, Options::new());
    let mut a = Txn::new(&group, &core, SWAP, add(1));
    commit(a.next(Input::Go));
    assert!(
        Exclusive::try_take(&group).is_err(),
        "a batch is committing"
    );
    done(a.next(stored(V2)));
    let exclusive = Exclusive::try_take(&group).ok().unwrap();
    let mut b = Txn::new(&group, &core, SWAP, add(1));
    expect(&b.next(Input::Go), "wait");
    core.mark_released();
    drop(exclusive);
    assert!(matches!(failed(b.next(Input::Go)), Error::Released));
}

#[test]
fn a_batch_built_on_a_failed_one_runs_again_on_the_durable_value() {
    let (core, group, _) = atom(0u64, Options::new());
    let mut a = Txn::new(&group, &core, SWAP, add(1));
    commit(a.next(Input::Go));
    // `d` builds on a's value, not yet durable, while a commits.
    let seen_by_d = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen_by_d);
    let mut d = Txn::new(&group, &core, SWAP, move |v: &u64| {
        log.lock().unwrap().push(*v);
        Some(Arc::new(v + 10))
    });
    expect(&d.next(Input::Go), "wait");
    let io = Error::io("write", "/x", std::io::Error::other("disk on fire"));
    failed(a.next(Input::Answered(Answer::Committed(Err(io)))));
    assert_eq!(commit(d.next(Input::Go)), (V1, 10));
    assert_eq!(done(d.next(stored(V2))), (0, 10));
    assert_eq!(*seen_by_d.lock().unwrap(), [1, 0]);
}

#[test]
fn a_refresh_with_nothing_to_store_still_asks_the_store() {
    let (core, group, _) = atom(0u64, Options::new());
    let mode = Mode {
        check_first: false,
        refresh: true,
        following: false,
        gather: true,
    };
    let mut txn = Txn::new(&group, &core, mode, |_: &u64| None);
    assert!(matches!(txn.next(Input::Go), Step::Check(V1)));
    let step = txn.next(Input::Checked(Ok(Observed::Unchanged)));
    assert!(matches!(step, Step::Call(Call::Check(V1))));
    let step = txn.next(Input::Answered(Answer::Checked(Ok(Observed::Unchanged))));
    assert_eq!(done(step), (0, 0));
}

#[test]
fn a_dropped_follower_leaves_no_result_behind() {
    let (core, group, _) = atom(0u64, Options::new());
    let (mut a, b, mut c) = three_in_a_batch(&group, &core, add(1), add(10), add(100));
    drop(b); // an async caller went away while its batch waited
    commit(a.next(Input::Go));
    done(a.next(stored(V2)));
    done(c.next(Input::Go));
    assert_eq!(group.unclaimed_results(), 0);
    assert_eq!(*core.value(), 111, "a dropped swap's value may be stored");
}

#[test]
fn a_leader_dropped_before_sending_hands_its_batch_back() {
    let (core, group, seen) = atom(0u64, Options::new());
    let runs = Cell::new(0);
    let (a, mut b, mut c) = three_in_a_batch(
        &group,
        &core,
        add(1),
        |v: &u64| {
            runs.set(runs.get() + 1);
            Some(Arc::new(v + 10))
        },
        add(100),
    );
    drop(a);
    // b leads now, on the durable value; c joins it.
    let step = b.next(Input::Go);
    expect(&step, "gather");
    expect(&c.next(Input::Go), "wait");
    assert_eq!(commit(b.next(Input::Go)), (V1, 110));
    done(b.next(stored(V2)));
    assert_eq!(done(c.next(Input::Go)), (10, 110));
    assert_eq!(runs.get(), 2);
    assert_eq!(*seen.lock().unwrap(), [(0, 10), (10, 110)]);
}

#[test]
fn a_leader_dropped_mid_commit_fails_its_batch_as_uncertain() {
    let (core, group, _) = atom(0u64, Options::new());
    let (mut a, mut b, _c) = three_in_a_batch(&group, &core, add(1), add(10), add(100));
    commit(a.next(Input::Go));
    drop(a); // a store call panicked on the leader's thread
    assert!(failed(b.next(Input::Go)).may_have_been_stored());
    assert_eq!(*core.value(), 0);
}

#[cfg(feature = "async")]
#[test]
fn a_detached_commit_settles_the_batch_for_whoever_waits() {
    use super::calls::Next;

    let (core, group, _) = atom(0u64, Options::new());
    let (mut a, mut b, c) = three_in_a_batch(&group, &core, add(1), add(10), add(100));
    expect(&a.next(Input::Go), "call: commit");
    let (batch, mut calls) = a.detach().unwrap();
    drop(a); // the async leader went away: the commit goes on without it
    drop(c);
    let Next::Stored(outcome) = calls.answer::<Vec<u8>>(Answer::Committed(Ok(Committed::Done(V2))))
    else {
        panic!("a commit that is done needs no other call");
    };
    group.settle(&core, batch, outcome);
    assert_eq!(done(b.next(Input::Go)), (1, 11));
    assert_eq!(group.unclaimed_results(), 0);
    assert_eq!(core.current(), (Arc::new(111), V2));
}

#[test]
fn an_interrupted_check_lets_the_next_swap_check() {
    let (core, group, _) = atom(0u64, Options::new());
    let mode = Mode {
        check_first: true,
        ..SWAP
    };
    let mut txn = Txn::new(&group, &core, mode, add(1));
    assert!(matches!(txn.next(Input::Go), Step::Check(V1)));
    drop(txn);
    let mut next = Txn::new(&group, &core, mode, add(1));
    assert!(matches!(next.next(Input::Go), Step::Check(V1)));
}
