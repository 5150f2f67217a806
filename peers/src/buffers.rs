//! The buffer pool scenarios of buffer_sv2's benches, generic over every contender: used by
//! the ratio table (`src/bin/buffers.rs`) and the criterion benches (`benches/buffers.rs`).
//!
//! buffer_sv2's parameters: a pool of 327,680 bytes; 1000 iterations of 2 messages of
//! 4,384 to 16,384 bytes (`2^14 - rand(0..12000)`), each written in 10-byte `get_writable`
//! chunks copied from random input. Unlike buffer_sv2's benches, the thread that receives
//! slices is spawned once and reused (spawning a thread per slice was most of what those
//! benches measured), and the lengths come from a fixed seed, the same for every contender.
//!
//! As in buffer_sv2's benches, each scenario builds its contender itself (from a `make`
//! closure, before the clock starts), so the contender is a local of the timed function.
//! Passed in by value instead, it would live in the caller's frame, and the compiler would
//! have to store every write's bookkeeping back to it (the caller may read it after an
//! unwind). A codec that keeps its buffer behind `&mut` pays that store too; one that owns
//! it as a local, as these scenarios do, does not.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// buffer_sv2's pool capacity.
pub const CAPACITY: usize = 5 << 16;
/// Iterations of each scenario (two messages each).
pub const ITERATIONS: usize = 1000;
/// How long the receiving thread holds a slice before dropping it (buffer_sv2's benches
/// sleep 10 µs).
pub const HOLD: Duration = Duration::from_micros(10);

/// What the scenarios need from a buffer: write a chunk into the current frame, take it.
pub trait Contender {
    /// A taken frame.
    type Frame: AsRef<[u8]> + Send + 'static;
    /// Appends `data` to the frame being written.
    fn write(&mut self, data: &[u8]);
    /// Takes the frame.
    fn take(&mut self) -> Self::Frame;
}

/// Any of pinalloc's buffers (`BufferPool`, `BufferFromSystemMemory`) through its `Buffer`
/// trait, as a codec uses it.
pub struct Pinalloc<B>(pub B);

impl<B> Contender for Pinalloc<B>
where
    B: pinalloc::buffer::Buffer,
    B::Slice: Send + 'static,
{
    type Frame = B::Slice;
    #[inline]
    fn write(&mut self, data: &[u8]) {
        self.0.get_writable(data.len()).copy_from_slice(data);
    }
    #[inline]
    fn take(&mut self) -> Self::Frame {
        self.0.get_data_owned()
    }
}

/// buffer_sv2 3.0.1's `BufferPool`.
pub struct BufferSv2(pub buffer_sv2::BufferPool<buffer_sv2::BufferFromSystemMemory>);

/// buffer_sv2's `Slice` does not implement `AsRef` (only `AsMut`); this reads it through
/// `AsMut`, which is what its users do.
pub struct Sv2Frame(buffer_sv2::Slice);

impl AsRef<[u8]> for Sv2Frame {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl Contender for BufferSv2 {
    type Frame = Sv2Frame;
    #[inline]
    fn write(&mut self, data: &[u8]) {
        use buffer_sv2::Buffer;
        self.0.get_writable(data.len()).copy_from_slice(data);
    }
    #[inline]
    fn take(&mut self) -> Self::Frame {
        use buffer_sv2::Buffer;
        Sv2Frame(self.0.get_data_owned())
    }
}

/// `bytes::BytesMut`: frames split off and frozen; once their `Bytes` are dropped,
/// `reserve` takes the original allocation back.
pub struct Bytes {
    buffer: bytes::BytesMut,
    capacity: usize,
}

impl Bytes {
    /// A buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Bytes { buffer: bytes::BytesMut::with_capacity(capacity), capacity }
    }
}

impl Contender for Bytes {
    type Frame = bytes::Bytes;
    #[inline]
    fn write(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }
    #[inline]
    fn take(&mut self) -> Self::Frame {
        let frame = self.buffer.split().freeze();
        self.buffer.reserve(self.capacity / 8);
        frame
    }
}

/// A pool of fixed-size vectors behind a mutex: a frame is a vector handed out and put back
/// on the free list when dropped. The frame being written is a vector from the list (or a
/// new one when the list is empty).
pub struct MutexPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
    frame_capacity: usize,
}

impl MutexPool {
    /// `frames` vectors of `frame_capacity` bytes.
    pub fn new(frames: usize, frame_capacity: usize) -> Self {
        let free = (0..frames).map(|_| Vec::with_capacity(frame_capacity)).collect();
        MutexPool { free: Arc::new(Mutex::new(free)), current: Vec::new(), frame_capacity }
    }
}

