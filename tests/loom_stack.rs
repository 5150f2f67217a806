//! Loom models of the Treiber stack. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_stack`.
//!
//! Built additionally with `--cfg pinalloc_untagged` (the head's tag never changes) the
//! ABA model must fail: that run is how CI shows the tag is what makes the stack correct.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use pinalloc::stack::{NodePool, Owned, TreiberStack};

/// A node payload whose accesses loom tracks: two threads touching it without a
/// happens-before edge between them is reported as a data race.
struct Payload {
    id: u32,
    holder: UnsafeCell<u32>,
}

fn payload(id: u32) -> Payload {
    Payload { id, holder: UnsafeCell::new(0) }
}

/// Marks the node as held by `me`, as an owner would write to a buffer it took.
fn hold(node: &Owned<'_, Payload>, me: u32) {
    // SAFETY: the token gives this thread the node; loom checks that claim, reporting any
    // access not ordered after the previous holder's.
    node.holder.with_mut(|holder| unsafe { *holder = me });
}

/// Runs `f` under every schedule loom explores (at most 3 preemptions), and checks that it
/// explored more than one: a model that ran once would prove nothing.
fn model(f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let explored = executions.load(Ordering::Relaxed);
    println!("loom explored {explored} executions");
    assert!(explored > 1, "loom explored only {explored} execution");
}

type Pool = NodePool<Payload>;
type Stack = TreiberStack<Payload, Arc<Pool>>;

fn stack_of(ids: &[u32]) -> (Arc<Pool>, Arc<Stack>) {
    let pool = Arc::new(NodePool::new());
    let stack = Arc::new(TreiberStack::new(pool.clone()));
    for &id in ids.iter().rev() {
        stack.push(pool.insert(payload(id)).unwrap());
    }
    (pool, stack)
}

