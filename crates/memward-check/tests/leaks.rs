//! The leak scan on real memory: blocks come from a test backing (this binary's global
//! allocator, one `mmap`ed region whose `owns` is exact), and each scenario runs in a
//! child process of its own (this binary again, one test selected), so no other test's
//! threads or leftovers take part.
//!
//! A block must never be reported while the program can still reach it: through a
//! global, the stack of another live thread, a register of another thread, thread-local
//! storage, a chain of heap blocks, an interior pointer, memory the program mapped
//! itself, or a pointer that another thread keeps moving while the scan runs. Each
//! scenario also has control blocks that nothing reaches, which must be reported, so a
//! scan that found everything reachable would fail too.
//!
//! The test code never keeps a block's address in its own frames: blocks are made and
//! linked by `#[inline(never)]` helpers that return the address masked, and the stack
//! below the test's frame is cleared before the scan, so that a stale copy of an address
//! cannot keep a control block alive.

use memward_check::leaks::{find_leaks, LeakKind, LiveBlock, LiveBlocks};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// ---- the test backing ------------------------------------------------------------------

const REGION: usize = 1 << 34;
static BASE: AtomicUsize = AtomicUsize::new(0);
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A bump allocator over one reserved region; frees are ignored.
struct Backing;

// SAFETY: hands out disjoint, suitably aligned ranges of one mapping that is never
// unmapped; null when it is exhausted.
unsafe impl GlobalAlloc for Backing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = region();
        if base == 0 {
            return core::ptr::null_mut();
        }
        let mut cur = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if end > REGION {
                return core::ptr::null_mut();
            }
            match NEXT.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

fn region() -> usize {
    let base = BASE.load(Ordering::Acquire);
    if base != 0 {
        return base;
    }
    // SAFETY: a fresh anonymous reservation; pages cost memory only when touched.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            REGION,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return 0;
    }
    match BASE.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => p as usize,
        Err(won) => {
            // SAFETY: our own mapping, never handed out.
            unsafe { libc::munmap(p, REGION) };
            won
        }
    }
}

#[global_allocator]
static BACKING: Backing = Backing;

fn owns(p: usize) -> bool {
    let base = BASE.load(Ordering::Acquire);
    p >= base && p - base < REGION
}

// ---- blocks, kept out of the test's own frames -----------------------------------------

const MASK: usize = 0x5555_0000_0000_5555;
static BLOCKS: Mutex<Vec<LiveBlock>> = Mutex::new(Vec::new());

/// A zeroed block of `size` bytes tagged `tag` (its "stack id"); returns its address
/// masked. A slack of 64 bytes follows it, so one past its end is no other block.
#[inline(never)]
fn block(size: usize, tag: u64) -> usize {
    let layout = Layout::from_size_align(size + 64, 16).unwrap();
    // SAFETY: a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
    assert_ne!(p, 0);
    BLOCKS.lock().unwrap().push(LiveBlock {
        start: p,
        size,
        stack: tag,
    });
    black_box(p ^ MASK)
}

/// Writes `to + to_offset` into the word at `from + at`.
#[inline(never)]
fn link(from: usize, at: usize, to: usize, to_offset: usize) {
    let slot = ((from ^ MASK) + at) as *mut usize;
    // SAFETY: `from` is a block of at least `at + 8` bytes (the callers' sizes).
    unsafe { slot.write_volatile((to ^ MASK) + to_offset) };
}

#[inline(never)]
fn unmask(masked: usize) -> usize {
    black_box(masked) ^ MASK
}

/// Clears 256 KiB of stack below the caller, where dead frames of earlier calls lie.
#[inline(never)]
fn clear_stack_below() {
    let mut junk = [0u8; 256 << 10];
    black_box(&mut junk);
}

/// Makes the statics the scenarios store pointers in escape, so that the compiler keeps
/// every store to them (a store to a private static nothing reads may be dropped).
fn keep_statics() {
    black_box((&GLOBAL, &INTERIOR, &ARENA, &JUGGLED));
    TLS_SLOT.with(|slot| {
        black_box(slot as *const _);
    });
}

