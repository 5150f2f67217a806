//! Cross-process IPC measurements: pinalloc's `CircularBuffer` against a same-run `memcpy`
//! (bandwidth) and against iceoryx2's publish/subscribe (64 B one-way latency).
//!
//! The measuring process re-executes its own binary for the other side
//! ([`serve_child_role`] must run first thing in `main`), so every figure crosses a process
//! boundary. Timestamps are `CLOCK_MONOTONIC`, shared by all processes of the machine.

use iceoryx2::prelude::*;
use pinalloc::shm::{CircularBuffer, SharedRegion, ShmError};
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLE: &str = "PINALLOC_IPC_ROLE";
const FOREVER: Duration = Duration::MAX;
/// Latency messages are paced this far apart, so the figure is latency, not queueing.
const PACE_NS: u64 = 2_000;
const WARMUP: u64 = 20_000;

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pin(core: usize) {
    if pinalloc::os::available_cores().len() >= 2 {
        let _ = pinalloc::os::pin_current_thread_to_core(core);
    }
}

fn spawn_child(args: &[String]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "1")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-executing the benchmark binary")
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("pinalloc-ipc-{}-{tag}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One-way latencies in ns: median and 99th percentile over the measured messages.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

fn summarize(mut samples: Vec<u64>) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!("{} {}", at(0.5), at(0.99))
}

fn parse_latency(out: &str) -> Latency {
    let mut it = out.split_whitespace().map(|s| s.parse::<f64>().expect("child's latency line"));
    Latency { p50: it.next().unwrap(), p99: it.next().unwrap() }
}

