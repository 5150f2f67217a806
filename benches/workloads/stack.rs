//! A free list of buffers, the use the Treiber stack was built for: take one, put it back.
//! The stack against `crossbeam_queue::ArrayQueue` holding the same items.

use crossbeam_queue::ArrayQueue;
use pinalloc::stack::{NodePool, TreiberStack};
use std::hint::black_box;
use std::sync::Arc;

/// Items in the free list: more than the threads ever hold, so a take rarely finds it empty.
pub const ITEMS: u64 = 1024;

/// Something a take+return pair can be measured on.
pub trait FreeList: Sync {
    const NAME: &'static str;
    fn new() -> Self;
    /// Takes one item and returns it; `false` if the list was empty.
    fn take_and_return(&self) -> bool;
}

pub struct Treiber {
    stack: TreiberStack<u64, Arc<NodePool<u64>>>,
}

impl FreeList for Treiber {
    const NAME: &'static str = "pinalloc TreiberStack";
    fn new() -> Self {
        let pool = Arc::new(NodePool::new());
        let stack = TreiberStack::new(pool.clone());
        for i in 0..ITEMS {
            stack.push(pool.insert(i).expect("a fresh pool has room"));
        }
        Treiber { stack }
    }
    #[inline]
    fn take_and_return(&self) -> bool {
        match self.stack.pop() {
            Some(mut node) => {
                *node = black_box(*node);
                self.stack.push(node);
                true
            }
            None => false,
        }
    }
}

pub struct CrossbeamArrayQueue {
    queue: ArrayQueue<u64>,
}

impl FreeList for CrossbeamArrayQueue {
    const NAME: &'static str = "crossbeam ArrayQueue";
    fn new() -> Self {
        let queue = ArrayQueue::new(ITEMS as usize);
        for i in 0..ITEMS {
            queue.push(i).expect("capacity is ITEMS");
        }
        CrossbeamArrayQueue { queue }
    }
    #[inline]
    fn take_and_return(&self) -> bool {
        match self.queue.pop() {
            Some(item) => {
                let _ = self.queue.push(black_box(item));
                true
            }
            None => false,
        }
    }
}

/// Runs `pairs` take+return pairs on each of `threads` threads at once; returns the wall time.
pub fn run_pairs<L: FreeList>(list: &L, threads: usize, pairs: u64) -> std::time::Duration {
    super::run_on_threads(threads, |_| {
        for _ in 0..pairs {
            black_box(list.take_and_return());
        }
    })
}