/// Scans and prints `LEAK <tag> <Direct|Indirect>` per leaked block, then the number of
/// threads that did not stop.
#[inline(never)]
fn scan_and_print() {
    let blocks = BLOCKS.lock().unwrap().clone();
    // SAFETY: the blocks are live memory of the region, never freed; no block is made
    // or dropped while the scan runs.
    let leaks = unsafe { find_leaks(&blocks, &owns) }.unwrap();
    let mut lines: Vec<String> = leaks
        .leaked()
        .map(|(b, k)| format!("LEAK {} {k:?}", b.stack))
        .collect();
    lines.sort();
    for l in lines {
        println!("{l}");
    }
    println!("UNSUSPENDED {}", leaks.unsuspended_threads().len());
}

#[inline(never)]
fn scan() {
    clear_stack_below();
    scan_and_print();
}

// ---- running a scenario in a child -----------------------------------------------------

const CHILD: &str = "MEMWARD_LEAKS_TEST_CHILD";

/// In the child, runs `scenario`; in the parent, runs this test in a child and returns
/// the lines it printed.
fn in_child(name: &str, scenario: fn()) -> Option<Vec<String>> {
    if std::env::var_os(CHILD).is_some() {
        keep_statics();
        // Past the line libtest has started ("test NAME ... ").
        println!();
        scenario();
        return None;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout.lines().map(str::to_owned).collect())
}

/// The child's `LEAK` and `UNSUSPENDED` lines are `want`.
fn expect(lines: Option<Vec<String>>, want: &[&str]) {
    if let Some(lines) = lines {
        let got: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("LEAK ") || l.starts_with("UNSUSPENDED "))
            .collect();
        assert_eq!(got, want);
    }
}

/// Runs `hold` on a new thread and waits until it says it holds its block; the thread
/// ends when `release` is set.
fn holder(
    hold: impl FnOnce(&AtomicBool, &AtomicU32) + Send + 'static,
) -> (Arc<AtomicBool>, Arc<AtomicU32>, std::thread::JoinHandle<()>) {
    let ready = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicU32::new(0));
    let (r, g) = (ready.clone(), release.clone());
    let t = std::thread::spawn(move || hold(&r, &g));
    while !ready.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    (ready, release, t)
}

