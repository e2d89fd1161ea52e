//! The entry points' logic: allocation into red-zoned (or guarded) blocks, frees checked
//! against the registry and the header, the quarantine, and release.
//!
//! A free claims its block under the registry shard's lock (live becomes "freeing"), so
//! of two frees of one block exactly one proceeds and the other is a double free. The
//! claimed block is then checked (kind against the free's kind, size against a sized
//! delete, red zones), poisoned or protected, and queued; blocks the queue pushes out are
//! checked again (poison and red zones) and their memory goes back to the backing.
//!
//! Every error is reported at the call that finds it (see `report.rs`); with
//! `MEMWARD_CHECK_KEEP_GOING=1` the call then does what a lenient allocator would: a
//! double or invalid free is ignored, a mismatched free frees, an invalid `realloc`
//! allocates anew.

use crate::block::{
    self, first_mismatch, last_mismatch, right_end, Header, Kind, ARMED, CANARY, FILL_FREED,
    FILL_NEW, FREEING, GUARDED, HEADER, LEFT_CANARY, LIVE, PAGE_PREFIX, POISONED, QUARANTINED,
};
use crate::options::Options;
use crate::report::{Report, Stack};
use crate::{guard, quarantine, registry, stacks, threads, Backing};
use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};
use std::sync::OnceLock;

static BACKING: AtomicPtr<Backing> = AtomicPtr::new(core::ptr::null_mut());
static OPTIONS: OnceLock<Options> = OnceLock::new();
/// Bytes the program holds in live blocks (requested sizes), for the quarantine's bound.
static LIVE_BYTES: LiveBytes = LiveBytes([const { Counter(AtomicIsize::new(0)) }; 8]);

/// Bytes in live blocks, counted per thread: threads T0 to T6 have a counter each, which
/// only they write, with a load and a store; the others share the last one, with atomic
/// read-modify-writes. A locked instruction costs tens of cycles on every allocation and
/// free, and one shared counter was a cache line every thread wrote. A block freed by
/// another thread than the one that allocated it moves its bytes between counters, so one
/// may go below zero; their sum does not.
struct LiveBytes([Counter; 8]);

#[repr(align(64))]
struct Counter(AtomicIsize);

impl LiveBytes {
    /// Adds `n` (negative: subtracts) for thread number `tid` (the calling thread's).
    #[inline]
    fn change(&self, n: isize, tid: u16) {
        let own = usize::from(tid);
        if own < self.0.len() - 1 {
            let c = &self.0[own].0;
            c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        } else {
            self.0[self.0.len() - 1].0.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn load(&self) -> usize {
        let sum: isize = self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
        sum.max(0) as usize
    }
}

/// The options in force (the defaults before configuration).
pub fn options() -> &'static Options {
    OPTIONS.get_or_init(Options::default)
}

/// Installs the configuration; false if one was installed already.
pub fn install(backing: &'static Backing, options: Options) -> bool {
    if OPTIONS.set(options).is_err() {
        return false;
    }
    BACKING.store(backing as *const Backing as *mut Backing, Ordering::Release);
    true
}

/// The backing.
pub fn backing() -> &'static Backing {
    let p = BACKING.load(Ordering::Acquire);
    assert!(!p.is_null(), "memward-check used before configure_from_env");
    // SAFETY: only `&'static Backing` values are stored.
    unsafe { &*p }
}

/// What a free found at an address.
enum Claim {
    /// A live block, now claimed by this call (state FREEING): its header address.
    Mine(usize),
    /// A block already freed (being freed, or in quarantine).
    Freed(usize),
    /// Not a block's start.
    Unknown,
}

fn claim(user: usize) -> Claim {
    match registry::lookup(user) {
        None => Claim::Unknown,
        Some(h) if h.change_state(LIVE, FREEING) => Claim::Mine(h as *const Header as usize),
        Some(h) => Claim::Freed(h as *const Header as usize),
    }
}

fn header<'a>(h: usize) -> &'a Header {
    // SAFETY: `h` is a registered header (from the registry), which stays mapped and
    // readable until its block is released, which only the claiming thread does.
    unsafe { &*(h as *const Header) }
}

/// The address range that counts as the block's (for interior-pointer lookups).
fn extent(user: usize, h: &Header) -> (usize, usize) {
    if h.flags() & GUARDED != 0 {
        let (start, _, end) = guard::regions(user, h);
        (start, end)
    } else {
        (user - LEFT_CANARY, user + right_end(h.len()))
    }
}

