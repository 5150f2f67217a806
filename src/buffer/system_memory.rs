//! `BufferFromSystemMemory`: a frame in a growing `Vec<u8>`, handed over whole.
//!
//! The simple [`Buffer`]: each frame is a fresh vector from the global allocator, and taking
//! it moves the vector out. It is what [`BufferPool`](super::BufferPool) is measured
//! against, and what a program uses where allocation cost does not matter.

use alloc::vec::Vec;

use super::{Buffer, Write, WriteError};

/// A [`Buffer`] whose frames are `Vec<u8>`s.
#[derive(Debug, Default)]
pub struct BufferFromSystemMemory {
    /// The frame being written; its length is the number of bytes written.
    frame: Vec<u8>,
    /// `danger_set_start`'s offset for `AsRef`/`AsMut`.
    start: usize,
}

impl BufferFromSystemMemory {
    /// An empty buffer. The argument is ignored (it is there for buffer_sv2's signature);
    /// use [`BufferFromSystemMemory::with_capacity`] to size the first frame.
    pub fn new(_capacity: usize) -> Self {
        Self::default()
    }

    /// An empty buffer whose first frame has room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { frame: Vec::with_capacity(capacity), start: 0 }
    }
}

impl Buffer for BufferFromSystemMemory {
    type Slice = Vec<u8>;

    #[inline]
    fn get_writable(&mut self, len: usize) -> &mut [u8] {
        let old = self.frame.len();
        self.frame.resize(old + len, 0);
        &mut self.frame[old..]
    }

    #[inline]
    fn get_data_owned(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.frame)
    }

    #[inline]
    fn get_data_by_ref(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(self.frame.len());
        &mut self.frame[..len]
    }

    #[inline]
    fn get_data_by_ref_(&self, len: usize) -> &[u8] {
        &self.frame[..len.min(self.frame.len())]
    }

    #[inline]
    fn len(&self) -> usize {
        self.frame.len()
    }

    fn danger_set_start(&mut self, index: usize) {
        self.start = index;
    }

    #[inline]
    fn is_droppable(&self) -> bool {
        true
    }
}

impl AsRef<[u8]> for BufferFromSystemMemory {
    fn as_ref(&self) -> &[u8] {
        &self.frame[self.start..]
    }
}

impl AsMut<[u8]> for BufferFromSystemMemory {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.frame[self.start..]
    }
}

impl Write for BufferFromSystemMemory {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        self.frame.extend_from_slice(buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> Result<(), WriteError> {
        self.frame.extend_from_slice(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_whole_and_the_next_starts_empty() {
        let mut buffer = BufferFromSystemMemory::new(0);
        buffer.get_writable(3).copy_from_slice(b"abc");
        buffer.get_writable(2).copy_from_slice(b"de");
        assert_eq!(buffer.len(), 5);
        assert_eq!(buffer.get_data_by_ref(2), b"ab");
        assert_eq!(buffer.get_data_by_ref_(99), b"abcde");
        buffer.danger_set_start(1);
        assert_eq!(buffer.as_ref(), b"bcde");
        assert_eq!(buffer.get_data_owned(), b"abcde");
        assert!(buffer.is_empty() && buffer.is_droppable());
        buffer.write_all(b"xy").unwrap();
        assert_eq!(buffer.get_data_owned(), b"xy");
    }
}