/// A `MutexPool` frame.
pub struct PooledVec {
    bytes: Vec<u8>,
    home: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for PooledVec {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for PooledVec {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        self.home.lock().unwrap().push(bytes);
    }
}

impl Contender for MutexPool {
    type Frame = PooledVec;
    #[inline]
    fn write(&mut self, data: &[u8]) {
        if self.current.capacity() == 0 {
            self.current =
                self.free.lock().unwrap().pop().unwrap_or_else(|| Vec::with_capacity(self.frame_capacity));
        }
        self.current.extend_from_slice(data);
    }
    #[inline]
    fn take(&mut self) -> Self::Frame {
        PooledVec { bytes: std::mem::take(&mut self.current), home: self.free.clone() }
    }
}

/// The do-nothing bound (buffer_sv2's `MaxEfficiency`): every write lands on the same
/// bytes, a frame is a view of the region with no bookkeeping. Not a working buffer.
pub struct DoNothing {
    region: Vec<u8>,
    written: usize,
}

impl DoNothing {
    /// A region of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        DoNothing { region: vec![0; capacity.max(1 << 14)], written: 0 }
    }
}

/// A `DoNothing` frame: where it would be and how long.
pub struct View {
    ptr: usize,
    len: usize,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        black_box((self.ptr, self.len));
        &[]
    }
}

impl Contender for DoNothing {
    type Frame = View;
    #[inline]
    fn write(&mut self, data: &[u8]) {
        self.region[..data.len()].copy_from_slice(data);
        self.written += data.len();
    }
    #[inline]
    fn take(&mut self) -> Self::Frame {
        let len = std::mem::take(&mut self.written);
        View { ptr: self.region.as_ptr() as usize, len }
    }
}

/// The floor for a real buffer: a vector written front to back, each frame on bytes of its
/// own, with no bookkeeping but the vector's bounds check (frames are views; it starts over
/// once past half its capacity). Writing 10-byte chunks to fresh bytes costs more than
/// rewriting the same 10 (some stores straddle cache lines, every line is new), a cost no
/// buffer can avoid: the do-nothing bound is beyond reach by that much. Not a working buffer.
pub struct Sequential {
    region: Vec<u8>,
    written: usize,
    frame: usize,
}

impl Sequential {
    /// A region of `capacity` bytes (at least two maximum-length frames).
    pub fn new(capacity: usize) -> Self {
        Sequential { region: vec![0; capacity.max(1 << 15)], written: 0, frame: 0 }
    }
}

impl Contender for Sequential {
    type Frame = View;
    #[inline]
    fn write(&mut self, data: &[u8]) {
        let at = self.written;
        self.region[at..at + data.len()].copy_from_slice(data);
        self.written += data.len();
    }
    #[inline]
    fn take(&mut self) -> Self::Frame {
        let frame = View { ptr: self.region.as_ptr() as usize + self.frame, len: self.written - self.frame };
        if self.written > self.region.len() / 2 {
            self.written = 0;
        }
        self.frame = self.written;
        frame
    }
}

/// Every contender, freshly made, by name, in table order.
pub const NAMES: [&str; 7] =
    ["pinalloc", "buffer_sv2", "system-memory", "mutex-pool", "bytes", "sequential", "do-nothing"];

/// Runs `$body` with `$make` bound to a closure that makes a fresh contender called `$name`.
#[macro_export]
macro_rules! with_contender {
    ($name:expr, |$make:ident| $body:expr) => {{
        use $crate::buffers::*;
        match $name {
            "pinalloc" => {
                let $make = || Pinalloc(pinalloc::buffer::BufferPool::new(CAPACITY));
                $body
            }
            "buffer_sv2" => {
                let $make = || BufferSv2(buffer_sv2::BufferPool::new(CAPACITY));
                $body
            }
            "system-memory" => {
                let $make = || Pinalloc(pinalloc::buffer::BufferFromSystemMemory::new(0));
                $body
            }
            "mutex-pool" => {
                let $make = || MutexPool::new(8, 1 << 14);
                $body
            }
            "bytes" => {
                let $make = || Bytes::new(CAPACITY);
                $body
            }
            "sequential" => {
                let $make = || Sequential::new(CAPACITY);
                $body
            }
            "do-nothing" => {
                let $make = || DoNothing::new(CAPACITY);
                $body
            }
            other => panic!("no contender {other}"),
        }
    }};
}

/// The random input the messages are copied from, and the message lengths.
pub struct Input {
    data: Vec<u8>,
    lengths: Vec<usize>,
}

