//! Frame buffers for protocol codecs: Stratum V2's `buffer_sv2`, sound and faster.
//!
//! A decoder fills a [`Buffer`] (header, then payload) and takes each frame out as an owned
//! [`Slice`] it can send to another thread. Two buffers implement the trait:
//!
//! * [`BufferFromSystemMemory`]: each frame is a fresh `Vec<u8>`.
//! * [`BufferPool`]: frames are written into one preallocated region and taken as slices
//!   that point into it; dropping a slice, on any thread, gives its *slot* back. A pool has
//!   8 slots by default (buffer_sv2's count) and up to 64 ([`BufferPool::with_slots`]).
//!
//! The module needs only `core` and `alloc` (the crate builds with `--no-default-features`).
//! The trait and its methods are buffer_sv2 3.0.1's, so a codec written against it ports by
//! changing an import.
//!
//! # Modes
//! The pool writes frames in one of three modes ([`PoolMode`]), chosen by the pool:
//!
//! * **Back**: after the newest slot, towards the end of the region.
//! * **Front**: from the start of the region, up to the oldest live slot of the back.
//! * **Alloc**: on the heap, when there is no room or every slot is out. The heap is
//!   [`PinAlloc`](crate::PinAlloc) (the global allocator without `std`). The pool goes back
//!   to its region at the next frame that fits. Alloc mode's frames are written into *spill
//!   buffers* the pool keeps and reuses once their slices drop ([`Slice::is_spilled`]), so
//!   running out of slots costs no allocation or zero fill per frame; up to `64 - slots`
//!   of them, holding at most the pool's capacity together. Past that a frame is a vector
//!   of its own.
//!
//! The region only gives bytes back from the ends of its two zones (see
//! `slot_map`), as in the seed. The seed's three diagrams hold, one character per slot, a
//! digit per frame, `-` for a free slot:
//!
//! ```text
//! Case 1: exhaustion          Case 2: reset               Case 3: back, front, back
//! 12345678 BACK (full)        12345678 BACK (full)        12345678 BACK (full)
//! 12345678 ALLOC              -------- (all dropped)      --345678 (1, 2 dropped)
//! 12345678 ALLOC              9------- BACK               -9345678 FRONT
//!                             9a------ BACK               a9345678 FRONT (full)
//!                                                         a93456-- (7, 8 dropped)
//!                                                         a93456b- BACK
//!                                                         a93456bc BACK (full)
//! ```
//!
//! # Ownership across threads
//! Which slots are out is the pool's private bookkeeping; the one atomic word it shares
//! with its slices records releases. Taking a frame costs no atomic operation, a release
//! one `fetch_xor` (Release), and the pool takes every released slot back with one `swap`
//! (Acquire) when it runs short. The pool's storage outlives the pool while slices live:
//! dropping the pool never waits, and the last slice out frees the storage. No `&mut` is
//! ever formed over bytes a live slice owns: the pool reaches its storage through raw
//! pointers and hands out only the frame being written. The protocol is in `ownership`,
//! model-checked with loom.
//!
//! # Differences from buffer_sv2 3.0.1
//! Fixed: `Slice` is not `Clone` (two clones freed one slot twice); `Slice::len` is right for
//! pool-backed slices (it returned 0); the orderings are Release/Acquire (all were Relaxed, a
//! data race miri reports); the mode is private (a public field could be set stale and
//! overlap slices); dropping the pool while slices live does not spin forever; the write
//! path never reborrows the whole region (a Stacked Borrows violation); up to 64 slots.
//! Also: `get_data_by_ref(len)` returns at most `len` bytes for both buffers (the pool
//! returned the whole frame); `BufferPool` and `BufferFromSystemMemory` implement [`Write`];
//! there is no `AeadBuffer` impl (this crate does not depend on `aes-gcm`).
//!
//! # A frame decoder over the trait
//! Stratum V2 frames start with a 6-byte header: extension type (`u16`), message type
//! (`u8`) and payload length (`u24`), little endian. A decoder fills the header, reads the
//! length, fills the payload and takes the frame. Written against [`Buffer`], it runs on
//! either buffer:
//!
//! ```
//! use pinalloc::buffer::{Buffer, BufferFromSystemMemory, BufferPool};
//!
//! const HEADER: usize = 6;
//!
//! /// A decoded frame: the header's fields and the whole frame's bytes.
//! struct Frame<S> {
//!     extension_type: u16,
//!     message_type: u8,
//!     bytes: S,
//! }
//!
//! impl<S: AsRef<[u8]>> Frame<S> {
//!     fn payload(&self) -> &[u8] {
//!         &self.bytes.as_ref()[HEADER..]
//!     }
//! }
//!
//! struct Decoder<B: Buffer> {
//!     buffer: B,
//! }
//!
//! impl<B: Buffer> Decoder<B> {
//!     /// Bytes still needed for the frame being read: the header, then its payload.
//!     fn missing(&self) -> usize {
//!         let have = self.buffer.len();
//!         if have < HEADER {
//!             return HEADER - have;
//!         }
//!         let h = self.buffer.get_data_by_ref_(HEADER);
//!         let payload = u32::from_le_bytes([h[3], h[4], h[5], 0]) as usize;
//!         HEADER + payload - have
//!     }
//!
//!     /// Consumes bytes from `input` (as a socket read delivers them), returning each
//!     /// complete frame.
//!     fn feed(&mut self, mut input: &[u8], frames: &mut Vec<Frame<B::Slice>>) {
//!         while !input.is_empty() {
//!             let take = self.missing().min(input.len());
//!             self.buffer.get_writable(take).copy_from_slice(&input[..take]);
//!             input = &input[take..];
//!             if self.buffer.len() >= HEADER && self.missing() == 0 {
//!                 let h = self.buffer.get_data_by_ref_(HEADER);
//!                 let (extension_type, message_type) = (u16::from_le_bytes([h[0], h[1]]), h[2]);
//!                 let bytes = self.buffer.get_data_owned();
//!                 frames.push(Frame { extension_type, message_type, bytes });
//!             }
//!         }
//!     }
//! }
//!
//! fn encode(extension_type: u16, message_type: u8, payload: &[u8]) -> Vec<u8> {
//!     let mut frame = extension_type.to_le_bytes().to_vec();
//!     frame.push(message_type);
//!     frame.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
//!     frame.extend_from_slice(payload);
//!     frame
//! }
//!
//! // Three frames, delivered in 5-byte reads that cut through headers and payloads.
//! let wire: Vec<u8> = [encode(0, 0x1e, b"setup"), encode(0x8000, 0x20, &[7; 300]), encode(1, 2, b"")]
//!     .concat();
//! fn decode_all<B: Buffer>(buffer: B, wire: &[u8]) -> Vec<Frame<B::Slice>> {
//!     let mut decoder = Decoder { buffer };
//!     let mut frames = Vec::new();
//!     for read in wire.chunks(5) {
//!         decoder.feed(read, &mut frames);
//!     }
//!     frames
//! }
//! for frames in [decode_all(BufferPool::new(1 << 16), &wire).into_iter().map(|f| (f.extension_type, f.message_type, f.payload().to_vec())).collect::<Vec<_>>(),
//!                decode_all(BufferFromSystemMemory::new(0), &wire).into_iter().map(|f| (f.extension_type, f.message_type, f.payload().to_vec())).collect()] {
//!     assert_eq!(frames.len(), 3);
//!     assert_eq!(frames[0], (0, 0x1e, b"setup".to_vec()));
//!     assert_eq!(frames[1], (0x8000, 0x20, vec![7; 300]));
//!     assert_eq!(frames[2], (1, 2, vec![]));
//! }
//! ```
//!
//! # Features
//! * `debug`: the pool checks its slot bookkeeping after every slow path and every taken
//!   frame, and checks that the pool takes back only slots it gave out; a broken invariant
//!   found when a frame is taken panics with the pool's state, one found in the slow path of
//!   `get_writable` (which cannot unwind) prints it and aborts.
//! * `fuzz`: nothing extra for the pool: the fuzz targets in `fuzz/` drive the public API
//!   and the hidden `BufferPool::check_invariants`, which tests use too.

mod buffer_trait;
mod error;
mod ownership;
mod pool;
mod slice;
mod slot_map;
mod spill;
mod storage;
mod system_memory;
mod write;

pub use buffer_trait::Buffer;
pub use error::PoolError;
pub use pool::{BufferPool, DEFAULT_SLOTS, SlotDiagram};
pub use slice::Slice;
pub use slot_map::{MAX_SLOTS, PoolMode, SlotState};
pub use system_memory::BufferFromSystemMemory;
pub use write::{Write, WriteError};
