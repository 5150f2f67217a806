//! Buffer pools compared on the two scenarios of the `LockFreeBufferPool` issue: a get+drop
//! pair on one thread (for pinalloc, a thread-cache hit), and a producer thread passing
//! buffers to a consumer thread that drops them (so every buffer is returned on the other
//! thread). Used by the ratio table (`src/bin/pools.rs`) and the criterion benches
//! (`benches/pools.rs`).
//!
//! Every contender hands out 4 KiB byte buffers, pre-allocated where the pool can be:
//! * `pinalloc`: `LockFreeBufferPool` (one class of 4 KiB buffers, 32 per thread cache);
//! * `arrayqueue`: a pool of boxed buffers on `crossbeam_queue::ArrayQueue`, with a guard
//!   that pushes the buffer back on drop (what one writes with a bounded MPMC queue);
//! * `lockfree-object-pool`: its `LinearObjectPool<Vec<u8>>`;
//! * `opool`: its concurrent `Pool` (an `ArrayQueue` inside, plus an allocator);
//! * `vec`: no pool, `Vec::with_capacity` on the system allocator each time;
//! * `carried`: no pool and no buffer, 16 bytes carried inside the guard. It shows how much
//!   of the 2-thread figure is the queue between the threads: not a floor, as it turns out.
//!   It takes longer than pinalloc (69 against 37 ns, 226 against 98 ns in two runs): a
//!   producer with less to do runs into the consumer on the queue's cache lines more often.
//!   The 2-thread figures measure the queue's dynamics as much as the pools.

use crossbeam_queue::ArrayQueue;
use pinalloc::pool::{BufferClass, ClassConfig, LockFreeBufferPool, LockFreeBufferPoolConfig};
use std::hint::black_box;
use std::ops::DerefMut;
use std::time::{Duration, Instant};

/// Bytes per buffer.
pub const BUFFER: usize = 4096;
/// Buffers each pool is built with (enough for the queue between the threads).
pub const POOLED: usize = 1024;
/// Capacity of the queue that carries buffers between the threads.
pub const IN_FLIGHT: usize = 256;

/// A buffer pool as the scenarios use it.
pub trait PoolContender: Sync {
    /// A held buffer; returned to the pool when dropped.
    type Guard<'a>: DerefMut<Target = [u8]> + Send
    where
        Self: 'a;
    /// Takes a buffer.
    fn get(&self) -> Self::Guard<'_>;
}

/// pinalloc's pool, with one class of [`BUFFER`]-byte buffers.
pub struct Pinalloc(pub LockFreeBufferPool);

impl Pinalloc {
    pub fn new() -> Self {
        let class = ClassConfig::new(BUFFER, 64).initial(POOLED as u32).max(POOLED as u32).thread_cache(32);
        let config = LockFreeBufferPoolConfig::new().class(BufferClass::Compression, class);
        Pinalloc(LockFreeBufferPool::with_config(config).expect("valid configuration"))
    }
}

impl Default for Pinalloc {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolContender for Pinalloc {
    type Guard<'a> = pinalloc::pool::BufferGuard<'a>;
    #[inline]
    fn get(&self) -> Self::Guard<'_> {
        self.0.get(BufferClass::Compression)
    }
}

/// A pool of boxed buffers on crossbeam's `ArrayQueue`.
pub struct ArrayQueuePool(ArrayQueue<Box<[u8]>>);

impl ArrayQueuePool {
    pub fn new() -> Self {
        let queue = ArrayQueue::new(POOLED);
        for _ in 0..POOLED {
            let _ = queue.push(vec![0u8; BUFFER].into_boxed_slice());
        }
        ArrayQueuePool(queue)
    }
}

impl Default for ArrayQueuePool {
    fn default() -> Self {
        Self::new()
    }
}

/// A buffer of [`ArrayQueuePool`]; pushed back on drop.
pub struct QueueGuard<'a> {
    pool: &'a ArrayQueuePool,
    buffer: Option<Box<[u8]>>,
}

impl std::ops::Deref for QueueGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buffer.as_deref().expect("present until drop")
    }
}

impl DerefMut for QueueGuard<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buffer.as_deref_mut().expect("present until drop")
    }
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let _ = self.pool.0.push(buffer);
        }
    }
}

impl PoolContender for ArrayQueuePool {
    type Guard<'a> = QueueGuard<'a>;
    #[inline]
    fn get(&self) -> QueueGuard<'_> {
        let buffer = self.0.pop().unwrap_or_else(|| vec![0u8; BUFFER].into_boxed_slice());
        QueueGuard { pool: self, buffer: Some(buffer) }
    }
}

/// lockfree-object-pool's `LinearObjectPool`.
pub struct LinearPool(lockfree_object_pool::LinearObjectPool<Vec<u8>>);

impl LinearPool {
    pub fn new() -> Self {
        let pool = lockfree_object_pool::LinearObjectPool::new(|| vec![0u8; BUFFER], |_| {});
        // Pre-fill: take and return as many as the scenarios hold at once.
        let held: Vec<_> = (0..POOLED).map(|_| pool.pull()).collect();
        drop(held);
        LinearPool(pool)
    }
}

impl Default for LinearPool {
    fn default() -> Self {
        Self::new()
    }
}

/// Adapts a guard that derefs to `Vec<u8>` into one that derefs to `[u8]`.
pub struct VecGuard<G>(G);

impl<G: DerefMut<Target = Vec<u8>>> std::ops::Deref for VecGuard<G> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<G: DerefMut<Target = Vec<u8>>> DerefMut for VecGuard<G> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl PoolContender for LinearPool {
    type Guard<'a> = VecGuard<lockfree_object_pool::LinearReusable<'a, Vec<u8>>>;
    #[inline]
    fn get(&self) -> Self::Guard<'_> {
        VecGuard(self.0.pull())
    }
}

