//! Stack capture for programs built without frame pointers: `.eh_frame` CFI unwinding
//! with `framehop`, whose rule cache makes a frame seen before cost a table lookup, and
//! whose `MustNotAllocateDuringUnwind` policy keeps the unwind step allocation-free.
//!
//! The unwinder knows only the modules the recorder gave it (from the module scans); a
//! return address in a module loaded since the last scan ends the stack there. Stack
//! memory is read only between the capture's own stack pointer and the top of the
//! calling thread's stack, so a corrupt frame cannot make the recorder fault.
//!
//! Consecutive allocations mostly share the outer part of their stacks, so each thread
//! keeps its last capture (return addresses and the stack slots they were read from).
//! When the unwinder reaches a frame of that capture (the same return address in the
//! same slot) and every slot further out still holds the return address it held, the
//! rest is taken from the last capture instead of being unwound again: a few reads
//! instead of a rule lookup per frame. (A different chain with the same return addresses
//! in the same slots would be read as the old one; the check makes that implausible, not
//! impossible.)
//!
//! Frames of the allocator itself are dropped when it is a shared library (libmemward.so):
//! every leading frame inside the recorder's own module. A program that links memward
//! statically keeps them (they share the executable with the program); reports drop them
//! by name.

mod from_context;

use crate::modules::ModuleInfo;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, MustNotAllocateDuringUnwind, Unwinder,
};

/// Deepest stack recorded (heaptrack records 64 as well).
pub const MAX_FRAMES: usize = 64;

/// framehop's rule cache is direct-mapped with 509 slots (address % 509); programs with
/// deep stacks (sqlite3's are about 50 frames) miss it often, and a miss costs a DWARF
/// CFI evaluation, tens of times a hit. A bank of caches chosen by `address / 509` makes
/// it direct-mapped over `509 * CACHE_BANKS` slots.
const CACHE_BANKS: usize = 32;

type Data = &'static [u8];

/// The unwinder, its cache, and what to skip.
pub struct Stacks {
    unwinder: UnwinderX86_64<Data, MustNotAllocateDuringUnwind>,
    caches: [CacheX86_64<MustNotAllocateDuringUnwind>; CACHE_BANKS],
    /// Segments of our own module, when it is a shared library: leading frames there are
    /// the allocator's.
    own: [(u64, u64); 8],
    own_count: usize,
}

