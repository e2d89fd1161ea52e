//! The layout of a checked block, and the byte patterns that make errors visible.
//!
//! An ordinary block is one backing block cut in three, as AddressSanitizer lays out its
//! chunks: a left zone that ends with the 32-byte [`Header`] and 16 canary bytes, the
//! user's bytes, and a right zone of canary bytes from the requested end up to the next
//! 16-byte boundary plus 16 (so 16 to 31 bytes). The header lives just before the user's
//! bytes so that the block describes itself (magic word, requested size, kind, state,
//! threads and stack ids, its slot in the registry's table): a free finds it at a fixed
//! offset from the pointer, without a table lookup (the registry checks first that the
//! address can be read; see `registry.rs`).
//!
//! ```text
//! base            user-48     user-16   user          user+size        user+round16(size)+16
//! | (alignment) | Header 32 | canary 16 | user bytes | canary ......... |
//! ```
//!
//! The left zone is as long as the block's alignment (at least 48 bytes), so the backing
//! block starts a whole alignment before the user's bytes. Blocks with a large alignment
//! (from the backing's `AllocAt::min_align`, 2 MiB for the engine) take one OS page
//! instead: the backing places its block so that the address one page in is aligned
//! (flag [`PAGE_PREFIX`]). That saves the alignment's worth of memory, and it is what
//! makes such blocks work at all on the engine, which finds a block from a pointer only
//! within the block's first 4 MiB segment: with a 4 MiB or larger alignment the ordinary
//! layout's user pointer lay a segment or more past the block's start, and its `free`
//! never reached the checker.
//!
//! New blocks are filled with [`FILL_NEW`] (or zeroed for `calloc`), so a read of
//! uninitialised memory reads the same bytes on every run; freed blocks are filled with
//! [`FILL_FREED`] while they wait in quarantine, and the fill is checked when they leave
//! it. The canary byte is [`CANARY`]. The magic word is XORed with the user address, so a
//! header copied elsewhere (or a stale one) does not validate.
//!
//! Guard-page blocks (see `guard.rs`) keep the same header on a page of its own.

use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, Ordering};

/// Bytes of the header.
pub const HEADER: usize = 32;
/// Canary bytes between the header and the user's bytes.
pub const LEFT_CANARY: usize = 16;
/// Canary bytes after the user's bytes, at least.
pub const MIN_RIGHT: usize = 16;
/// The byte new blocks are filled with (AddressSanitizer's `malloc_fill_byte`).
pub const FILL_NEW: u8 = 0xbe;
/// The byte freed blocks are filled with while in quarantine.
pub const FILL_FREED: u8 = 0xfd;
/// The byte of the red zones.
pub const CANARY: u8 = 0xfa;
const MAGIC: u32 = 0x4d57_434b;

fn magic(user: usize) -> u32 {
    MAGIC ^ user as u32 ^ (user >> 32) as u32
}

/// Live: handed out to the program.
pub const LIVE: u8 = 1;
/// Being freed by one thread (a second free sees it as freed).
pub const FREEING: u8 = 2;
/// Freed, poisoned, waiting in quarantine.
pub const QUARANTINED: u8 = 3;

/// What allocated (or frees) a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `malloc`, `calloc`, `realloc`, `aligned_alloc`... and Rust's global allocator.
    Malloc = 0,
    /// `operator new` / `operator delete`.
    New = 1,
    /// `operator new[]` / `operator delete[]`.
    NewArray = 2,
}

impl Kind {
    pub(crate) fn from_u8(k: u8) -> Kind {
        match k {
            1 => Kind::New,
            2 => Kind::NewArray,
            _ => Kind::Malloc,
        }
    }

    /// The allocating function's name, as AddressSanitizer prints it.
    pub(crate) fn alloc_name(self) -> &'static str {
        match self {
            Kind::Malloc => "malloc",
            Kind::New => "operator new",
            Kind::NewArray => "operator new []",
        }
    }

    /// The freeing function's name, as AddressSanitizer prints it.
    pub(crate) fn free_name(self) -> &'static str {
        match self {
            Kind::Malloc => "free",
            Kind::New => "operator delete",
            Kind::NewArray => "operator delete []",
        }
    }
}

/// The header before each block.
#[repr(C)]
pub struct Header {
    magic: u32,
    kind: u8,
    state: AtomicU8,
    /// `GUARDED`, `ARMED`, `POISONED`.
    pub flags: AtomicU8,
    /// log2 of the block's alignment (ordinary blocks: where the backing block starts).
    pub align_log2: u8,
    /// Requested size in bytes.
    pub size: u64,
    /// The block's slot in the registry's table.
    pub slot: u32,
    /// Stack id of the allocation.
    pub alloc_stack: u32,
    /// Stack id of the free (0 until freed).
    pub free_stack: AtomicU32,
    /// Thread number (T<n>) of the allocation.
    pub alloc_tid: u16,
    /// Thread number of the free.
    pub free_tid: AtomicU16,
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER);