fn wait_for_release(release: &AtomicU32) {
    while release.load(Ordering::Acquire) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn finish(release: &AtomicU32, t: std::thread::JoinHandle<()>) {
    release.store(1, Ordering::Release);
    // SAFETY: FUTEX_WAKE only uses the address as a key (`hold_in_r12` waits on it).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            release.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
    t.join().unwrap();
}

// ---- scenarios -------------------------------------------------------------------------

static GLOBAL: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_pointer_in_a_global_keeps_its_block() {
    expect(
        in_child("a_pointer_in_a_global_keeps_its_block", || {
            GLOBAL.store(unmask(block(100, 1)), Ordering::Relaxed);
            block(100, 2);
            scan();
        }),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

#[test]
fn a_pointer_on_another_threads_stack_keeps_its_block() {
    expect(
        in_child("a_pointer_on_another_threads_stack_keeps_its_block", || {
            let kept = block(48, 1);
            block(48, 2);
            let (_, release, t) = holder(move |ready, release| hold_on_stack(kept, ready, release));
            scan();
            finish(&release, t);
        }),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

#[inline(never)]
fn hold_on_stack(masked: usize, ready: &AtomicBool, release: &AtomicU32) {
    let slot = [unmask(masked)];
    black_box(&slot);
    ready.store(true, Ordering::Release);
    wait_for_release(release);
    black_box(&slot);
}

#[test]
fn a_pointer_only_in_another_threads_register_keeps_its_block() {
    expect(
        in_child(
            "a_pointer_only_in_another_threads_register_keeps_its_block",
            || {
                let kept = block(32, 1);
                block(32, 2);
                let (_, release, t) =
                    holder(move |ready, release| hold_in_r12(kept, ready, release));
                scan();
                finish(&release, t);
            },
        ),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

/// Unmasks the address into `r12` inside one `asm!` block and waits there, in `futex`
/// calls, until released: the address exists in no memory, only in the register (and
/// in the signal frame the stop signal pushes, below the stack pointer).
fn hold_in_r12(masked: usize, ready: &AtomicBool, release: &AtomicU32) {
    ready.store(true, Ordering::Release);
    // SAFETY: loops on FUTEX_WAIT(release, 0) until `release` is non-zero; `r12` is
    // declared clobbered and cleared before the block ends; rax, rcx and r11 are the
    // registers `syscall` clobbers.
    unsafe {
        core::arch::asm!(
            "mov r12, {masked}",
            "xor r12, {mask}",
            "2:",
            "mov eax, 202",
            "syscall",
            "cmp dword ptr [rdi], 0",
            "je 2b",
            "xor r12, r12",
            masked = in(reg) masked,
            mask = in(reg) MASK,
            in("rdi") release.as_ptr(),
            in("rsi") libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            in("rdx") 0,
            in("r10") 0,
            out("rax") _,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        )
    };
}

thread_local! {
    static TLS_SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[test]
fn a_pointer_in_thread_local_storage_keeps_its_block() {
    expect(
        in_child("a_pointer_in_thread_local_storage_keeps_its_block", || {
            // In another thread's TLS and in the scanning thread's own.
            let theirs = block(24, 1);
            store_in_tls(block(24, 2));
            block(24, 3);
            let (_, release, t) = holder(move |ready, release| {
                store_in_tls(theirs);
                ready.store(true, Ordering::Release);
                wait_for_release(release);
                black_box(TLS_SLOT.get());
            });
            scan();
            finish(&release, t);
        }),
        &["LEAK 3 Direct", "UNSUSPENDED 0"],
    );
}

#[inline(never)]
fn store_in_tls(masked: usize) {
    TLS_SLOT.set(unmask(masked));
}

// ---- threads that have exited ----------------------------------------------------------

/// Keeps the block's address in a frame 8 KiB down the stack until it returns: the frame
/// stays behind in the thread's stack, which glibc keeps mapped after the thread exits.
/// Deep enough that the thread's exit path (destructors, glibc's cleanup) does not write
/// over it, not so deep that glibc discards it: an exiting thread gives back with
/// `MADV_DONTNEED` its stack from 16 KiB below its last frame down.
#[inline(never)]
fn leave_in_frame(masked: usize) {
    let below = [0u8; 8 << 10];
    black_box(&below);
    leave_here(masked);
}

#[inline(never)]
fn leave_here(masked: usize) {
    let slot = [unmask(masked); 4];
    black_box(&slot);
}

/// Threads of this process, from `/proc/self/task`.
fn task_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_block_only_an_exited_threads_stack_points_to_is_leaked() {
    expect(
        in_child(
            "a_block_only_an_exited_threads_stack_points_to_is_leaked",
            || {
                GLOBAL.store(unmask(block(40, 1)), Ordering::Relaxed);
                let dropped = block(40, 2);
                let t = std::thread::spawn(move || {
                    memward_check::leaks::remember_thread_stack();
                    leave_in_frame(dropped);
                });
                t.join().unwrap();
                scan();
            },
        ),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

extern "C" fn return_block(masked: *mut libc::c_void) -> *mut libc::c_void {
    memward_check::leaks::remember_thread_stack();
    leave_in_frame(masked as usize);
    unmask(masked as usize) as *mut libc::c_void
}

#[test]
fn an_exited_threads_descriptor_is_still_read() {
    expect(
        in_child("an_exited_threads_descriptor_is_still_read", || {
            // The value an exited thread returned waits in its descriptor (in its
            // stack mapping, above the dead frames) until it is joined.
            let returned = block(24, 1);
            block(24, 2);
            let before = task_count();
            let mut t: libc::pthread_t = 0;
            // SAFETY: `return_block` has the start routine's ABI and takes its
            // argument by value.
            let rc = unsafe {
                libc::pthread_create(
                    &mut t,
                    core::ptr::null(),
                    return_block,
                    returned as *mut libc::c_void,
                )
            };
            assert_eq!(rc, 0);
            while task_count() > before {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            scan();
            let mut result = core::ptr::null_mut();
            // SAFETY: `t` is a joinable thread not joined yet.
            assert_eq!(unsafe { libc::pthread_join(t, &mut result) }, 0);
            assert_eq!(result as usize, unmask(returned));
        }),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

#[test]
fn a_new_thread_on_an_exited_threads_stack_keeps_what_it_holds() {
    expect(
        in_child(
            "a_new_thread_on_an_exited_threads_stack_keeps_what_it_holds",
            || {
                let kept = block(72, 1);
                let dropped = block(72, 2);
                // The same stack size: glibc hands the cached stack to the next thread.
                let spawn = || std::thread::Builder::new().stack_size(256 << 10);
                let first = spawn()
                    .spawn(move || {
                        memward_check::leaks::remember_thread_stack();
                        leave_in_frame(dropped);
                        memward_profile::shared::thread_stack()
                    })
                    .unwrap();
                let first_stack = first.join().unwrap();
                let ready = Arc::new(AtomicBool::new(false));
                let release = Arc::new(AtomicU32::new(0));
                let (r, g) = (ready.clone(), release.clone());
                let second = spawn()
                    .spawn(move || {
                        memward_check::leaks::remember_thread_stack();
                        let stack = memward_profile::shared::thread_stack();
                        hold_on_stack(kept, &r, &g);
                        stack
                    })
                    .unwrap();
                while !ready.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                scan();
                release.store(1, Ordering::Release);
                let second_stack = second.join().unwrap();
                assert_eq!(first_stack, second_stack, "glibc did not reuse the stack");
            },
        ),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

#[test]
fn chains_through_heap_blocks_and_interior_pointers_are_followed() {
    expect(
        in_child(
            "chains_through_heap_blocks_and_interior_pointers_are_followed",
            || {
                // GLOBAL -> a -> b (+8) -> c (+63, its last byte).
                let (a, b, c) = (block(64, 1), block(64, 2), block(64, 3));
                link(a, 0, b, 8);
                link(b, 16, c, 63);
                GLOBAL.store(unmask(a) + 24, Ordering::Relaxed);
                // d -> e: unreached; f: pointed to one past its end only.
                let (d, e, f) = (block(64, 4), block(32, 5), block(64, 6));
                link(d, 8, e, 0);
                INTERIOR.store(unmask(f) + 64, Ordering::Relaxed);
                scan();
            },
        ),
        &[
            "LEAK 4 Direct",
            "LEAK 5 Indirect",
            "LEAK 6 Direct",
            "UNSUSPENDED 0",
        ],
    );
}

static INTERIOR: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_leaked_cycle_has_one_direct_leak() {
    expect(
        in_child("a_leaked_cycle_has_one_direct_leak", || {
            let (a, b, c) = (block(16, 1), block(16, 2), block(16, 3));
            link(a, 0, b, 0);
            link(b, 0, a, 0);
            link(c, 8, c, 0);
            scan();
        }),
        &[
            "LEAK 1 Direct",
            "LEAK 2 Indirect",
            "LEAK 3 Direct",
            "UNSUSPENDED 0",
        ],
    );
}

#[test]
fn a_pointer_in_memory_the_program_mapped_keeps_its_block() {
    expect(
        in_child(
            "a_pointer_in_memory_the_program_mapped_keeps_its_block",
            || {
                // SAFETY: a fresh anonymous mapping, an arena of the program's own.
                let arena = unsafe {
                    libc::mmap(
                        core::ptr::null_mut(),
                        1 << 20,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                } as usize;
                ARENA.store(arena ^ MASK, Ordering::Relaxed);
                let kept = block(80, 1);
                block(80, 2);
                put_in_arena(kept);
                scan();
            },
        ),
        &["LEAK 2 Direct", "UNSUSPENDED 0"],
    );
}

static ARENA: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn put_in_arena(masked: usize) {
    let arena = unmask(ARENA.load(Ordering::Relaxed)) as *mut usize;
    // SAFETY: the arena is a mapping of 1 MiB; word 1000 is inside.
    unsafe { arena.add(1000).write_volatile(unmask(masked)) };
}

#[test]
fn a_pointer_another_thread_keeps_moving_is_never_missed() {
    expect(
        in_child(
            "a_pointer_another_thread_keeps_moving_is_never_missed",
            || {
                let kept = block(40, 1);
                let (_, release, t) = holder(move |ready, release| juggle(kept, ready, release));
                for _ in 0..30 {
                    scan();
                }
                finish(&release, t);
            },
        ),
        &["UNSUSPENDED 0"; 30],
    );
}

static JUGGLED: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Moves the only pointer to a block between two globals, through a register, as fast
/// as it can: a scan that let this thread run could read the first global after the
/// pointer left it and the second before it arrived.
#[inline(never)]
fn juggle(masked: usize, ready: &AtomicBool, release: &AtomicU32) {
    JUGGLED[0].store(unmask(masked), Ordering::Relaxed);
    ready.store(true, Ordering::Release);
    let mut from = 0;
    while release.load(Ordering::Relaxed) == 0 {
        let p = JUGGLED[from].swap(0, Ordering::Relaxed);
        for _ in 0..100 {
            std::hint::spin_loop();
        }
        JUGGLED[1 - from].store(p, Ordering::Relaxed);
        from = 1 - from;
    }
}

#[test]
fn a_thread_that_blocks_the_stop_signal_is_named_and_its_stack_still_scanned() {
    expect(
        in_child(
            "a_thread_that_blocks_the_stop_signal_is_named_and_its_stack_still_scanned",
            || {
                let kept = block(56, 1);
                block(56, 2);
                let (_, release, t) = holder(move |ready, release| {
                    // SAFETY: blocks SIGPWR on this thread only.
                    unsafe {
                        let mut set: libc::sigset_t = core::mem::zeroed();
                        libc::sigemptyset(&mut set);
                        libc::sigaddset(&mut set, libc::SIGPWR);
                        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
                    }
                    hold_on_stack(kept, ready, release);
                });
                scan();
                finish(&release, t);
            },
        ),
        &["LEAK 2 Direct", "UNSUSPENDED 1"],
    );
}

/// Lists the blocks but says there are none beforehand.
struct Understated(Vec<LiveBlock>);

impl LiveBlocks for Understated {
    fn estimate(&self) -> usize {
        0
    }

    fn for_each(&self, f: &mut dyn FnMut(LiveBlock)) {
        self.0.for_each(f)
    }
}

#[test]
fn more_blocks_than_estimated_start_the_scan_over_with_more_room() {
    expect(
        in_child(
            "more_blocks_than_estimated_start_the_scan_over_with_more_room",
            || {
                // 5000 blocks, the first 2500 a chain from GLOBAL; the room for 1024,
                // then 2048, then 4096 blocks runs out.
                let first = block(16, 0);
                let mut prev = first;
                for i in 1..5000 {
                    let b = block(16, i);
                    if i < 2500 {
                        link(prev, 0, b, 0);
                    }
                    prev = b;
                }
                GLOBAL.store(unmask(first), Ordering::Relaxed);
                clear_stack_below();
                let blocks = Understated(BLOCKS.lock().unwrap().clone());
                // SAFETY: as in `scan_and_print`.
                let leaks = unsafe { find_leaks(&blocks, &owns) }.unwrap();
                let direct: Vec<u64> = leaks
                    .leaked()
                    .filter(|l| l.1 == LeakKind::Direct)
                    .map(|l| l.0.stack)
                    .collect();
                println!(
                    "LEAK {} blocks, {} direct, tags {:?}..{:?}",
                    leaks.leaked().count(),
                    direct.len(),
                    direct.iter().min(),
                    direct.iter().max()
                );
            },
        ),
        &["LEAK 2500 blocks, 2500 direct, tags Some(2500)..Some(4999)"],
    );
}

// ---- blocks of memward's engine -------------------------------------------------------

static ENGINE_BLOCKS: Mutex<Vec<LiveBlock>> = Mutex::new(Vec::new());

/// Where the checker's user bytes start in the engine block it takes (its header and
/// left red zone come first).
const HEADER: usize = 32;

/// A block of `size` user bytes laid out as the checker lays them out in memward's
/// engine (after a header), tagged `tag`; its user address masked.
#[inline(never)]
fn engine_block(size: usize, tag: u64) -> usize {
    let p = memward::raw::malloc(HEADER + size) as usize;
    assert_ne!(p, 0);
    // SAFETY: a fresh block of `HEADER + size` bytes.
    unsafe { core::ptr::write_bytes(p as *mut u8, 0, HEADER + size) };
    ENGINE_BLOCKS.lock().unwrap().push(LiveBlock {
        start: p + HEADER,
        size,
        stack: tag,
    });
    black_box((p + HEADER) ^ MASK)
}

#[inline(never)]
fn engine_free(masked: usize) {
    let user = unmask(masked);
    ENGINE_BLOCKS.lock().unwrap().retain(|b| b.start != user);
    // SAFETY: a live block of the engine, freed once.
    unsafe { memward::raw::free((user - HEADER) as *mut u8) };
}

#[test]
fn blocks_of_memwards_engine_are_judged_by_reachability_alone() {
    expect(
        in_child(
            "blocks_of_memwards_engine_are_judged_by_reachability_alone",
            || {
                // The engine's own state must neither hide a leak nor count as a root.
                // Its thread heaps live in mappings outside its segments (root memory
                // for the scan) and point at the start of engine blocks (a page's first
                // block, a huge block): the checker's user bytes start after its header,
                // so those pointers do not point into checker blocks. Small, medium,
                // large (1 MiB) and huge (3 MiB) blocks.
                engine_block(3 << 20, 5);
                engine_block(1 << 20, 6);
                let kept = engine_block(200, 1);
                GLOBAL.store(unmask(kept), Ordering::Relaxed);
                let lost = engine_block(100, 2);
                link(lost, 0, engine_block(48, 3), 0);
                // Neighbours freed after the leaked ones: free lists point near them.
                for i in 0..50 {
                    engine_free(engine_block(100, 100 + i));
                }
                let big = engine_block(1 << 20, 4);
                link(kept, 8, big, 4096);
                clear_stack_below();
                let blocks = ENGINE_BLOCKS.lock().unwrap().clone();
                let owns_either = |p: usize| owns(p) || memward::raw::owns(p as *const u8);
                // SAFETY: the blocks are live blocks of the engine, not freed meanwhile.
                let leaks = unsafe { find_leaks(&blocks, &owns_either) }.unwrap();
                let mut lines: Vec<String> = leaks
                    .leaked()
                    .map(|(b, k)| format!("LEAK {} {k:?}", b.stack))
                    .collect();
                lines.sort();
                lines.iter().for_each(|l| println!("{l}"));
            },
        ),
        &[
            "LEAK 2 Direct",
            "LEAK 3 Indirect",
            "LEAK 5 Direct",
            "LEAK 6 Direct",
        ],
    );
}

// ---- the report -----------------------------------------------------------------------

/// A function to name in a stack: its first instruction.
#[inline(never)]
fn allocation_site() -> u64 {
    7
}

#[test]
fn the_report_has_leak_sanitizers_layout_with_symbolised_stacks() {
    let Some(lines) = in_child(
        "the_report_has_leak_sanitizers_layout_with_symbolised_stacks",
        || {
            let (a, b) = (block(100, 1), block(48, 2));
            link(a, 0, b, 0);
            clear_stack_below();
            let blocks = BLOCKS.lock().unwrap().clone();
            // SAFETY: as in `scan_and_print`.
            let leaks = unsafe { find_leaks(&blocks, &owns) }.unwrap();
            let mut sym = memward_symbolize::Symbolizer::for_this_process().unwrap();
            // Both stacks: one "return address" just past the first byte of
            // `allocation_site` (stacks are looked up at address - 1).
            black_box(allocation_site());
            let site = allocation_site as fn() -> u64 as usize as u64 + 1;
            print!("{}", leaks.report(&mut |_| vec![site], &mut sym));
        },
    ) else {
        return;
    };
    let at = lines
        .iter()
        .position(|l| l.ends_with("==ERROR: memward: detected memory leaks"))
        .unwrap_or_else(|| panic!("no header in {lines:#?}"));
    assert_eq!(lines[at - 1], "=".repeat(65));
    assert!(
        lines[at].starts_with("==")
            && lines[at][2..]
                .split("==")
                .next()
                .unwrap()
                .parse::<u32>()
                .is_ok()
    );
    let rest = &lines[at + 1..];
    assert_eq!(rest[0], "");
    assert_eq!(
        rest[1],
        "Direct leak of 100 byte(s) in 1 object(s) allocated from:"
    );
    let frame = &rest[2];
    assert!(frame.starts_with("    #0 0x"), "{frame}");
    assert!(frame.contains(" in leaks::allocation_site "), "{frame}");
    assert!(frame.contains("tests/leaks.rs:"), "{frame}");
    assert_eq!(rest[3], "");
    assert_eq!(
        rest[4],
        "Indirect leak of 48 byte(s) in 1 object(s) allocated from:"
    );
    assert_eq!(rest[5], *frame);
    assert_eq!(rest[6], "");
    assert_eq!(
        rest[7],
        "SUMMARY: memward: 148 byte(s) leaked in 2 allocation(s)."
    );
}

// ---- the checker's exit handler, end to end ------------------------------------------

unsafe fn region_alloc(size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size.max(1), align) else {
        return core::ptr::null_mut();
    };
    // SAFETY: a non-zero size.
    unsafe { std::alloc::alloc(layout) }
}

unsafe fn region_free(_p: *mut u8) {}

/// The checker over this binary's region: `owns` is exact, as the engine's is.
static REGION_BACKING: memward_check::Backing = memward_check::Backing {
    alloc: region_alloc,
    alloc_at: None,
    free: region_free,
    owns: |p| owns(p as usize),
    readable_from: |_| usize::MAX,
    unchecked: |f| f(),
};

/// A block from the checker (its allocation stack passes through this function), its
/// address returned masked.
#[inline(never)]
fn checked_block(size: usize) -> usize {
    // SAFETY: the checker is configured; nothing else of the checker runs on this thread.
    let p = unsafe { memward_check::alloc(size, 16, false, memward_check::Kind::Malloc) };
    assert!(!p.is_null());
    black_box(p as usize ^ MASK)
}

/// Runs `name` in a child with `MEMWARD_CHECK=1` and `env`; its exit code and stderr.
fn run_checked(name: &str, env: &[(&str, &str)]) -> Option<(Option<i32>, String)> {
    if std::env::var_os(CHILD).is_some() {
        return None;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("MEMWARD_CHECK", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The checker's scenario: one block kept by a global, one leaked with another it points
/// to; the report comes from the checker's exit handler when the process exits.
fn leaky_program() {
    assert!(memward_check::configure_from_env(&REGION_BACKING));
    keep_statics();
    GLOBAL.store(unmask(checked_block(64)), Ordering::Relaxed);
    let lost = checked_block(100);
    link(lost, 0, checked_block(48), 0);
    clear_stack_below();
}

#[test]
fn the_checker_reports_leaks_at_exit() {
    let Some((code, stderr)) = run_checked("the_checker_reports_leaks_at_exit", &[]) else {
        return leaky_program();
    };
    assert_eq!(code, Some(1), "{stderr}");
    let at = stderr
        .find("==ERROR: memward: detected memory leaks\n\n")
        .unwrap_or_else(|| panic!("{stderr}"));
    let report = &stderr[at..];
    assert!(
        report.contains("\nDirect leak of 100 byte(s) in 1 object(s) allocated from:\n    #0 0x"),
        "{report}"
    );
    assert!(
        report.contains("\nIndirect leak of 48 byte(s) in 1 object(s) allocated from:\n    #0 0x"),
        "{report}"
    );
    assert!(report.contains(" in leaks::checked_block "), "{report}");
    assert!(
        report.ends_with("\nSUMMARY: memward: 148 byte(s) leaked in 2 allocation(s).\n"),
        "{report}"
    );
}

#[test]
fn leak_suppressions_and_memward_check_leaks_0_silence_the_report() {
    let dir = std::env::temp_dir().join(format!("memward-leaks-supp-{}", std::process::id()));
    let file = dir.to_str().unwrap().to_owned() + ".supp";
    let name = "leak_suppressions_and_memward_check_leaks_0_silence_the_report";
    if std::env::var_os(CHILD).is_none() {
        std::fs::write(&file, "# ours\nleak:leaks::checked_block\n").unwrap();
    }
    for env in [
        &[("MEMWARD_CHECK_SUPPRESSIONS", file.as_str())][..],
        &[("MEMWARD_CHECK_LEAKS", "0")][..],
    ] {
        let Some((code, stderr)) = run_checked(name, env) else {
            return leaky_program();
        };
        assert_eq!((code, stderr.as_str()), (Some(0), ""));
    }
    let _ = std::fs::remove_file(&file);
}