/// opool's allocator of buffers.
pub struct BufferAllocator;

impl opool::PoolAllocator<Vec<u8>> for BufferAllocator {
    fn allocate(&self) -> Vec<u8> {
        vec![0u8; BUFFER]
    }
}

/// opool's concurrent `Pool`.
pub struct OPool(opool::Pool<BufferAllocator, Vec<u8>>);

impl OPool {
    pub fn new() -> Self {
        OPool(opool::Pool::new_prefilled(POOLED, BufferAllocator))
    }
}

impl Default for OPool {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolContender for OPool {
    type Guard<'a> = VecGuard<opool::RefGuard<'a, BufferAllocator, Vec<u8>>>;
    #[inline]
    fn get(&self) -> Self::Guard<'_> {
        VecGuard(self.0.get())
    }
}

/// No pool: a fresh `Vec` from the system allocator each time.
#[derive(Default)]
pub struct FreshVec;

/// A guard that owns its bytes (no pool to return them to): a fresh `Vec` for
/// [`FreshVec`], an inline array for [`Carried`].
pub struct Owned<B>(B);

impl<B: AsRef<[u8]>> std::ops::Deref for Owned<B> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> DerefMut for Owned<B> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_mut()
    }
}

impl PoolContender for FreshVec {
    type Guard<'a> = Owned<Vec<u8>>;
    #[inline]
    fn get(&self) -> Owned<Vec<u8>> {
        let mut v = Vec::with_capacity(BUFFER);
        // SAFETY: capacity is BUFFER; the bytes are only written before read (the scenarios
        // write the first byte and read only it), as a pool's recycled buffer would be.
        #[allow(clippy::uninit_vec)]
        unsafe {
            v.set_len(BUFFER)
        };
        Owned(v)
    }
}

/// No buffer: the bytes travel inside the guard, so nothing is taken, returned or shared
/// but the queue the scenario passes guards through.
#[derive(Default)]
pub struct Carried;

impl PoolContender for Carried {
    type Guard<'a> = Owned<[u8; 16]>;
    #[inline]
    fn get(&self) -> Owned<[u8; 16]> {
        Owned([0; 16])
    }
}

/// Every contender, by name, in table order.
pub const NAMES: [&str; 6] = ["pinalloc", "arrayqueue", "lockfree-object-pool", "opool", "vec", "carried"];

/// Runs `$body` with `$c` bound to a fresh contender called `$name`.
#[macro_export]
macro_rules! with_pool {
    ($name:expr, |$c:ident| $body:expr) => {{
        use $crate::pools::*;
        match $name {
            "pinalloc" => {
                let $c = Pinalloc::new();
                $body
            }
            "arrayqueue" => {
                let $c = ArrayQueuePool::new();
                $body
            }
            "lockfree-object-pool" => {
                let $c = LinearPool::new();
                $body
            }
            "opool" => {
                let $c = OPool::new();
                $body
            }
            "vec" => {
                let $c = FreshVec;
                $body
            }
            "carried" => {
                let $c = Carried;
                $body
            }
            other => panic!("no contender {other}"),
        }
    }};
}

/// Writes the buffer's first byte with a volatile store, so the work cannot be optimised
/// away. (`black_box` would clobber all memory whose address escaped, the guards' stack slots
/// included, and measure reloading them.)
#[inline(always)]
fn write_first(buffer: &mut [u8], value: u8) {
    // SAFETY: `buffer` is a valid, exclusive slice with at least one byte (4 KiB buffers).
    unsafe { std::ptr::write_volatile(&mut buffer[0], value) };
}

/// Nanoseconds per get+drop pair on one thread, over `pairs` pairs (after a warm-up).
pub fn get_drop_pair<P: PoolContender>(pool: &P, pairs: u64) -> f64 {
    let round = |n: u64| {
        let start = Instant::now();
        for i in 0..n {
            let mut buffer = pool.get();
            write_first(&mut buffer, i as u8);
        }
        start.elapsed()
    };
    round(pairs / 10 + 1);
    round(pairs).as_nanos() as f64 / pairs as f64
}

/// Pins the calling thread to `core` where the machine allows it (the scenario spins, so
/// two threads sharing a core would measure the scheduler).
fn pin(core: usize) {
    // Read once, before any thread is pinned: a pinned thread's children inherit its mask.
    static CORES: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    let cores = CORES.get_or_init(pinalloc::os::available_cores);
    if let Some(&core) = cores.get(core % cores.len().max(1)) {
        let _ = pinalloc::os::pin_current_thread_to_core(core);
    }
}

/// Nanoseconds per buffer when a producer thread takes buffers, writes a byte and passes
/// them through an `ArrayQueue` to a consumer thread that reads the byte and drops them.
/// The producer runs on core 0 and the consumer on core 1.
pub fn pass_between_threads<P: PoolContender>(pool: &P, buffers: u64) -> f64 {
    let queue: ArrayQueue<P::Guard<'_>> = ArrayQueue::new(IN_FLIGHT);
    pin(0);
    let elapsed: Duration = std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            pin(1);
            let mut seen = 0u64;
            while seen < buffers {
                match queue.pop() {
                    Some(buffer) => {
                        black_box(buffer[0]);
                        seen += 1;
                    }
                    None => std::hint::spin_loop(),
                }
            }
        });
        let start = Instant::now();
        for i in 0..buffers {
            let mut buffer = pool.get();
            write_first(&mut buffer, i as u8);
            let mut item = buffer;
            while let Err(back) = queue.push(item) {
                item = back;
                std::hint::spin_loop();
            }
        }
        consumer.join().expect("consumer");
        start.elapsed()
    });
    elapsed.as_nanos() as f64 / buffers as f64
}
