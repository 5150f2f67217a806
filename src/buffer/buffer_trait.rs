//! The `Buffer` trait: what a frame decoder needs from the memory it fills.
//!
//! A decoder (codec_sv2's, or the one in the [module docs](super#a-frame-decoder-over-the-trait))
//! works in two steps: it *fills* the buffer through [`Buffer::get_writable`] (header first,
//! then the payload whose length the header gave), and then *takes* the frame as an owned
//! value with [`Buffer::get_data_owned`], which it can send to another thread. The methods
//! and their meaning are buffer_sv2's, so code written against its trait ports by changing
//! the import.

use super::Slice;

/// Memory a frame is written into and then taken out of as an owned slice.
pub trait Buffer {
    /// What [`Buffer::get_data_owned`] returns: the frame's bytes, owned.
    type Slice: AsMut<[u8]> + AsRef<[u8]> + Into<Slice>;

    /// Extends the frame being written by `len` bytes and returns them to be filled. The
    /// bytes are initialised (to unspecified values if the memory is being reused).
    fn get_writable(&mut self, len: usize) -> &mut [u8];

    /// Takes the frame written so far (everything since the last call) as an owned slice;
    /// the buffer starts a new, empty frame.
    fn get_data_owned(&mut self) -> Self::Slice;

    /// The first `len` bytes of the frame being written (fewer if fewer were written).
    fn get_data_by_ref(&mut self, len: usize) -> &mut [u8];

    /// As [`Buffer::get_data_by_ref`], read-only.
    fn get_data_by_ref_(&self, len: usize) -> &[u8];

    /// Bytes written into the current frame.
    fn len(&self) -> usize;

    /// Makes `AsRef`/`AsMut` on the buffer skip the first `index` bytes of the frame (a
    /// header already parsed, say). "Danger": the offset is not checked until those views
    /// are taken, and it stays until set again.
    fn danger_set_start(&mut self, index: usize);

    /// Whether nothing has been written into the current frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no slice taken from this buffer is still alive: dropping the buffer then
    /// frees its memory at once. (Dropping it earlier is also fine here: see
    /// [`BufferPool`](super::BufferPool).)
    fn is_droppable(&self) -> bool;
}