impl Input {
    /// Fixed-seed input for `ITERATIONS` iterations.
    pub fn new() -> Self {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let data = (0..(1 << 15)).map(|_| next() as u8).collect();
        let lengths = (0..ITERATIONS).map(|_| (1 << 14) - (next() % 12_000) as usize).collect();
        Input { data, lengths }
    }
}

impl Default for Input {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes one message of `len` bytes in 10-byte chunks from `input[offset..]`.
#[inline(always)]
fn write_message<C: Contender>(c: &mut C, input: &Input, offset: usize, len: usize) {
    for i in 0..len / 10 {
        c.write(&input.data[offset + i..offset + i + 10]);
    }
}

/// Scenario 1, one thread: write, take, write, take, drop both.
#[inline(never)] // each contender's loop compiled on its own (see `bin/buffers.rs`)
pub fn single_thread<C: Contender>(make: impl FnOnce() -> C, input: &Input) -> Duration {
    let mut c = make();
    let start = Instant::now();
    for (i, &len) in input.lengths.iter().enumerate() {
        write_message(&mut c, input, i, len);
        let a = c.take();
        write_message(&mut c, input, i, len);
        let b = c.take();
        black_box((a.as_ref().len(), b.as_ref().len()));
    }
    start.elapsed()
}

/// The receiving thread: holds each frame for `HOLD`, then drops it and counts it.
struct Receiver<F: Send + 'static> {
    tx: Option<mpsc::Sender<F>>,
    dropped: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<F: AsRef<[u8]> + Send + 'static> Receiver<F> {
    fn spawn() -> Self {
        let (tx, rx) = mpsc::channel::<F>();
        let dropped = Arc::new(AtomicUsize::new(0));
        let count = dropped.clone();
        let thread = std::thread::spawn(move || {
            let mut held: VecDeque<(Instant, F)> = VecDeque::new();
            loop {
                match rx.try_recv() {
                    Ok(frame) => held.push_back((Instant::now() + HOLD, frame)),
                    Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                    Err(mpsc::TryRecvError::Disconnected) if held.is_empty() => break,
                    Err(mpsc::TryRecvError::Disconnected) => {}
                }
                let now = Instant::now();
                while held.front().is_some_and(|(due, _)| *due <= now) {
                    let (_, frame) = held.pop_front().unwrap();
                    black_box(frame.as_ref().len());
                    drop(frame);
                    // Release: pairs with the producer's Acquire in `wait_for`.
                    count.fetch_add(1, Ordering::Release);
                }
            }
        });
        Receiver { tx: Some(tx), dropped, thread: Some(thread) }
    }

    fn send(&self, frame: F) {
        self.tx.as_ref().unwrap().send(frame).unwrap();
    }

    fn wait_for(&self, frames: usize) {
        // Acquire: pairs with the receiver's Release after each drop.
        while self.dropped.load(Ordering::Acquire) < frames {
            std::hint::spin_loop();
        }
    }
}

impl<F: Send + 'static> Drop for Receiver<F> {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Scenarios 2 and 3: each frame is sent to another thread, which drops it `HOLD` later;
/// with `wait`, each iteration waits until both of its frames were dropped. The receiving
/// thread is spawned before the clock starts and joined after it stops.
#[inline(never)] // each contender's loop compiled on its own (see `bin/buffers.rs`)
pub fn send_to_thread<C: Contender>(make: impl FnOnce() -> C, input: &Input, wait: bool) -> Duration {
    let mut c = make();
    let receiver = Receiver::<C::Frame>::spawn();
    let start = Instant::now();
    for (i, &len) in input.lengths.iter().enumerate() {
        write_message(&mut c, input, i, len);
        receiver.send(c.take());
        write_message(&mut c, input, i, len);
        receiver.send(c.take());
        if wait {
            receiver.wait_for(2 * (i + 1));
        }
    }
    let elapsed = start.elapsed();
    drop(receiver);
    drop(c);
    elapsed
}

/// The 64 B frame cycle: write 64 bytes, take the frame, drop it; `n` times. Returns
/// nanoseconds per cycle.
#[inline(never)] // each contender's loop compiled on its own (see `bin/buffers.rs`)
pub fn frame_cycle<C: Contender>(make: impl FnOnce() -> C, n: usize) -> f64 {
    let mut c = make();
    let data = [0x5au8; 64];
    for _ in 0..1000 {
        c.write(black_box(&data));
        drop(black_box(c.take()));
    }
    let start = Instant::now();
    for _ in 0..n {
        c.write(black_box(&data));
        drop(black_box(c.take()));
    }
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}