/// Counts each id found on the stack or in `held`, and checks each appears exactly once.
fn assert_each_once(stack: &Stack, held: &[u32], ids: u32) {
    let mut seen = vec![0; ids as usize];
    for node in stack.pop_all() {
        seen[node.id as usize] += 1;
    }
    for &id in held {
        seen[id as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "every node exactly once, got {seen:?}");
}

/// Two threads pop and push back concurrently; nothing is lost or duplicated, and the
/// payload accesses are ordered (push's Release, pop's Acquire).
#[test]
fn concurrent_pop_and_push() {
    model(|| {
        let (_pool, stack) = stack_of(&[0, 1]);
        let workers: Vec<_> = (1..=2)
            .map(|me| {
                let stack = stack.clone();
                thread::spawn(move || {
                    if let Some(node) = stack.pop() {
                        hold(&node, me);
                        stack.push(node);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_each_once(&stack, &[], 2);
    });
}

/// The ABA interleaving of the module docs: thread 1 pops once while thread 2 pops A, pops
/// B and pushes A back. With the tag, thread 1's stale CAS fails and every node stays
/// accounted for exactly once; without it, loom finds the schedule where B is both on the
/// stack and held by thread 2.
#[test]
#[cfg_attr(pinalloc_untagged, should_panic)]
fn aba_interleaving_is_defeated_by_the_tag() {
    model(|| {
        let (_pool, stack) = stack_of(&[0, 1, 2]); // A = 0 on top, then B = 1, C = 2
        let one = {
            let stack = stack.clone();
            thread::spawn(move || {
                let node = stack.pop().expect("three nodes, at most two taken by the other thread");
                hold(&node, 1);
                node.into_raw() // keep holding it
            })
        };
        let two = {
            let stack = stack.clone();
            thread::spawn(move || {
                let mut held = Vec::new();
                let a = stack.pop();
                let b = stack.pop();
                if let Some(b) = &b {
                    hold(b, 2);
                }
                if let Some(a) = a {
                    stack.push(a);
                }
                held.extend(b.map(|b| b.id));
                held
            })
        };
        let one_raw = one.join().unwrap();
        let held_by_two = two.join().unwrap();
        let pool = stack.pool();
        // SAFETY: thread 1 gave up this token with into_raw and it is rebuilt once.
        let one_node = unsafe { Owned::from_raw(pool, one_raw) };
        let mut held = held_by_two;
        held.push(one_node.id);
        assert_each_once(&stack, &held, 3);
    });
}

/// pop_all racing a push: the pushed node is either in the drained chain or left on the
/// stack, never lost; and the drained payloads are visible to the drainer.
#[test]
fn pop_all_races_push() {
    model(|| {
        let (pool, stack) = stack_of(&[0, 1]);
        let extra = pool.insert(payload(2)).unwrap().into_raw();
        let pusher = {
            let (pool, stack) = (pool.clone(), stack.clone());
            thread::spawn(move || {
                // SAFETY: the main thread gave this token up with into_raw, and only we rebuild it.
                let node = unsafe { Owned::from_raw(&pool, extra) };
                hold(&node, 1);
                stack.push(node);
            })
        };
        let drained: Vec<u32> = stack
            .pop_all()
            .map(|node| {
                hold(&node, 2);
                node.id
            })
            .collect();
        pusher.join().unwrap();
        assert_each_once(&stack, &drained, 3);
    });
}

/// Two threads insert and release concurrently through the pool's internal free list:
/// distinct nodes, none lost.
#[test]
fn concurrent_insert_and_release() {
    model(|| {
        let pool: Arc<Pool> = Arc::new(NodePool::new());
        let first = pool.insert(payload(0)).unwrap();
        drop(first); // node 0 is now on the released list
        let workers: Vec<_> = (1..=2u32)
            .map(|me| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let node = pool.insert(payload(me)).unwrap();
                    hold(&node, me);
                    node.into_raw().index()
                })
            })
            .collect();
        let mut indices: Vec<u32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), 2, "two inserts, two distinct nodes");
        assert_eq!(pool.created(), 2, "one of them reused the released node");
    });
}

/// The depot protocol ([`BoundedStack`]): two threads exchange weighed entries (magazines)
/// through one bounded stack while its counts run beside it. Every entry ends up exactly
/// once in someone's hands or on the stack, the bound holds, and the counts never fall
/// below the contents (a wrap below zero would show as a huge value). Counting after the
/// push instead of before fails this model within a second.
#[test]
fn depot_exchange_keeps_entries_and_counts() {
    use pinalloc::stack::{BoundedStack, Weighed};

    #[derive(Clone, Copy)]
    struct Magazine {
        id: u32,
        blocks: u32,
    }
    impl Weighed for Magazine {
        fn weight(&self) -> u32 {
            self.blocks
        }
    }
    /// Weight at which pushes are refused: the first magazine (3 or 5 blocks) always fits,
    /// the second only if the first was lighter.
    const BOUND: u32 = 4;
    model(|| {
        let depot = Arc::new(BoundedStack::new(Arc::new(NodePool::<Magazine>::new())));
        let workers: Vec<_> = [(0, 3), (1, 5)]
            .into_iter()
            .map(|(id, blocks)| {
                let depot = depot.clone();
                thread::spawn(move || {
                    let mut held = Vec::new();
                    if let Err(back) = depot.push(Magazine { id, blocks }, BOUND) {
                        held.push(back.id);
                    }
                    assert!(depot.entries() <= 2 && depot.weight() <= 8, "counts in range");
                    if let Some(m) = depot.pop() {
                        assert!(depot.weight() <= 8, "no wrap below zero");
                        held.push(m.id);
                    }
                    held
                })
            })
            .collect();
        let mut seen = [0; 2];
        for w in workers {
            for id in w.join().unwrap() {
                seen[id as usize] += 1;
            }
        }
        let (entries, weight) = (depot.entries(), depot.weight());
        let (mut drained, mut drained_weight) = (0, 0);
        depot.drain(|m| {
            seen[m.id as usize] += 1;
            drained += 1;
            drained_weight += m.blocks;
        });
        assert_eq!(seen, [1, 1], "every magazine exactly once");
        assert_eq!((entries, weight), (drained, drained_weight), "at rest the counts are exact");
        assert_eq!((depot.entries(), depot.weight()), (0, 0));
    });
}