/// Allocates a block (the `alloc` entry point's body), guarded if `guard_picked` (the
/// thread's countdown, `guard::Countdown`) and `guard::wanted` agree.
///
/// # Safety
/// Inside an entry point; `align` is a power of two of at least 16.
pub unsafe fn alloc(
    size: usize,
    align: usize,
    zeroed: bool,
    kind: Kind,
    stack: u32,
    tid: u16,
    guard_picked: bool,
) -> *mut u8 {
    if align > u32::MAX as usize / 2 {
        return core::ptr::null_mut();
    }
    if guard::wanted(size, align, guard_picked) {
        // SAFETY: inside an entry point.
        if let Some(user) = unsafe { guard::alloc(size, align, zeroed, kind, stack, tid) } {
            LIVE_BYTES.change(size as isize, tid);
            return user as *mut u8;
        }
    }
    // Large alignments: the backing's own placement, one page before the aligned address
    // (see block.rs).
    let placed = backing()
        .alloc_at
        .as_ref()
        .filter(|at| align >= at.min_align);
    let (base, left) = if let Some(at) = placed {
        let left = guard::page();
        let Some(total) = block::total_after(size, left) else {
            return core::ptr::null_mut();
        };
        // SAFETY: the backing's placement function, with a power-of-two alignment of at
        // least its `min_align` and the page size as the offset.
        (unsafe { (at.alloc)(total, align, left) } as usize, left)
    } else {
        let Some((total, left)) = block::layout(size, align) else {
            return core::ptr::null_mut();
        };
        // SAFETY: the backing's allocation function with a power-of-two alignment >= 16.
        (unsafe { (backing().alloc)(total, align) } as usize, left)
    };
    if base == 0 {
        return core::ptr::null_mut();
    }
    let user = base + left;
    let h = user - registry::HEADER_AT;
    let header = Header::new(user, size, align, kind, stack, tid);
    if placed.is_some() {
        header.flags.store(PAGE_PREFIX, Ordering::Relaxed);
    }
    // SAFETY: the backing block just allocated is ours and holds the header, the canaries
    // and the user's bytes (`block::layout`, `block::total_after`); the header's address
    // is 8-aligned (user is 16-aligned, 48 bytes before it).
    unsafe {
        core::ptr::write(h as *mut Header, header);
        if zeroed {
            core::ptr::write_bytes(user as *mut u8, 0, size);
        } else {
            let fill = size.min(options().malloc_fill_max);
            core::ptr::write_bytes(user as *mut u8, FILL_NEW, fill);
        }
        block::write_red_zones(user, size);
    }
    // SAFETY: the header just written, not otherwise referenced yet.
    registry::insert(user, unsafe { &mut *(h as *mut Header) });
    LIVE_BYTES.change(size as isize, tid);
    user as *mut u8
}

/// A byte range `[from, to)` of a block's red zones (or freed bytes) that changed.
struct Damage {
    from: usize,
    to: usize,
}

/// The red-zone bytes of a block that are not canary any more.
fn damaged_red_zones(user: usize, h: &Header) -> Option<Damage> {
    let size = h.len();
    let (left, right) = if h.flags() & GUARDED != 0 {
        let (data_start, data_end, _) = guard::regions(user, h);
        ((data_start, user), (user + size, data_end))
    } else {
        // SAFETY: an ordinary registered block's red zones lie inside its backing block.
        if unsafe { block::red_zones_intact(user, size) } {
            return None;
        }
        (
            (user - LEFT_CANARY, user),
            (user + size, user + right_end(size)),
        )
    };
    let bytes = |(a, b): (usize, usize)| {
        // Callers check a freed guarded block only once its protection is lifted.
        // SAFETY: red zones of a registered block lie inside its backing block and are
        // readable (a live guarded block's data pages are not protected).
        unsafe { core::slice::from_raw_parts(a as *const u8, b - a) }
    };
    let l = bytes(left);
    if let Some(i) = first_mismatch(l, CANARY) {
        let last = last_mismatch(l, CANARY).unwrap_or(i);
        return Some(Damage {
            from: left.0 + i,
            to: left.0 + last + 1,
        });
    }
    let r = bytes(right);
    let i = first_mismatch(r, CANARY)?;
    let last = last_mismatch(r, CANARY).unwrap_or(i);
    Some(Damage {
        from: right.0 + i,
        to: right.0 + last + 1,
    })
}

