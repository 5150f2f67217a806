//! Segment names: validated once, kept as the POSIX form `/name`.

use super::ShmError;

/// Longest name accepted (without the leading slash); `NAME_MAX` is 255.
pub const MAX_NAME_LEN: usize = 200;

/// A validated segment name, stored as `/name` (no heap: a region's drop needs it).
#[derive(Clone, Copy)]
pub(crate) struct SegmentName {
    bytes: [u8; MAX_NAME_LEN + 1],
    len: usize,
}

impl SegmentName {
    /// Accepts 1 to [`MAX_NAME_LEN`] characters from `A–Z a–z 0–9 . _ -` (no `/`: POSIX
    /// leaves names with inner slashes implementation-defined), not `.` or `..`.
    pub(crate) fn new(name: &str) -> Result<Self, ShmError> {
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > MAX_NAME_LEN {
            Some("longer than 200 bytes")
        } else if name.contains('/') {
            Some("contains '/'")
        } else if name == "." || name == ".." {
            Some("'.' and '..' are not names")
        } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            Some("only A-Z a-z 0-9 . _ - are allowed")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ShmError::InvalidName { reason });
        }
        let mut bytes = [0u8; MAX_NAME_LEN + 1];
        bytes[0] = b'/';
        bytes[1..=name.len()].copy_from_slice(name.as_bytes());
        Ok(SegmentName { bytes, len: name.len() + 1 })
    }

    /// `/name`, as the OS layer takes it.
    pub(crate) fn posix(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The name as given.
    pub(crate) fn as_str(&self) -> &str {
        // Validated ASCII on construction.
        core::str::from_utf8(&self.bytes[1..self.len]).unwrap_or("")
    }
}

impl core::fmt::Debug for SegmentName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
