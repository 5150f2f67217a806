//! [`CircularBuffer`]: a lock-free FIFO of fixed-size nodes in shared memory, for any number
//! of writer and reader processes (or threads).
//!
//! The segment holds a [`RingControl`] (cursors, wait queues, counters), one [`Slot`] per
//! node, then the nodes' bytes, each on its own 64-byte-aligned stride:
//!
//! ```text
//! header | write cursor | read cursor | readable | writable | flags, counters | slot 0 .. slot N-1 | node 0 .. node N-1
//! ```
//!
//! [`protocol`] decides who owns which node; this module blocks (spin, then futex sleep in
//! slices, see [`wait`](super::wait)), copies, and turns what the protocol finds into
//! errors. Nothing it reads from the segment is trusted: lengths are checked against the
//! node size before any byte is touched, and node addresses are computed from this
//! process's own copy of the geometry.

pub(crate) mod protocol;

use super::segment::{Layout, Segment, ShmOptions};
use super::wait::{EventCount, wait_until};
use super::{Kind, ShmError};
use crate::os;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use core::mem::size_of;
use protocol::{Cursor, ReadAttempt, Recovered, Ring, Slot, SlotState, WriteAttempt};
use std::time::Duration;

/// Most nodes a ring may have.
pub const MAX_NODES: usize = 1 << 20;
/// Largest node size.
pub const MAX_NODE_SIZE: usize = 1 << 30;
/// How long a blocked call spins before it sleeps, unless changed with
/// [`CircularBuffer::set_spin`].
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// An [`EventCount`] on its own cache line.
#[repr(C, align(64))]
struct PaddedEvent(EventCount);

/// The ring's shared control block; all-zero is an empty, running ring.
#[repr(C)]
struct RingControl {
    write: Cursor,
    read: Cursor,
    /// Notified when a node is published (readers sleep here).
    readable: PaddedEvent,
    /// Notified when a node is released (writers sleep here).
    writable: PaddedEvent,
    /// Non-zero once [`CircularBuffer::shutdown`] was called.
    shutdown: AtomicU32,
    /// Messages whose writer died or gave up before publishing (each reported to a reader).
    lost_writes: AtomicU64,
    /// Nodes freed from a reader that died while consuming them.
    lost_reads: AtomicU64,
}

/// What has gone through a ring, from its shared counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Positions claimed by writers so far.
    pub written: u64,
    /// Positions claimed by readers so far.
    pub read: u64,
    /// Messages lost because their writer died or gave up before publishing.
    pub lost_writes: u64,
    /// Nodes recovered from readers that died while consuming them.
    pub lost_reads: u64,
}

/// A FIFO ring of `nodes` nodes of `node_size` bytes in one shared segment: the seed's
/// `SharedMemory.CircularBuffer`, for Linux, robust against dead peers and hostile bytes.
///
/// * **Any number of writers and readers**, in any processes; each message goes to exactly
///   one reader, and messages come out in the order their writers claimed nodes, even when
///   writers finish out of order (a slow writer delays the readers behind it; nothing is
///   skipped or lost).
/// * **Zero-copy** [`write_with`](Self::write_with) / [`read_with`](Self::read_with) lend the
///   node itself to a closure; [`write`](Self::write) / [`read`](Self::read) copy.
/// * **Blocking with timeouts**: a full or empty ring spins briefly, then sleeps on a futex in
///   the segment; running out of time is [`ShmError::Timeout`] (never a zero-length read).
///   [`shutdown`](Self::shutdown) wakes everyone: writers fail at once, readers drain what is
///   published and then fail with [`ShmError::Shutdown`].
/// * **Robust**: a process killed while it holds a node does not stall the ring. A waiter that
///   finds the node held by a process that no longer exists recovers it; a message lost that
///   way comes out as [`ShmError::MessageLost`] in its place. A dead process's pid must not
///   have been reused yet, and a killed child counts as alive until its parent reaps it.
///
/// The handle is `Send + Sync`: threads can share one handle or each open their own.
#[derive(Debug)]
pub struct CircularBuffer {
    segment: Segment,
    nodes: usize,
    node_size: usize,
    stride: usize,
    spin: Duration,
}