/// Flag: the block has the guard-page layout.
pub const GUARDED: u8 = 1;
/// Flag: the guard page (and, once freed, the block) is protected.
pub const ARMED: u8 = 2;
/// Flag: the freed block was filled with `FILL_FREED` (and can be checked for writes).
pub const POISONED: u8 = 4;
/// Flag: the left zone is one OS page (the backing placed the block with `AllocAt`),
/// not the block's alignment.
pub const PAGE_PREFIX: u8 = 8;

impl Header {
    /// A live header for a block of `size` bytes at `user`.
    pub fn new(user: usize, size: usize, align: usize, kind: Kind, stack: u32, tid: u16) -> Header {
        Header {
            magic: magic(user),
            size: size as u64,
            slot: 0,
            alloc_stack: stack,
            free_stack: AtomicU32::new(0),
            alloc_tid: tid,
            free_tid: AtomicU16::new(0),
            kind: kind as u8,
            state: AtomicU8::new(LIVE),
            flags: AtomicU8::new(0),
            align_log2: align.trailing_zeros() as u8,
        }
    }

    /// Whether this header belongs to the block at `user` (not overwritten).
    pub fn valid_for(&self, user: usize) -> bool {
        self.magic == magic(user)
    }

    /// The allocating kind.
    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.kind)
    }

    /// `LIVE`, `FREEING` or `QUARANTINED`.
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Sets the state.
    pub fn set_state(&self, s: u8) {
        self.state.store(s, Ordering::Release);
    }

    /// Moves the state from `from` to `to` if it is `from`; false otherwise. A process
    /// with one thread needs no locked instruction for it (see `SpinLock::lock`).
    #[inline]
    pub fn change_state(&self, from: u8, to: u8) -> bool {
        if memward_profile::shared::single_threaded() {
            if self.state.load(Ordering::Acquire) != from {
                return false;
            }
            self.state.store(to, Ordering::Release);
            return true;
        }
        self.state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Makes the header invalid (before its memory goes back to the backing), so a stale
    /// pointer to the block is not taken for it.
    pub fn invalidate(&mut self) {
        self.magic = 0;
    }

    /// The flags (`GUARDED`, `ARMED`).
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Acquire)
    }

    /// Records the free: its stack and thread.
    pub fn set_freed_by(&self, stack: u32, tid: u16) {
        self.free_stack.store(stack, Ordering::Relaxed);
        self.free_tid.store(tid, Ordering::Relaxed);
    }

    /// The free's stack and thread.
    pub fn freed_by(&self) -> (u32, u16) {
        (
            self.free_stack.load(Ordering::Relaxed),
            self.free_tid.load(Ordering::Relaxed),
        )
    }

    /// Requested size.
    #[allow(clippy::len_without_is_empty)] // a block's size, not a collection
    pub fn len(&self) -> usize {
        self.size as usize
    }
}

