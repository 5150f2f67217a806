//! Size classes: which block size serves a request, in a few instructions.
//!
//! Blocks of 16 B to 128 B come in steps of 16; above that, four classes per doubling
//! (…, 160, 192, 224, 256, 320, …) up to [`MAX_SMALL`] = 32 KiB, so a request wastes at most
//! a quarter of its block (an eighth on average) to rounding. Every power of two is a class,
//! which is how over-aligned requests are served: a block of size 2^k sits at an offset that
//! is a multiple of 2^k inside a span aligned to a 64 KiB page.
//!
//! The class of a request depends only on its `Layout`, so `dealloc`, which receives the
//! same layout, recomputes it instead of looking the block up.

/// The largest block served by size classes; larger requests are mapped directly.
pub const MAX_SMALL: usize = 32 << 10;

/// Number of classes.
pub const CLASSES: usize = 40;

/// Block size of each class.
pub const BLOCK_SIZE: [u32; CLASSES] = block_sizes();

const fn block_sizes() -> [u32; CLASSES] {
    let mut sizes = [0u32; CLASSES];
    let mut i = 0;
    // 16 .. 128 in steps of 16.
    while i < 8 {
        sizes[i] = 16 * (i as u32 + 1);
        i += 1;
    }
    // Then four per doubling: 128 * (1 + q/4) * 2^d for q = 1..=4.
    let mut base = 128u32;
    while i < CLASSES {
        let q = ((i - 8) % 4) as u32 + 1;
        sizes[i] = base + base / 4 * q;
        if q == 4 {
            base *= 2;
        }
        i += 1;
    }
    sizes
}

/// Class of every size up to 1024 in steps of 16: `SMALL_LOOKUP[(size + 15) / 16]`. A
/// `const`, not a `static`, so the crate that inlines the fast path (the one holding the
/// `#[global_allocator]`) gets its own copy and reaches it without a GOT load.
const SMALL_LOOKUP: [u8; 65] = small_lookup();

const fn small_lookup() -> [u8; 65] {
    let mut table = [0u8; 65];
    let mut slot = 0;
    let mut class = 0;
    while slot < 65 {
        let size = (slot as u32) * 16;
        while BLOCK_SIZE[class] < size {
            class += 1;
        }
        table[slot] = class as u8;
        slot += 1;
    }
    table
}

/// Entries of tables indexed by [`small_slot`].
pub(crate) const SMALL_SLOTS: usize = SMALL_LOOKUP.len();

/// The index of a request of at most 1024 bytes with an alignment of at most 16 (the fast
/// paths' case) in tables by size, [`SMALL_SLOTS`] long: `(size + 15) / 16`.
#[inline(always)]
pub(crate) fn small_slot(size: usize, align: usize) -> Option<usize> {
    if size <= 1024 && align <= 16 { Some((size + 15) >> 4) } else { None }
}

/// The class of the requests at [`small_slot`] `slot`.
pub(crate) const fn class_at_slot(slot: usize) -> usize {
    SMALL_LOOKUP[slot] as usize
}

/// The class of a size of at most 1024 bytes with an alignment of at most 16: the fast
/// paths' case, one table load.
#[inline(always)]
pub fn small_class(size: usize, align: usize) -> Option<usize> {
    small_slot(size, align).map(class_at_slot)
}

/// The class serving `size` bytes aligned to `align` (a power of two), or `None` if the
/// request is too large (or too aligned) for size classes.
#[inline(always)]
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    if align <= 16 {
        if size <= 1024 {
            return Some(SMALL_LOOKUP[(size + 15) >> 4] as usize);
        }
        return medium_class(size);
    }
    aligned_class(size, align)
}

/// Sizes above 1024: four classes per doubling.
#[inline]
fn medium_class(size: usize) -> Option<usize> {
    if size > MAX_SMALL {
        return None;
    }
    // With s = size - 1 in [2^k, 2^(k+1)), the class is the quarter of that doubling.
    let s = size - 1;
    let k = usize::BITS - 1 - s.leading_zeros();
    let quarter = (s >> (k - 2)) & 3;
    // 1024 < size <= 1280 is class 20 (block 1280); each doubling above 1024 adds 4.
    Some(20 + 4 * (k as usize - 10) + quarter)
}

/// Over-aligned requests: the smallest power-of-two class that holds the size and the
/// alignment (its blocks are aligned to their size).
#[cold]
fn aligned_class(size: usize, align: usize) -> Option<usize> {
    let block = size.max(align).checked_next_power_of_two()?;
    if block > MAX_SMALL {
        return None;
    }
    class_of(block, 16)
}

/// Block size of class `class`.
#[inline(always)]
pub fn block_size(class: usize) -> usize {
    BLOCK_SIZE[class] as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_grow_and_end_at_max_small() {
        assert_eq!(BLOCK_SIZE[0], 16);
        assert_eq!(BLOCK_SIZE[7], 128);
        assert_eq!(&BLOCK_SIZE[8..13], &[160, 192, 224, 256, 320]);
        assert_eq!(BLOCK_SIZE[CLASSES - 1] as usize, MAX_SMALL);
        assert!(BLOCK_SIZE.windows(2).all(|w| w[0] < w[1]));
        for k in 4..=15 {
            assert!(BLOCK_SIZE.contains(&(1 << k)), "2^{k} is a class");
        }
    }

    #[test]
    fn every_size_gets_the_smallest_block_that_fits() {
        for size in 0..=MAX_SMALL {
            let class = class_of(size, 8).unwrap();
            assert!(block_size(class) >= size.max(1), "size {size}");
            assert!(class == 0 || block_size(class - 1) < size, "size {size} could use a smaller class");
        }
        assert_eq!(class_of(MAX_SMALL + 1, 8), None);
    }

    #[test]
    fn aligned_requests_get_aligned_power_of_two_blocks() {
        for align_shift in 5..=15 {
            let align = 1usize << align_shift;
            for size in [1, align / 2, align, align + 1, 3 * align] {
                match class_of(size, align) {
                    Some(class) => {
                        let block = block_size(class);
                        assert!(block.is_power_of_two() && block >= size && block >= align);
                    }
                    None => assert!(size.max(align).next_power_of_two() > MAX_SMALL),
                }
            }
        }
        assert_eq!(class_of(8, 64 << 10), None);
    }
}