fn geometry(nodes: usize, node_size: usize) -> Result<(Layout, usize), ShmError> {
    if !(2..=MAX_NODES).contains(&nodes) {
        return Err(ShmError::InvalidParameter { what: "a ring needs 2 to 2^20 nodes" });
    }
    if !(1..=MAX_NODE_SIZE).contains(&node_size) {
        return Err(ShmError::InvalidParameter { what: "a node holds 1 byte to 1 GiB" });
    }
    let stride = node_size.next_multiple_of(64);
    let too_big = ShmError::InvalidParameter { what: "the ring would not fit in the address space" };
    let control = size_of::<Slot>().checked_mul(nodes).and_then(|s| s.checked_add(size_of::<RingControl>()));
    let data = stride.checked_mul(nodes);
    let (Some(control), Some(data)) = (control, data) else { return Err(too_big) };
    let layout = Layout::new(Kind::Ring, [nodes as u64, node_size as u64], control, 4096, data)?;
    Ok((layout, stride))
}

impl CircularBuffer {
    /// Creates the ring `name` of `nodes` (2 to [`MAX_NODES`]) nodes of `node_size` bytes,
    /// its pages faulted in ([`ShmOptions::populate`]): every node is used in turn, and on
    /// the first lap each 4 KiB page would otherwise cost a fault of a few microseconds on
    /// the writer's and the reader's hot path.
    pub fn create(name: &str, nodes: usize, node_size: usize) -> Result<Self, ShmError> {
        Self::create_with(name, nodes, node_size, ShmOptions::new().populate(true))
    }

    /// [`create`](Self::create) with options as given (huge pages suit large nodes).
    pub fn create_with(
        name: &str,
        nodes: usize,
        node_size: usize,
        options: ShmOptions,
    ) -> Result<Self, ShmError> {
        let (layout, stride) = geometry(nodes, node_size)?;
        let segment = Segment::create(Some(name), layout, options, |_| {})?;
        Ok(CircularBuffer { segment, nodes, node_size, stride, spin: DEFAULT_SPIN })
    }

    /// A ring with no name: for threads of one process (and children it forks).
    pub fn anonymous(nodes: usize, node_size: usize) -> Result<Self, ShmError> {
        let (layout, stride) = geometry(nodes, node_size)?;
        let segment = Segment::create(None, layout, ShmOptions::new().populate(true), |_| {})?;
        Ok(CircularBuffer { segment, nodes, node_size, stride, spin: DEFAULT_SPIN })
    }

    /// Opens the ring `name`, learning its geometry from the header, and faults its pages in
    /// for this process (as [`create`](Self::create) does for the creator's).
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let segment = Segment::open(name, Kind::Ring, |[nodes, node_size], data_len| {
            let (nodes, node_size) = (usize::try_from(nodes), usize::try_from(node_size));
            let (Ok(nodes), Ok(node_size)) = (nodes, node_size) else {
                return Err(ShmError::Corrupt { what: "ring geometry" });
            };
            let (layout, _) =
                geometry(nodes, node_size).map_err(|_| ShmError::Corrupt { what: "ring geometry" })?;
            if layout.data_len != data_len {
                return Err(ShmError::Corrupt { what: "ring data length" });
            }
            Ok(layout)
        })?;
        segment.populate()?;
        let [nodes, node_size] = segment.layout().params.map(|p| p as usize);
        Ok(CircularBuffer {
            segment,
            nodes,
            node_size,
            stride: node_size.next_multiple_of(64),
            spin: DEFAULT_SPIN,
        })
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The size of a node: the longest message.
    pub fn node_size(&self) -> usize {
        self.node_size
    }

    /// The name, or `None` if anonymous.
    pub fn name(&self) -> Option<&str> {
        self.segment.name()
    }

    /// Whether dropping this handle leaves the name in place.
    pub fn set_persist(&mut self, persist: bool) {
        self.segment.set_persist(persist)
    }