/// `n` rounded up to a multiple of `to` (a power of two).
pub const fn round_up(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

/// The ordinary layout of a block of `size` bytes aligned to `align` (a power of two,
/// at least 16): (bytes to take from the backing, offset of the user's bytes in it).
/// `None` if the size overflows.
pub fn layout(size: usize, align: usize) -> Option<(usize, usize)> {
    let left = round_up(HEADER + LEFT_CANARY, align);
    Some((total_after(size, left)?, left))
}

/// Bytes to take from the backing for a block of `size` bytes whose user's bytes start
/// `left` bytes into it (at least `HEADER + LEFT_CANARY`, a multiple of 16); `None` if
/// the size overflows.
pub fn total_after(size: usize, left: usize) -> Option<usize> {
    debug_assert!(left >= HEADER + LEFT_CANARY && left % 16 == 0);
    let body = size.checked_add(15 + MIN_RIGHT)? & !15;
    let total = left.checked_add(body)?;
    (total <= isize::MAX as usize).then_some(total)
}

/// End of the right canary zone of an ordinary block (offset from the user start).
pub fn right_end(size: usize) -> usize {
    round_up(size, 16) + MIN_RIGHT
}

/// Writes the canary zones of an ordinary block: 16 bytes before `user`, and from
/// `user + size` to [`right_end`] (16 to 31 bytes, written as two overlapping 16-byte
/// stores, not a call to `memset` for each).
///
/// # Safety
/// `[user - LEFT_CANARY, user + right_end(size))` is writable memory of the block.
pub unsafe fn write_red_zones(user: usize, size: usize) {
    let pattern = u128::from_ne_bytes([CANARY; 16]);
    let end = user + right_end(size);
    // SAFETY: all three 16-byte stores lie in the range the caller vouches for (the right
    // zone is at least 16 bytes long).
    unsafe {
        ((user - LEFT_CANARY) as *mut u128).write_unaligned(pattern);
        ((user + size) as *mut u128).write_unaligned(pattern);
        ((end - 16) as *mut u128).write_unaligned(pattern);
    }
}

/// Whether both canary zones of an ordinary block still hold the canary, read as
/// [`write_red_zones`] wrote them: the common answer at every free, in three loads.
///
/// # Safety
/// `[user - LEFT_CANARY, user + right_end(size))` is readable memory of the block.
pub unsafe fn red_zones_intact(user: usize, size: usize) -> bool {
    let pattern = u128::from_ne_bytes([CANARY; 16]);
    let end = user + right_end(size);
    // SAFETY: as in `write_red_zones`, for reads.
    unsafe {
        ((user - LEFT_CANARY) as *const u128).read_unaligned() == pattern
            && ((user + size) as *const u128).read_unaligned() == pattern
            && ((end - 16) as *const u128).read_unaligned() == pattern
    }
}

/// A freed block's poison beyond its wholly poisoned start: `STRIPE` bytes at the start of
/// every `STRIDE` bytes, up to `STRIPED_MAX` bytes from the block's start. A write after
/// free that spans a stripe (a `memcpy`, `memset` or `read` into a freed buffer) is found;
/// one that falls between stripes is not. It costs a sixteenth of poisoning whole, and
/// touches no page that whole poisoning up to `STRIPED_MAX` would not.
pub const STRIPE: usize = 64;
/// See [`STRIPE`].
pub const STRIDE: usize = 1024;
/// See [`STRIPE`].
pub const STRIPED_MAX: usize = 64 << 10;

/// The poisoned ranges (offset, length) of a freed block of `len` bytes whose first
/// `whole` bytes are poisoned whole, in order: that start, then the stripes after it.
pub fn poison_ranges(len: usize, whole: usize) -> impl Iterator<Item = (usize, usize)> {
    let whole = len.min(whole);
    let striped_end = len.min(STRIPED_MAX);
    let first_stripe = whole.next_multiple_of(STRIDE);
    core::iter::once((0, whole)).filter(|&(_, n)| n > 0).chain(
        (first_stripe..striped_end)
            .step_by(STRIDE)
            .map(move |o| (o, STRIPE.min(striped_end - o))),
    )
}

/// The first byte in `bytes` that differs from `value`, if any (word at a time).
///
/// Red zones start anywhere (just past an odd-sized block), so words are read unaligned
/// (as cheap as aligned ones on the targets we run on) rather than peeling bytes up to an
/// aligned address, and a short tail is one word read overlapping the last full one.
pub fn first_mismatch(bytes: &[u8], value: u8) -> Option<usize> {
    let word = u64::from_ne_bytes([value; 8]);
    let load = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8 bytes"));
    let exact = |at: usize| {
        bytes[at..at + 8]
            .iter()
            .position(|b| *b != value)
            .map(|i| at + i)
    };
    if bytes.len() < 8 {
        return bytes.iter().position(|b| *b != value);
    }
    // Eight words per test (the common answer is "none", so the loop is the cost: one
    // branch per 64 bytes, and the XORs and ORs vectorise).
    let mut blocks = bytes.chunks_exact(64);
    let mut at = 0;
    for block in &mut blocks {
        if block
            .chunks_exact(8)
            .fold(0, |acc, c| acc | (load(c) ^ word))
            != 0
        {
            break;
        }
        at += 64;
    }
    let rest = &bytes[at..];
    let mut words = rest.chunks_exact(8);
    for c in &mut words {
        if load(c) != word {
            return exact(at);
        }
        at += 8;
    }
    // The last 1-7 bytes: the word ending at the end, whose first bytes matched above.
    if at < bytes.len() && load(&bytes[bytes.len() - 8..]) != word {
        return exact(bytes.len() - 8);
    }
    None
}

/// The last byte in `bytes` that differs from `value`, if any.
pub fn last_mismatch(bytes: &[u8], value: u8) -> Option<usize> {
    bytes.iter().rposition(|b| *b != value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_leave_red_zones_on_both_sides() {
        let (total, left) = layout(13, 16).unwrap();
        assert_eq!(left, 48);
        assert_eq!(total, 48 + 32);
        assert_eq!(right_end(13), 32);
        let (total, left) = layout(16, 16).unwrap();
        assert_eq!((total, left), (48 + 32, 48));
        let (_, left) = layout(8, 64).unwrap();
        assert_eq!(left, 64);
        let (_, left) = layout(8, 4096).unwrap();
        assert_eq!(left, 4096);
        assert_eq!(total_after(13, 4096), Some(4096 + 32));
        assert_eq!(total_after(usize::MAX - 8, 4096), None);
        assert_eq!(layout(usize::MAX - 8, 16), None);
        assert_eq!(layout(isize::MAX as usize, 16), None);
    }

    #[test]
    fn finds_changed_bytes() {
        let mut v = vec![CANARY; 100];
        assert_eq!(first_mismatch(&v, CANARY), None);
        assert_eq!(first_mismatch(&v[3..], CANARY), None);
        v[57] = 0;
        assert_eq!(first_mismatch(&v, CANARY), Some(57));
        assert_eq!(first_mismatch(&v[1..], CANARY), Some(56));
        v[99] = 1;
        assert_eq!(last_mismatch(&v, CANARY), Some(99));
        v[57] = CANARY;
        assert_eq!(first_mismatch(&v[2..], CANARY), Some(97));
    }

    #[test]
    fn finds_the_first_changed_byte_at_every_place_and_alignment() {
        let mut v = vec![FILL_FREED; 300];
        for start in 0..9 {
            for at in start..v.len() {
                v[at] = 0;
                if at + 40 < v.len() {
                    v[at + 40] = 0;
                }
                assert_eq!(first_mismatch(&v[start..], FILL_FREED), Some(at - start));
                v[at] = FILL_FREED;
                if at + 40 < v.len() {
                    v[at + 40] = FILL_FREED;
                }
            }
            assert_eq!(first_mismatch(&v[start..], FILL_FREED), None);
        }
    }

    #[test]
    fn headers_validate_only_for_their_block() {
        let h = Header::new(0x1000, 13, 16, Kind::New, 7, 2);
        assert_eq!(h.align_log2, 4);
        assert!(h.valid_for(0x1000));
        assert!(!h.valid_for(0x1010));
        assert_eq!(h.kind(), Kind::New);
        assert_eq!(h.state(), LIVE);
        h.set_state(QUARANTINED);
        assert_eq!(h.state(), QUARANTINED);
        assert_eq!(h.len(), 13);
    }

    #[test]
    fn poison_is_whole_then_striped_up_to_its_limit() {
        assert_eq!(poison_ranges(0, 4096).count(), 0);
        assert_eq!(poison_ranges(100, 4096).collect::<Vec<_>>(), [(0, 100)]);
        assert_eq!(poison_ranges(4096, 4096).collect::<Vec<_>>(), [(0, 4096)]);
        assert_eq!(
            poison_ranges(5000, 4096).collect::<Vec<_>>(),
            [(0, 4096), (4096, 64)]
        );
        // A stripe cut short by the block's end; none past STRIPED_MAX.
        assert_eq!(
            poison_ranges(6150, 4000).collect::<Vec<_>>(),
            [(0, 4000), (4096, 64), (5120, 64), (6144, 6)]
        );
        let big: Vec<_> = poison_ranges(1 << 20, 4096).collect();
        assert_eq!(big.len(), 1 + (STRIPED_MAX - 4096) / STRIDE);
        assert_eq!(*big.last().unwrap(), (STRIPED_MAX - STRIDE, STRIPE));
        // Poisoned whole past STRIPED_MAX: no stripes.
        assert_eq!(
            poison_ranges(1 << 20, 100_000).collect::<Vec<_>>(),
            [(0, 100_000)]
        );
    }

    #[test]
    fn first_mismatch_agrees_with_a_byte_scan_at_every_length_and_offset() {
        let naive = |b: &[u8], v: u8| b.iter().position(|x| *x != v);
        let mut v = [CANARY; 200];
        for start in 0..9 {
            for len in 0..(200 - start) {
                let s = &v[start..start + len];
                assert_eq!(first_mismatch(s, CANARY), None, "{start} {len}");
            }
        }
        for at in 0..200 {
            v[at] = 0;
            for start in 0..9.min(at + 1) {
                for end in [at + 1, (at + 3).min(200), (at + 70).min(200), 200] {
                    let s = &v[start..end];
                    assert_eq!(
                        first_mismatch(s, CANARY),
                        naive(s, CANARY),
                        "{at} {start} {end}"
                    );
                }
            }
            v[at] = CANARY;
        }
    }
}
