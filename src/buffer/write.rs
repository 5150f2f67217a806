//! `Write`: the part of `std::io::Write` a frame encoder needs, usable without `std`.
//!
//! Same shape as buffer_sv2's trait, so encoders written against it port by changing an
//! import. Implemented for `Vec<u8>` (appends), `&mut [u8]` (fills and advances, like
//! `std::io::Write for &mut [u8]`), and the crate's two [`Buffer`](super::Buffer)s (append to
//! the frame being written).

use alloc::vec::Vec;
use core::fmt;

/// Why a write did not take all its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The destination is full: fewer bytes than asked for could be written.
    WriteZero,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::WriteZero => {
                f.write_str("the destination is full: the write could not take every byte")
            }
        }
    }
}

impl core::error::Error for WriteError {}

/// A byte sink.
pub trait Write {
    /// Writes as many bytes of `buf` as fit; returns how many.
    fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError>;

    /// Writes all of `buf`, or fails with [`WriteError::WriteZero`] if it does not fit (the
    /// bytes that fitted stay written, as with `std::io::Write::write_all`).
    fn write_all(&mut self, buf: &[u8]) -> Result<(), WriteError>;
}

impl Write for Vec<u8> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> Result<usize, WriteError> {
        self.extend_from_slice(buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> Result<(), WriteError> {
        self.extend_from_slice(buf);
        Ok(())
    }
}

impl Write for &mut [u8] {
    #[inline]
    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        let taken = data.len().min(self.len());
        let (head, tail) = core::mem::take(self).split_at_mut(taken);
        head.copy_from_slice(&data[..taken]);
        *self = tail;
        Ok(taken)
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if self.write(data)? == data.len() { Ok(()) } else { Err(WriteError::WriteZero) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn slice_writer_fills_then_reports_write_zero() {
        let mut storage = [0u8; 5];
        let mut sink: &mut [u8] = &mut storage;
        assert_eq!(sink.write(&[1, 2, 3]), Ok(3));
        assert_eq!(sink.write_all(&[4, 5, 6]), Err(WriteError::WriteZero));
        assert!(sink.is_empty());
        assert_eq!(storage, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn vec_writer_appends_and_the_error_explains_itself() {
        let mut v = alloc::vec![9u8];
        v.write_all(&[1, 2]).unwrap();
        assert_eq!(v.write(&[3]), Ok(1));
        assert_eq!(v, [9, 1, 2, 3]);
        assert!(WriteError::WriteZero.to_string().contains("full"));
    }
}