    /// How long this handle's blocked calls spin before sleeping ([`DEFAULT_SPIN`]). Longer
    /// spins trade a core for latency: a reader that spins through the gap between messages
    /// never pays a futex wake-up. Past its first microseconds a spin yields the core between
    /// looks, so a spinner does not starve a peer scheduled on the same core.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    fn control(&self) -> &RingControl {
        // SAFETY: the layout reserved a RingControl at the control offset (aligned: the offset
        // is 64 and the mapping page-aligned), zero-initialised at creation (a valid, empty
        // ring: every field is an atomic or padding); it lives as long as the mapping.
        unsafe { &*self.segment.control().cast::<RingControl>() }
    }

    fn ring(&self) -> Ring<'_> {
        let control = self.control();
        // SAFETY: the layout put `nodes` Slots right after the RingControl (its size is a
        // multiple of 64, Slot's alignment); they were zeroed at creation (free, lap 0) and
        // live as long as the mapping.
        let slots = unsafe {
            core::slice::from_raw_parts(
                self.segment.control().add(size_of::<RingControl>()).cast::<Slot>(),
                self.nodes,
            )
        };
        Ring { write: &control.write, read: &control.read, slots }
    }

    fn node(&self, position: u64) -> *mut u8 {
        let index = (position % self.nodes as u64) as usize;
        // SAFETY: index < nodes, and the data holds `nodes` strides (the layout).
        unsafe { self.segment.data().add(index * self.stride) }
    }

    /// Recovers node `index` from a dead owner; counts and announces what it freed.
    fn recover(&self, ring: &Ring<'_>, index: usize, seen: SlotState) {
        let control = self.control();
        match ring.recover(index, seen, os::process_alive) {
            Some(Recovered::Writer) => {
                control.lost_writes.fetch_add(1, Ordering::Relaxed);
                control.readable.0.notify();
            }
            Some(Recovered::Reader) => {
                control.lost_reads.fetch_add(1, Ordering::Relaxed);
                control.writable.0.notify();
            }
            None => {}
        }
    }

    fn claim_write(&self, me: u32, timeout: Duration) -> Result<u64, ShmError> {
        let ring = self.ring();
        wait_until(&self.control().writable.0, self.spin, timeout, |check_owners| {
            if self.is_shutdown() {
                return Some(Err(ShmError::Shutdown));
            }
            match ring.try_claim_write(me) {
                WriteAttempt::Claimed(position) => Some(Ok(position)),
                WriteAttempt::Full(index, seen) => {
                    if check_owners {
                        self.recover(&ring, index, seen);
                    }
                    None
                }
            }
        })
    }

    fn claim_read(&self, me: u32, timeout: Duration) -> Result<(u64, bool), ShmError> {
        let ring = self.ring();
        wait_until(&self.control().readable.0, self.spin, timeout, |check_owners| {
            match ring.try_claim_read(me) {
                ReadAttempt::Claimed { position, lost } => Some(Ok((position, lost))),
                ReadAttempt::Empty(index, seen) => {
                    if check_owners {
                        self.recover(&ring, index, seen);
                    }
                    self.is_shutdown().then_some(Err(ShmError::Shutdown))
                }
            }
        })
    }

    /// Claims a node, lets `fill` write the message into it and return its length, and
    /// publishes it. Waits at most `timeout` for a free node (`Duration::MAX`: no limit).
    ///
    /// If `fill` returns more than [`node_size`](Self::node_size), or panics, the position is
    /// published as lost (its reader gets [`ShmError::MessageLost`]) and this returns
    /// [`ShmError::MessageTooLarge`] (or resumes the panic).
    pub fn write_with(
        &self,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, ShmError> {
        let me = os::process_id();
        let position = self.claim_write(me, timeout)?;
        let claim = WriteClaim { ring: self, position, me, done: false };
        // SAFETY: the node of a position we claimed is ours alone until we publish it (the
        // protocol: no other writer can claim it, no reader before the publish); it is
        // `node_size` mapped bytes inside the data.
        let node = unsafe { core::slice::from_raw_parts_mut(self.node(position), self.node_size) };
        let len = fill(node);
        if len > self.node_size {
            drop(claim);
            return Err(ShmError::MessageTooLarge { len: len as u64, capacity: self.node_size as u64 });
        }
        claim.publish(len as u32)?;
        Ok(len)
    }

    /// Copies `message` into a node and publishes it; waits at most `timeout` for a node.
    pub fn write(&self, message: &[u8], timeout: Duration) -> Result<(), ShmError> {
        if message.len() > self.node_size {
            return Err(ShmError::MessageTooLarge {
                len: message.len() as u64,
                capacity: self.node_size as u64,
            });
        }
        self.write_with(timeout, |node| {
            node[..message.len()].copy_from_slice(message);
            message.len()
        })
        .map(|_| ())
    }

    /// Claims the oldest message, lends it to `consume` and releases its node. Waits at most
    /// `timeout` for one. Fails with [`ShmError::MessageLost`] for a message whose writer died,
    /// [`ShmError::Corrupt`] for a length beyond the node (the node is released either way),
    /// and [`ShmError::Shutdown`] once the ring is shut down and empty.
    pub fn read_with<R>(&self, timeout: Duration, consume: impl FnOnce(&[u8]) -> R) -> Result<R, ShmError> {
        let me = os::process_id();
        let (position, lost) = self.claim_read(me, timeout)?;
        let claim = ReadClaim { ring: self, position, me };
        if lost {
            return Err(ShmError::MessageLost { position });
        }
        let len = self.ring().len(position) as usize;
        if len > self.node_size {
            return Err(ShmError::Corrupt { what: "message length beyond its node" });
        }
        // SAFETY: the node of a position we claimed for reading is ours until we release it
        // (no writer can claim it before); `len` bytes of it are in bounds (checked).
        let message = unsafe { core::slice::from_raw_parts(self.node(position), len) };
        let result = consume(message);
        drop(claim);
        Ok(result)
    }

    /// Copies the oldest message into `dst` and returns its length. A message longer than
    /// `dst` is consumed and reported as [`ShmError::BufferTooSmall`].
    pub fn read(&self, dst: &mut [u8], timeout: Duration) -> Result<usize, ShmError> {
        self.read_with(timeout, |message| {
            let len = message.len();
            if len > dst.len() {
                return Err(ShmError::BufferTooSmall { len: len as u64, capacity: dst.len() as u64 });
            }
            dst[..len].copy_from_slice(message);
            Ok(len)
        })?
    }

    /// Shuts the ring down for every process: writers fail with [`ShmError::Shutdown`] from
    /// now on, readers once the published messages are drained; every sleeper wakes.
    pub fn shutdown(&self) {
        let control = self.control();
        // Release: partner of the Acquire in `is_shutdown`.
        control.shutdown.store(1, Ordering::Release);
        control.readable.0.notify();
        control.writable.0.notify();
    }

    /// Whether [`shutdown`](Self::shutdown) was called (by any process).
    pub fn is_shutdown(&self) -> bool {
        // Acquire: partner of the Release in `shutdown`.
        self.control().shutdown.load(Ordering::Acquire) != 0
    }

    /// The shared counters.
    pub fn stats(&self) -> RingStats {
        let control = self.control();
        RingStats {
            written: control.write.position(),
            read: control.read.position(),
            lost_writes: control.lost_writes.load(Ordering::Relaxed),
            lost_reads: control.lost_reads.load(Ordering::Relaxed),
        }
    }
}

/// A claimed write position; abandoned (published as lost) if dropped unpublished.
struct WriteClaim<'a> {
    ring: &'a CircularBuffer,
    position: u64,
    me: u32,
    done: bool,
}

impl WriteClaim<'_> {
    fn publish(mut self, len: u32) -> Result<(), ShmError> {
        self.done = true;
        let published = self.ring.ring().publish(self.position, self.me, len);
        self.ring.control().readable.0.notify();
        if published {
            Ok(())
        } else {
            Err(ShmError::Corrupt { what: "a peer took over a node this writer held" })
        }
    }
}

impl Drop for WriteClaim<'_> {
    fn drop(&mut self) {
        if !self.done {
            let control = self.ring.control();
            self.ring.ring().abandon(self.position, self.me);
            control.lost_writes.fetch_add(1, Ordering::Relaxed);
            control.readable.0.notify();
        }
    }
}

/// A claimed read position; released on drop (also when the consumer panics).
struct ReadClaim<'a> {
    ring: &'a CircularBuffer,
    position: u64,
    me: u32,
}

impl Drop for ReadClaim<'_> {
    fn drop(&mut self) {
        self.ring.ring().release(self.position, self.me);
        self.ring.control().writable.0.notify();
    }
}