/// The freed bytes of a quarantined (not protected) block that changed: from the first
/// changed byte to the last, of those poisoned.
#[inline]
fn damaged_freed_bytes(user: usize, h: &Header) -> Option<Damage> {
    let (len, whole) = (h.len(), options().free_fill_max);
    if len <= whole {
        // Most blocks: poisoned whole, one range.
        // SAFETY: the user's bytes of a registered, unprotected block.
        let b = unsafe { core::slice::from_raw_parts(user as *const u8, len) };
        let i = first_mismatch(b, FILL_FREED)?;
        let last = last_mismatch(b, FILL_FREED).unwrap_or(i);
        return Some(Damage {
            from: user + i,
            to: user + last + 1,
        });
    }
    damaged_freed_stripes(user, len, whole)
}

/// [`damaged_freed_bytes`] for a block poisoned whole at its start and in stripes after.
#[inline(never)]
fn damaged_freed_stripes(user: usize, len: usize, whole: usize) -> Option<Damage> {
    let mut damage: Option<Damage> = None;
    for (offset, len) in block::poison_ranges(len, whole) {
        // SAFETY: poisoned bytes of the user's bytes of a registered, unprotected block.
        let b = unsafe { core::slice::from_raw_parts((user + offset) as *const u8, len) };
        if let Some(i) = first_mismatch(b, FILL_FREED) {
            let last = last_mismatch(b, FILL_FREED).unwrap_or(i);
            let from = damage.map_or(user + offset + i, |d| d.from);
            damage = Some(Damage {
                from,
                to: user + offset + last + 1,
            });
        }
    }
    damage
}

/// Poisons the user's bytes of a freed block (see [`block::poison_ranges`]).
///
/// # Safety
/// The block at `user` is claimed by the caller and its user's bytes are writable.
#[inline]
unsafe fn poison(user: usize, h: &Header) {
    let (len, whole) = (h.len(), options().free_fill_max);
    if len <= whole {
        // SAFETY: the block's user's bytes (per the contract).
        unsafe { core::ptr::write_bytes(user as *mut u8, FILL_FREED, len) };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { poison_stripes(user, len, whole) };
}

/// [`poison`] for a block poisoned whole at its start and in stripes after.
///
/// # Safety
/// As for [`poison`], with `len` the block's size.
#[inline(never)]
unsafe fn poison_stripes(user: usize, len: usize, whole: usize) {
    for (offset, len) in block::poison_ranges(len, whole) {
        let at = (user + offset) as *mut u8;
        if len == block::STRIPE {
            // SAFETY: a stripe inside the block (per the contract); one unaligned store
            // of a constant size instead of a `memset` call.
            unsafe {
                at.cast::<[u8; block::STRIPE]>()
                    .write_unaligned([FILL_FREED; block::STRIPE])
            };
        } else {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(at, FILL_FREED, len) };
        }
    }
}

