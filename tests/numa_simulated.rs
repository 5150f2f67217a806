//! NUMA behaviour on a simulated topology (this machine has one node): depot selection per
//! node and frees across nodes. Its own process, since the topology is process-wide.
#![cfg(not(loom))]

use pinalloc::PinAlloc;
use pinalloc::global::{self, DEPOT_NODES};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;
use std::thread;

static ALLOC: PinAlloc = PinAlloc::new();

fn magazines_on(node: usize, layout: Layout) -> u32 {
    let class = global::size_class::class_of(layout.size(), layout.align()).unwrap();
    ALLOC.stats().classes[class].depot_magazines_per_node[node % DEPOT_NODES]
}

#[test]
fn depots_are_per_node_and_cross_node_frees_work() {
    // 4 nodes of 4 cores: CPUs 0-3 node 0, 4-7 node 1, ...
    global::simulate_topology(4, 4);
    let layout = Layout::from_size_align(96, 8).unwrap();
    let n = 20_000;

    // A thread on node 2 allocates; a thread on node 1 frees everything it gets.
    let (to_freer, freer_rx) = mpsc::channel::<Vec<usize>>();
    let freer = thread::spawn(move || {
        global::use_numa_node(1);
        assert_eq!(global::current_thread_node(), 1);
        for batch in freer_rx {
            for p in batch {
                // SAFETY: allocated by the producer with `layout`, freed once.
                unsafe { ALLOC.dealloc(p as *mut u8, layout) };
            }
        }
        // Thread exit flushes this cache into node 1's depots.
    });
    let producer = thread::spawn(move || {
        global::use_numa_node(2);
        for _ in 0..n / 1000 {
            let batch: Vec<usize> = (0..1000)
                .map(|i| {
                    // SAFETY: non-zero layout.
                    let p = unsafe { ALLOC.alloc(layout) };
                    assert!(!p.is_null());
                    // SAFETY: 96 writable bytes.
                    unsafe { p.write_bytes(i as u8, 96) };
                    p as usize
                })
                .collect();
            to_freer.send(batch).unwrap();
        }
    });
    producer.join().unwrap();
    freer.join().unwrap();

    // The freed blocks went to the freeing thread's node (20,000 blocks of 96 B are well
    // over 100 magazines of 128); the allocating node got back only what was left in the
    // producer's own cache when it exited (a list and a spare at most).
    assert!(
        magazines_on(1, layout) >= 100,
        "the freer's node holds the magazines: {}",
        magazines_on(1, layout)
    );
    assert!(
        magazines_on(2, layout) <= 2,
        "the producer's node got only its leftovers: {}",
        magazines_on(2, layout)
    );

    // A thread on node 3 does not draw from node 1's depot; a thread on node 1 does.
    // (Counted before the threads exit: their exit flush puts leftovers back.)
    for (node, takes_from_node_1) in [(3, false), (1, true)] {
        thread::spawn(move || {
            global::use_numa_node(node);
            let before = magazines_on(1, layout);
            // SAFETY: non-zero layout; freed right away.
            unsafe { ALLOC.dealloc(ALLOC.alloc(layout), layout) };
            let after = magazines_on(1, layout);
            if takes_from_node_1 {
                assert_eq!(after, before - 1, "a thread on node 1 takes a magazine from node 1's depot");
            } else {
                assert_eq!(after, before, "a thread on node 3 leaves node 1's depot alone");
            }
        })
        .join()
        .unwrap();
    }
}

#[test]
fn pinning_binds_the_cache_to_the_cores_node() {
    global::simulate_topology(4, 4);
    let cores = pinalloc::os::available_cores();
    let Some(&core) = cores.last() else { return };
    thread::spawn(move || match pinalloc::pin_current_thread(core) {
        Ok(at) => {
            assert_eq!(at.node, (core / 4) % 4);
            assert_eq!(global::current_thread_node(), at.node);
        }
        Err(error) => eprintln!("pinning not permitted here ({error}); node binding checked elsewhere"),
    })
    .join()
    .unwrap();
}
