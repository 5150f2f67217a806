//! The stack head word: a 32-bit node index and a 32-bit tag in one `u64`, so that one
//! compare-and-swap checks both.

/// The index that means "no node": the end of a chain, or an empty stack.
pub(crate) const NIL: u32 = u32::MAX;

/// How much the tag advances on every successful push and pop. Building with
/// `--cfg pinalloc_untagged` sets it to zero, which re-creates the ABA bug on purpose:
/// the loom tests are expected to fail then (see `tests/loom_stack.rs`).
#[cfg(not(pinalloc_untagged))]
const TAG_STEP: u32 = 1;
#[cfg(pinalloc_untagged)]
const TAG_STEP: u32 = 0;

/// `(tag << 32) | !index`: the index is stored inverted so that the empty stack (index
/// [`NIL`], tag 0) is the word 0, and a static array of stacks is all zero bytes (`.bss`,
/// resident only where touched, instead of `.data`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tagged(u64);

impl core::fmt::Debug for Tagged {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tagged").field("index", &self.index()).field("tag", &self.tag()).finish()
    }
}

impl Tagged {
    /// The empty stack, tag 0: the word 0.
    pub(crate) const EMPTY: Tagged = Tagged::new(NIL, 0);

    pub(crate) const fn new(index: u32, tag: u32) -> Tagged {
        Tagged(((tag as u64) << 32) | !index as u64)
    }

    pub(crate) const fn from_bits(bits: u64) -> Tagged {
        Tagged(bits)
    }

    pub(crate) const fn bits(self) -> u64 {
        self.0
    }

    pub(crate) const fn index(self) -> u32 {
        !(self.0 as u32)
    }

    pub(crate) const fn tag(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The head that replaces this one when `index` becomes the top: a fresh tag, so a
    /// compare-and-swap that still expects `self` fails even if `index` equals our index.
    pub(crate) const fn successor(self, index: u32) -> Tagged {
        Tagged::new(index, self.tag().wrapping_add(TAG_STEP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_index_and_tag() {
        let t = Tagged::new(7, 9);
        assert_eq!((t.index(), t.tag()), (7, 9));
        assert_eq!(Tagged::from_bits(t.bits()), t);
        assert_eq!(Tagged::EMPTY.index(), NIL);
        assert_eq!(Tagged::EMPTY.bits(), 0, "an empty stack is zero bytes");
        let wrapped = Tagged::new(1, u32::MAX).successor(2);
        assert_eq!(wrapped.index(), 2);
        #[cfg(not(pinalloc_untagged))]
        assert_eq!(wrapped.tag(), 0);
    }
}