/// If this process was started as the other side of a measurement, plays that role and
/// exits. Call first thing in `main`.
pub fn serve_child_role() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args[0].as_str() {
        "ring-writer" => ring_writer(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap()),
        "ring-reader" => ring_reader(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap()),
        "ring-latency-reader" => ring_latency_reader(&args[1], args[2].parse().unwrap()),
        "iox-latency-subscriber" => iox_latency_subscriber(&args[1], args[2].parse().unwrap()),
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

// ---- bandwidth ----

/// Single-thread `memcpy` of `node_size` blocks into a `nodes × node_size` area (the ring's
/// working set), GB/s of bytes copied. The area is written once before the clock starts, as
/// the ring's pages are faulted in when it is created and opened: both are steady-state
/// copies.
pub fn memcpy_gbps(nodes: usize, node_size: usize, total_bytes: usize) -> f64 {
    let src = vec![0x5au8; node_size];
    let mut area = vec![1u8; nodes * node_size];
    let blocks = total_bytes / node_size;
    let started = Instant::now();
    for i in 0..blocks {
        let at = (i % nodes) * node_size;
        area[at..at + node_size].copy_from_slice(black_box(&src));
        black_box(&mut area);
    }
    (blocks * node_size) as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn wait_for_go(go: &SharedRegion) {
    let mut flag = [0u8; 1];
    loop {
        go.read(0, &mut flag).unwrap();
        if flag[0] == 1 {
            return;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn ring_writer(name: &str, messages: u64, node_size: usize) {
    let ring = CircularBuffer::open(name).unwrap();
    let go = SharedRegion::open(&format!("{name}-go")).unwrap();
    let src = vec![0xa5u8; node_size];
    wait_for_go(&go);
    for _ in 0..messages {
        ring.write(&src, FOREVER).unwrap();
    }
}

/// Reads until shutdown; prints when it finished a read after the `total`th had been
/// claimed (0 if it never did): the latest such time over the readers is when the last
/// message was out.
fn ring_reader(name: &str, node_size: usize, total: u64) {
    let ring = CircularBuffer::open(name).unwrap();
    let go = SharedRegion::open(&format!("{name}-go")).unwrap();
    let mut dst = vec![0u8; node_size];
    let mut finished_ns = 0;
    wait_for_go(&go);
    loop {
        match ring.read(&mut dst, FOREVER) {
            Ok(len) => assert_eq!(len, node_size),
            Err(ShmError::Shutdown) => break,
            Err(e) => panic!("reader: {e}"),
        }
        if ring.stats().read >= total {
            finished_ns = now_ns();
        }
    }
    println!("{finished_ns}");
}

/// Payload GB/s through a ring of `nodes × node_size` between `writers` writer and `readers`
/// reader processes, each payload byte counted once (written by one process, read by
/// another), from the go signal to the end of the last read (as the readers saw it).
///
/// The measuring process only checks every few milliseconds whether the run is over: on a
/// 2-core machine each of its wake-ups preempts a writer or a reader, which a same-run
/// `memcpy` never suffers.
pub fn ring_gbps(nodes: usize, node_size: usize, writers: usize, readers: usize, total_bytes: usize) -> f64 {
    let name = unique("bw");
    let ring = CircularBuffer::create(&name, nodes, node_size).unwrap();
    let go = SharedRegion::create(&format!("{name}-go"), 64).unwrap();
    let per_writer = (total_bytes / node_size / writers) as u64;
    let total = per_writer * writers as u64;
    let reader_args = ["ring-reader".into(), name.clone(), node_size.to_string(), total.to_string()];
    let readers: Vec<Child> = (0..readers).map(|_| spawn_child(&reader_args)).collect();
    let writers: Vec<Child> = (0..writers)
        .map(|_| {
            spawn_child(&["ring-writer".into(), name.clone(), per_writer.to_string(), node_size.to_string()])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100)); // let every child open and wait
    let started_ns = now_ns();
    go.write(0, &[1]).unwrap();
    while ring.stats().read < total {
        std::thread::sleep(Duration::from_millis(5));
    }
    ring.shutdown();
    for writer in writers {
        assert!(writer.wait_with_output().unwrap().status.success());
    }
    let finished_ns = readers
        .into_iter()
        .map(|reader| {
            let out = reader.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap().trim().parse::<u64>().expect("reader's end time")
        })
        .max()
        .unwrap();
    (total as f64 * node_size as f64) / ((finished_ns - started_ns) as f64 / 1e9) / 1e9
}

// ---- latency ----

fn ring_latency_reader(name: &str, messages: u64) {
    pin(1);
    let mut ring = CircularBuffer::open(name).unwrap();
    ring.set_spin(Duration::from_secs(3600));
    let mut samples = Vec::with_capacity(messages as usize);
    for i in 0..WARMUP + messages {
        let sent = ring.read_with(FOREVER, |m| u64::from_le_bytes(m[..8].try_into().unwrap())).unwrap();
        if i >= WARMUP {
            samples.push(now_ns().saturating_sub(sent));
        }
    }
    println!("{}", summarize(samples));
}

/// One-way latency of 64 B messages from this process to a reader process through a
/// `CircularBuffer` of 64 nodes (reader spinning, both pinned where allowed).
pub fn ring_latency(messages: u64) -> Latency {
    let name = unique("lat");
    let ring = CircularBuffer::create(&name, 64, 64).unwrap();
    let child = spawn_child(&["ring-latency-reader".into(), name.clone(), messages.to_string()]);
    // Sent from a pinned thread: the main thread (and children spawned later) stay unpinned.
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(0);
            let mut message = [0u8; 64];
            for _ in 0..WARMUP + messages {
                let sent = now_ns();
                message[..8].copy_from_slice(&sent.to_le_bytes());
                ring.write(&message, FOREVER).unwrap();
                while now_ns() < sent + PACE_NS {
                    std::hint::spin_loop();
                }
            }
        });
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    parse_latency(&String::from_utf8(out.stdout).unwrap())
}

/// iceoryx2's 64 B payload: the send timestamp, then padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, ZeroCopySend)]
#[type_name("PinallocIpcLatency64")]
struct Payload64 {
    sent_ns: u64,
    _pad: [u64; 7],
}

type IoxFactory =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, Payload64, ()>;

fn iox_service(node: &Node<ipc::Service>, name: &str, create: bool) -> IoxFactory {
    let name: ServiceName = name.try_into().unwrap();
    let builder = node
        .service_builder(&name)
        .publish_subscribe::<Payload64>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(64)
        .enable_safe_overflow(false);
    if create { builder.create().unwrap() } else { builder.open().unwrap() }
}

fn iox_latency_subscriber(name: &str, messages: u64) {
    set_log_level(LogLevel::Error);
    pin(1);
    let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
    let service = iox_service(&node, name, false);
    let subscriber = service.subscriber_builder().buffer_size(64).create().unwrap();
    let mut samples = Vec::with_capacity(messages as usize);
    let mut received = 0;
    while received < WARMUP + messages {
        if let Some(sample) = subscriber.receive().unwrap() {
            let now = now_ns();
            if received >= WARMUP {
                samples.push(now.saturating_sub(sample.sent_ns));
            }
            received += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    println!("{}", summarize(samples));
}

/// The same measurement through iceoryx2 0.10 publish/subscribe (`ipc::Service`, zero-copy
/// loan, subscriber busy-polling, no overflow: the publisher blocks instead of dropping).
pub fn iceoryx2_latency(messages: u64) -> Latency {
    set_log_level(LogLevel::Error);
    // All on one thread (iceoryx2's ports are not `Send`), spawned so that pinning it leaves
    // the main thread, and children spawned later, unpinned.
    let out = std::thread::spawn(move || {
        let name = format!("pinalloc/ipc/{}", unique("iox"));
        let node = NodeBuilder::new().create::<ipc::Service>().unwrap();
        let service = iox_service(&node, &name, true);
        let publisher = service
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .unwrap();
        let child = spawn_child(&["iox-latency-subscriber".into(), name.clone(), messages.to_string()]);
        pin(0);
        while service.dynamic_config().number_of_subscribers() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..WARMUP + messages {
            let sent = now_ns();
            let sample = publisher.loan_uninit().unwrap();
            sample.write_payload(Payload64 { sent_ns: sent, _pad: [0; 7] }).send().unwrap();
            while now_ns() < sent + PACE_NS {
                std::hint::spin_loop();
            }
        }
        child.wait_with_output().unwrap()
    })
    .join()
    .unwrap();
    assert!(out.status.success());
    parse_latency(&String::from_utf8(out.stdout).unwrap())
}