/// Where a damage check runs, for the report.
#[derive(Clone, Copy)]
pub enum Found {
    Free(&'static str),
    Quarantine,
    Exit,
}

impl Found {
    fn text(self) -> String {
        match self {
            Found::Free(api) => format!("found at {api}"),
            Found::Quarantine => "found when the block left quarantine".into(),
            Found::Exit => "found at exit".into(),
        }
    }
}

fn report_red_zone(user: usize, h: &Header, d: &Damage, at: Found, stack: Option<u32>) {
    let tid = threads::current();
    let mut r = Report::new(
        "heap-buffer-overflow",
        &format!(
            "heap-buffer-overflow on address {:#x} in thread T{tid} ({}: the red zone was overwritten)",
            d.from,
            at.text()
        ),
    );
    r.line(&format!(
        "WRITE of size {} at {:#x} (the write itself happened earlier{})",
        d.to - d.from,
        d.from,
        if stack.is_some() {
            "; the stack is where it was found"
        } else {
            ""
        }
    ));
    if let Some(s) = stack {
        r.stack_id(s);
    }
    r.location(d.from, user, h.len());
    r.block_history(h, h.state() != LIVE);
    r.emit();
}

fn report_freed_write(user: usize, h: &Header, d: &Damage, at: Found) {
    let mut r = Report::new(
        "heap-use-after-free",
        &format!(
            "heap-use-after-free on address {:#x} ({}: freed memory was changed)",
            d.from,
            at.text()
        ),
    );
    r.line(&format!(
        "WRITE of size {} at {:#x} (after the free; the write itself happened earlier)",
        d.to - d.from,
        d.from
    ));
    r.location(d.from, user, h.len());
    r.block_history(h, true);
    r.emit();
}

/// Describes an address that is no block's start: a block containing it, if any (then
/// true).
fn describe_interior(r: &mut Report, p: usize) -> bool {
    let Some((user, h)) = registry::containing(p, extent) else {
        return false;
    };
    let h = header(h);
    if !h.valid_for(user) {
        return false;
    }
    r.location(p, user, h.len());
    r.block_history(h, h.state() != LIVE);
    true
}

fn report_double_free(p: usize, h: &Header, stack: u32) {
    let tid = threads::current();
    let mut r = Report::new(
        "double-free",
        &format!("attempting double-free on {p:#x} in thread T{tid}:"),
    );
    r.stack_id(stack);
    r.location(p, p, h.len());
    r.block_history(h, true);
    r.emit();
}

fn report_bad_free(p: usize, stack: u32, foreign: Option<&str>) {
    let tid = threads::current();
    let mut r = Report::new(
        "bad-free",
        &format!("attempting free on address which was not malloc()-ed: {p:#x} in thread T{tid}"),
    );
    r.stack_id(stack);
    // A block containing the address, if any: also for an address the backing disowns,
    // which may still lie inside one of our blocks (the engine finds a block only from
    // its first segment).
    let described = describe_interior(&mut r, p);
    if let (Some(api), false) = (foreign, described) {
        r.line(&format!(
            "{p:#x} is not heap memory (a stack, global or unmapped address passed to {api})"
        ));
    }
    r.emit();
}

/// Frees the block at `p` (the `free` entry point's body; `api` names the call).
pub fn free(p: usize, kind: Kind, size: usize, stack: u32, tid: u16, api: &'static str) {
    match claim(p) {
        Claim::Mine(h) => finish_free(p, header(h), Some(kind), size, stack, tid, api),
        Claim::Freed(h) => report_double_free(p, header(h), stack),
        Claim::Unknown => report_bad_free(p, stack, None),
    }
}

/// The rest of a free once the block is claimed: checks, poison, quarantine.
fn finish_free(
    user: usize,
    h: &Header,
    kind: Option<Kind>,
    size: usize,
    stack: u32,
    tid: u16,
    api: &'static str,
) {
    if let Some(kind) = kind {
        if kind != h.kind() {
            let mut r = Report::new(
                "alloc-dealloc-mismatch",
                &format!(
                    "alloc-dealloc-mismatch ({} vs {}) on {user:#x}",
                    h.kind().alloc_name(),
                    kind.free_name()
                ),
            );
            r.stack_id(stack);
            r.location(user, user, h.len());
            r.line(&format!("allocated by thread T{} here:", h.alloc_tid));
            r.stack_id(h.alloc_stack);
            r.hint("if you don't care about these errors you may suppress them with a line 'alloc-dealloc-mismatch:PATTERN' in MEMWARD_CHECK_SUPPRESSIONS");
            r.emit();
        } else if size != 0 && size != h.len() {
            let mut r = Report::new(
                "new-delete-type-mismatch",
                &format!(
                    "new-delete-type-mismatch on {user:#x} in thread T{}:",
                    threads::current()
                ),
            );
            r.line("  object passed to delete has wrong type:");
            r.line(&format!(
                "  size of the allocated type:   {} bytes;",
                h.len()
            ));
            r.line(&format!("  size of the deallocated type: {size} bytes."));
            r.stack_id(stack);
            r.location(user, user, h.len());
            r.line(&format!("allocated by thread T{} here:", h.alloc_tid));
            r.stack_id(h.alloc_stack);
            r.emit();
        }
    }
    if let Some(d) = damaged_red_zones(user, h) {
        report_red_zone(user, h, &d, Found::Free(api), Some(stack));
    }
    h.set_freed_by(stack, tid);
    LIVE_BYTES.change(-(h.len() as isize), tid);
    let guarded = h.flags() & GUARDED != 0;
    if !(h.flags() & ARMED != 0 && guard::protect_freed(user, h)) {
        // SAFETY: the user's bytes of the claimed block, writable (an unarmed guarded
        // block has no protection left).
        unsafe { poison(user, h) };
        if guarded {
            // A fault handler on another thread may disarm a guarded block meanwhile.
            h.flags.fetch_or(POISONED, Ordering::AcqRel);
        } else {
            // Only the thread that claimed an ordinary block writes its flags: a store,
            // not a locked instruction.
            h.flags.store(h.flags() | POISONED, Ordering::Release);
        }
    }
    h.set_state(QUARANTINED);
    let cost = if guarded {
        let (_, _, end) = guard::regions(user, h);
        end - guard::base(user, h)
    } else {
        user - base_of(user, h) + right_end(h.len())
    };
    let hp = h as *const Header as usize;
    let limit = quarantine::bound(LIVE_BYTES.load(), options().quarantine_bytes);
    quarantine::push(user, hp, cost, limit, |u, hq| {
        release(u, header(hq), Found::Quarantine)
    });
}

/// Where the backing block of the block at `user` starts.
fn base_of(user: usize, h: &Header) -> usize {
    if h.flags() & GUARDED != 0 {
        guard::base(user, h)
    } else if h.flags() & PAGE_PREFIX != 0 {
        user - guard::page()
    } else {
        user - block::round_up(HEADER + LEFT_CANARY, 1 << h.align_log2)
    }
}

/// Checks a block leaving quarantine and gives its memory back.
fn release(user: usize, h: &Header, at: Found) {
    let guarded = h.flags() & GUARDED != 0;
    if guarded {
        guard::disarm(user, h);
    }
    // A protected block could not be written; an unprotected one shows its writes.
    if let Some(d) = damaged_red_zones(user, h) {
        report_red_zone(user, h, &d, at, None);
    } else if h.flags() & POISONED != 0 {
        if let Some(d) = damaged_freed_bytes(user, h) {
            report_freed_write(user, h, &d, at);
        }
    }
    registry::remove(h);
    let base = base_of(user, h);
    // SAFETY: the header is ours (the block is out of the registry and the quarantine);
    // invalidating it keeps stale pointers from being taken for the block.
    unsafe { (*(h as *const Header as *mut Header)).invalidate() };
    // SAFETY: `base` is the backing block this block was cut from; nothing refers to it
    // any more (the registry forgot it, its protections are lifted).
    unsafe { (backing().free)(base as *mut u8) };
}

/// `realloc` (the entry point's body).
///
/// # Safety
/// Inside an entry point; `align` is a power of two of at least 16.
pub unsafe fn realloc(
    p: usize,
    size: usize,
    align: usize,
    stack: u32,
    tid: u16,
    guard_picked: bool,
) -> *mut u8 {
    match claim(p) {
        Claim::Mine(h) => {
            let h = header(h);
            // SAFETY: inside an entry point, as our caller.
            let new = unsafe { alloc(size, align, false, Kind::Malloc, stack, tid, guard_picked) };
            if new.is_null() {
                h.set_state(LIVE);
                return new;
            }
            // SAFETY: both blocks are live and distinct; `min` keeps within each.
            unsafe { core::ptr::copy_nonoverlapping(p as *const u8, new, h.len().min(size)) };
            finish_free(p, h, None, 0, stack, tid, "realloc");
            new
        }
        other => {
            match other {
                Claim::Freed(h) => report_double_free(p, header(h), stack),
                _ => report_bad_free(p, stack, None),
            }
            // Keeping going: the old block is left alone, a new one is made.
            // SAFETY: inside an entry point, as our caller.
            unsafe { alloc(size, align, false, Kind::Malloc, stack, tid, guard_picked) }
        }
    }
}

/// `malloc_usable_size` (the entry point's body): the requested size, so that programs
/// that use the whole usable size stay inside the block.
pub fn usable_size(p: usize) -> usize {
    let size = registry::lookup(p)
        .filter(|h| h.state() == LIVE)
        .map(|h| h.len());
    if let Some(size) = size {
        return size;
    }
    let tid = threads::current();
    let mut r = Report::new(
        "bad-malloc_usable_size",
        &format!(
            "attempting to call malloc_usable_size() for pointer which is not owned: {p:#x} in thread T{tid}"
        ),
    );
    r.stack_id(stacks::capture().0);
    let _ = describe_interior(&mut r, p);
    r.emit();
    0
}

/// A free of memory the backing does not manage.
pub fn foreign_free(p: usize, api: &'static str) {
    report_bad_free(p, stacks::capture().0, Some(api));
}

/// At exit: red zones of every block, and the poison of every unprotected freed one.
pub fn check_all_blocks() {
    for (user, h) in registry::all_blocks() {
        let h = header(h);
        if !h.valid_for(user) {
            continue;
        }
        let state = h.state();
        let armed_freed = state != LIVE && h.flags() & ARMED != 0;
        if armed_freed {
            continue;
        }
        if let Some(d) = damaged_red_zones(user, h) {
            report_red_zone(user, h, &d, Found::Exit, None);
        } else if state == QUARANTINED && h.flags() & POISONED != 0 {
            if let Some(d) = damaged_freed_bytes(user, h) {
                report_freed_write(user, h, &d, Found::Exit);
            }
        }
    }
}

/// A fault's stack, for the signal handler.
pub fn fault_stack(ip: u64, sp: u64, bp: u64) -> Stack {
    Stack {
        frames: stacks::capture_from(ip, sp, bp, threads::stack_top()),
        first_is_pc: true,
    }
}