/// A `'static` view of loaded memory.
///
/// # Safety
/// `[addr, addr + len)` must stay mapped and readable while the unwinder may use it (the
/// module stays loaded; a module is removed from the unwinder when a scan finds it gone).
unsafe fn memory(addr: u64, len: u64) -> Data {
    // SAFETY: per the contract.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

impl Stacks {
    /// An unwinder without modules. Allocates its cache (once, from the global allocator).
    pub fn new() -> Stacks {
        Stacks {
            unwinder: UnwinderX86_64::new(),
            caches: core::array::from_fn(|_| CacheX86_64::new_in()),
            own: [(0, 0); 8],
            own_count: 0,
        }
    }

    /// Makes `m`'s unwind information known.
    pub fn add(&mut self, m: &ModuleInfo) {
        let (lo, hi) = m.range();
        let (hdr_addr, hdr_len) = m.eh_frame_hdr;
        let mut info = ExplicitModuleSectionInfo::<Data> {
            base_svma: 0,
            ..Default::default()
        };
        if hdr_addr != 0 {
            // SAFETY: PT_GNU_EH_FRAME lies in a loaded segment of a loaded module.
            let hdr = unsafe { memory(hdr_addr, hdr_len) };
            info.eh_frame_hdr_svma = Some(hdr_addr - m.bias..hdr_addr - m.bias + hdr_len);
            info.eh_frame_hdr = Some(hdr);
            if let Some(eh) = crate::modules::eh_frame_address(hdr, hdr_addr) {
                // .eh_frame runs to the end of the segment holding it at most.
                if let Some(seg) = m.segments().iter().find(|s| eh >= s.0 && eh < s.0 + s.1) {
                    let len = seg.0 + seg.1 - eh;
                    // SAFETY: within a loaded segment of a loaded module.
                    info.eh_frame = Some(unsafe { memory(eh, len) });
                    info.eh_frame_svma = Some(eh - m.bias..eh - m.bias + len);
                }
            }
        }
        if let Some(text) = m.segments().iter().find(|s| s.3 & libc::PF_X != 0) {
            info.text_svma = Some(text.0 - m.bias..text.0 - m.bias + text.1);
            // SAFETY: an executable PT_LOAD segment of a loaded module is mapped readable.
            info.text = Some(unsafe { memory(text.0, text.1) });
        }
        let name = String::from_utf8_lossy(m.path()).into_owned();
        self.unwinder
            .add_module(Module::new(name, lo..hi, m.bias, info));
    }

    /// Forgets `m` (it was unloaded).
    pub fn remove(&mut self, m: &ModuleInfo) {
        self.unwinder.remove_module(m.range().0);
    }

    /// Drops leading frames inside `m` from now on.
    pub fn skip_frames_in(&mut self, m: &ModuleInfo) {
        for s in m.segments().iter().take(self.own.len()) {
            self.own[self.own_count] = (s.0, s.1);
            self.own_count += 1;
        }
    }

    /// Writes the caller's stack into `out`, innermost first (return addresses, our own
    /// leading frames dropped), and returns how many frames it wrote. `stack_top` is the
    /// end of the calling thread's stack.
    #[inline(never)]
    ///
    /// Where the outer frames were reused from the thread's last capture, their stack
    /// ids (as given to [`Stacks::remember`] then) come along: the return value is
    /// `(n, known)`, and `ids[i]` is the id of the stack `out[i..n]` for `known <= i < n`.
    pub fn capture(
        &mut self,
        out: &mut [u64; MAX_FRAMES],
        ids: &mut [u32; MAX_FRAMES],
        stack_top: u64,
    ) -> (usize, usize) {
        let (ip, sp, bp) = registers();
        let mut read = |addr: u64| -> Result<u64, ()> {
            if addr >= sp && addr % 8 == 0 && addr.checked_add(8).is_some_and(|e| e <= stack_top) {
                // SAFETY: `addr` lies between this function's stack pointer and the top
                // of this thread's stack, which is mapped, and is aligned.
                Ok(unsafe { core::ptr::read_volatile(addr as *const u64) })
            } else {
                Err(())
            }
        };
        let (own, own_count) = (self.own, self.own_count);
        let is_own = |addr: u64| {
            own[..own_count]
                .iter()
                .any(|&(start, len)| addr >= start && addr - start < len)
        };
        let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut frame = FrameAddress::from_instruction_pointer(ip);
        // Raw frames: each return address and the stack slot it was read from.
        let mut ras = [0u64; MAX_RAW];
        let mut slots = [0u64; MAX_RAW];
        let mut raw = 0;
        // SAFETY: the thread's own capture record; `capture` is not re-entered on a thread
        // (hooks are not) and nothing else borrows it.
        let prev = PREVIOUS.with(|p| unsafe { &mut *p.get() });
        let mut j = 0;
        // (current raw index, previous raw index) where reused frames start.
        let mut reused = None;
        while raw < MAX_RAW {
            let bank = (frame.address_for_lookup() / 509) as usize % CACHE_BANKS;
            let Ok(Some(ra)) =
                self.unwinder
                    .unwind_frame(frame, &mut regs, &mut self.caches[bank], &mut read)
            else {
                break;
            };
            let Some(next) = FrameAddress::from_return_address(ra) else {
                break;
            };
            frame = next;
            // After the step, the stack pointer is the caller's: the return address sat
            // just below it.
            let slot = regs.sp().wrapping_sub(8);
            ras[raw] = ra;
            slots[raw] = slot;
            raw += 1;
            // The previous capture's frames further out are reused when this frame is
            // one of them (same return address in the same slot) and every slot further
            // out still holds the return address it held then.
            while j < prev.len && prev.slots[j] < slot {
                j += 1;
            }
            if j < prev.len
                && prev.slots[j] == slot
                && prev.ras[j] == ra
                && (j + 1..prev.len).all(|i| read(prev.slots[i]) == Ok(prev.ras[i]))
            {
                let more = (prev.len - j - 1).min(MAX_RAW - raw);
                reused = Some((raw, j + 1));
                ras[raw..raw + more].copy_from_slice(&prev.ras[j + 1..j + 1 + more]);
                slots[raw..raw + more].copy_from_slice(&prev.slots[j + 1..j + 1 + more]);
                raw += more;
                break;
            }
        }
        let skip = if own_count > 0 {
            ras[..raw].iter().take_while(|ra| is_own(**ra)).count()
        } else {
            0
        };
        let truncated = raw - skip > MAX_FRAMES || raw == MAX_RAW;
        let n = (raw - skip).min(MAX_FRAMES);
        out[..n].copy_from_slice(&ras[skip..skip + n]);
        // Ids of a stack suffix carry over only when neither capture was cut: a cut
        // counts from the innermost frame, so the same outer frames would be a different
        // stack.
        let mut known = n;
        if let Some((cur, old)) = reused {
            if prev.ids_valid && !prev.truncated && !truncated && cur >= skip && old >= prev.skip {
                known = cur - skip;
                ids[known..n].copy_from_slice(&prev.ids[old..old + (n - known)]);
            }
        }
        prev.len = raw;
        prev.ras[..raw].copy_from_slice(&ras[..raw]);
        prev.slots[..raw].copy_from_slice(&slots[..raw]);
        prev.skip = skip;
        prev.truncated = truncated;
        prev.ids_valid = false;
        (n, known)
    }

    /// Records the stack ids of the last capture's frames (`ids[i]`: the id of the stack
    /// made of the frames from `i` outwards), for the next capture on this thread.
    pub fn remember(&mut self, ids: &[u32]) {
        // SAFETY: as in `capture`: this thread's record, not borrowed elsewhere.
        let prev = PREVIOUS.with(|p| unsafe { &mut *p.get() });
        let skip = prev.skip;
        if skip + ids.len() <= MAX_RAW {
            prev.ids[skip..skip + ids.len()].copy_from_slice(ids);
            prev.ids_valid = true;
        }
    }
}

/// Most raw frames kept per capture: the recorded ones plus the allocator's own.
const MAX_RAW: usize = MAX_FRAMES + 32;

/// A thread's last capture, for reusing the frames two captures share.
struct Previous {
    len: usize,
    ras: [u64; MAX_RAW],
    slots: [u64; MAX_RAW],
    /// Stack ids per raw frame (from `skip` on), valid after `Stacks::remember`.
    ids: [u32; MAX_RAW],
    skip: usize,
    truncated: bool,
    ids_valid: bool,
}

thread_local! {
    static PREVIOUS: core::cell::UnsafeCell<Previous> = const {
        core::cell::UnsafeCell::new(Previous {
            len: 0,
            ras: [0; MAX_RAW],
            slots: [0; MAX_RAW],
            ids: [0; MAX_RAW],
            skip: 0,
            truncated: false,
            ids_valid: false,
        })
    };
}

/// The instruction pointer, stack pointer and frame pointer at this point.
#[inline(always)]
fn registers() -> (u64, u64, u64) {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads three registers into outputs; touches no memory and no flags.
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    (ip, sp, bp)
}

extern "C" {
    /// The top of the main thread's stack at process start (exported by glibc's loader).
    static __libc_stack_end: *mut core::ffi::c_void;
}

/// The highest address of the calling thread's stack (exclusive); 0 if unknown.
pub fn stack_top(is_main_thread: bool) -> u64 {
    if is_main_thread {
        // SAFETY: a plain read of a pointer-sized variable the loader set at start.
        let end = unsafe { __libc_stack_end } as u64;
        // The page holding it is part of the stack mapping.
        return (end + 4095) & !4095;
    }
    // For threads other than the main one glibc reads the bounds from the thread
    // descriptor (its small allocation is served, not recorded: hooks are not re-entered).
    // SAFETY: `attr` is initialised by pthread_getattr_np before use and destroyed
    // after; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 0;
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size: usize = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            addr as u64 + size as u64
        } else {
            0
        }
    }
}
