//! An ABA-safe Treiber stack: the lock-free LIFO that every depot and pool of the crate is
//! built from.
//!
//! A [`NodePool`] stores nodes carrying a `T` in slabs that are never unmapped while the
//! pool lives; [`TreiberStack`]s over the pool push and pop them; an [`Owned`] token is the
//! proof that one party holds a node, so the value in it can be used mutably without a lock.
//!
//! ```
//! use pinalloc::stack::{NodePool, TreiberStack};
//!
//! let pool = NodePool::new();
//! let free = TreiberStack::new(&pool);
//! for order_id in 0..3u64 {
//!     free.push(pool.insert(order_id).unwrap());
//! }
//! let mut top = free.pop().unwrap();
//! assert_eq!(*top, 2);
//! *top += 100;
//! free.push(top);
//! let all: Vec<u64> = free.pop_all().map(|node| *node).collect();
//! assert_eq!(all, [102, 1, 0]);
//! ```
//!
//! # Why the head is an index and a tag
//!
//! Treiber's algorithm (R. K. Treiber, *Systems Programming: Coping with Parallelism*, IBM
//! RJ 5118, 1986) pops by reading the top node A and its successor B, then swinging the head
//! from A to B with one compare-and-swap. If the head is a bare pointer (or index), the CAS
//! cannot tell "A, untouched" from "A, after it left and came back":
//!
//! | step | thread 1 (popping) | thread 2 | stack afterwards |
//! |---|---|---|---|
//! | 1 | reads head = A, A.next = B | | A → B → C |
//! | 2 | *(preempted)* | pops A | B → C |
//! | 3 | | pops B (now owns B) | C |
//! | 4 | | pushes A (A.next = C) | A → C |
//! | 5 | CAS(head: A → B) **succeeds** | | B → ?, while thread 2 owns B |
//!
//! With a bare head the stack now holds B, which thread 2 also holds: two owners, and C is
//! lost. Here the head is one `AtomicU64` holding a 32-bit node index and a 32-bit tag, and
//! every successful push and pop writes a new tag. At step 5 thread 1 expects `(A, t)` but
//! the head is `(A, t + 3)`, so its CAS fails and it retries from the new head. A false match
//! needs the tag to wrap (2³² successful operations) between one thread's read and its CAS.
//!
//! Reading `A.next` at step 5 is itself a race with thread 2 rewriting it at step 4: `next`
//! is an atomic, and the node is never unmapped while the pool lives, so the stale read is
//! harmless. The loom tests (`tests/loom_stack.rs`) play this interleaving; built with
//! `--cfg pinalloc_untagged` (the tag never changes) they fail, which is how the guard is
//! shown to matter.

mod bounded;
mod node_pool;
mod tagged;
pub(crate) mod treiber;

pub use bounded::{BoundedStack, Weighed};
pub use node_pool::{MAX_NODES, NodePool, NodePoolError, Owned, PoolRef, RawNode};
pub use treiber::{Drain, TreiberStack};
