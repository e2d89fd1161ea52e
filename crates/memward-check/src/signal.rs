//! The SIGSEGV handler: a fault on a guard page or on a protected freed block becomes a
//! report of the access (heap-buffer-overflow or heap-use-after-free, READ or WRITE, at
//! the faulting instruction, with its stack unwound from the signal context); any other
//! fault goes to the handler that was installed before ours, or to the default action.
//!
//! The handler is installed with `SA_SIGINFO | SA_ONSTACK`: it runs on the thread's
//! alternate signal stack when it has one (the main thread gets a 64 KiB one at
//! configuration if it has none); other threads run it on their own stack, which a heap
//! fault leaves usable. Alternate stacks can be small (Rust's runtime gives each thread
//! one of a few KiB), and unwinding plus formatting needs tens of KiB, so the handler
//! itself only decides whether the fault is ours; the report runs on a 1 MiB stack of the
//! checker's own (`swapcontext`), mapped at installation, one report at a time. That work
//! (unwinding, formatting, writing) runs inside the backing's `unchecked`, so what it
//! allocates is served by the backing and not checked.
//!
//! Whether the access was a write comes from the page-fault error code the kernel saves
//! in the context (`REG_ERR`, bit 1). The access size is not known from a fault (that
//! would need decoding the instruction), so the line reads `READ of unknown size`.
//!
//! Without `MEMWARD_CHECK_KEEP_GOING` the report ends the process. With it, the block's
//! protections are lifted and the handler returns: the access runs again and succeeds,
//! and the block is not watched any more (GWP-ASan's recoverable mode does the same).
//!
//! A program that installs its own SIGSEGV handler after the checker started replaces
//! this one; its guard-page faults then reach the program's handler unreported.

use crate::block::{Header, LIVE};
use crate::checker::{backing, fault_stack, options};
use crate::report::Report;
use crate::{guard, threads};
use memward_profile::shared::SpinLock;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// The handler found at installation.
struct Previous(libc::sigaction);

// SAFETY: a sigaction is plain data (a handler address, flags and a signal mask); it is
// written once before the handler can run and only read afterwards.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

static PREVIOUS: OnceLock<Previous> = OnceLock::new();

const ALT_STACK: usize = 64 * 1024;
const REPORT_STACK: usize = 1 << 20;

/// The report stack's base (0: none), taken by one report at a time.
static REPORT_STACK_BASE: SpinLock<usize> = SpinLock::new(0);

/// The fault being reported, for the function that runs on the report stack.
struct Job {
    addr: usize,
    user: usize,
    header: usize,
    ctx: *mut libc::c_void,
}

static JOB: AtomicPtr<Job> = AtomicPtr::new(core::ptr::null_mut());

/// A stack for the handler, kept for the rest of the process (0 if it cannot be mapped).
fn map_stack(len: usize) -> usize {
    memward_profile::shared::Region::map(len).map_or(0, |r| r.leak().as_mut_ptr() as usize)
}

/// Installs the handler (once) and an alternate stack for the calling thread.
pub fn install() {
    // SAFETY: a zeroed sigaction is a valid value (no handler, empty mask, no flags);
    // every field the kernel reads is then set below.
    let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
    new.sa_sigaction = on_segv as *const () as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sa_mask is a valid sigset_t to initialise; `old` is a valid out-pointer;
    // the handler has the three-argument signature SA_SIGINFO calls.
    unsafe {
        libc::sigemptyset(&mut new.sa_mask);
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(libc::SIGSEGV, &new, &mut old) != 0 {
            return;
        }
        let _ = PREVIOUS.set(Previous(old));
    }
    *REPORT_STACK_BASE.lock() = map_stack(REPORT_STACK);
    install_alt_stack();
}

/// Gives the calling thread an alternate signal stack if it has none.
fn install_alt_stack() {
    // SAFETY: sigaltstack with a null new stack only reads the current one into `cur`.
    let mut cur: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: `cur` is a valid out-pointer.
    if unsafe { libc::sigaltstack(core::ptr::null(), &mut cur) } != 0
        || cur.ss_flags & libc::SS_DISABLE == 0
    {
        return;
    }
    let mem = map_stack(ALT_STACK);
    if mem == 0 {
        return;
    }
    let st = libc::stack_t {
        ss_sp: mem as *mut libc::c_void,
        ss_flags: 0,
        ss_size: ALT_STACK,
    };
    // SAFETY: `st` describes the mapping just made, which is never unmapped.
    unsafe { libc::sigaltstack(&st, core::ptr::null_mut()) };
}

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some((user, header)) = guard::find(addr) {
        // SAFETY: errno is the thread's; saved and restored around the report.
        let errno = unsafe { *libc::__errno_location() };
        let job = Job {
            addr,
            user,
            header,
            ctx,
        };
        let base = REPORT_STACK_BASE.lock();
        JOB.store(&job as *const Job as *mut Job, Ordering::Release);
        if *base == 0 {
            on_report_stack();
        } else {
            // `there` gets the report stack (mapped, used by no one else while `base` is
            // locked) and a return context `here`; when `on_report_stack` returns,
            // uc_link resumes `here`.
            // SAFETY: getcontext initialises `there`, swapcontext fills `here` before
            // switching; `on_report_stack` takes no arguments, as makecontext is told.
            unsafe {
                let mut here: libc::ucontext_t = core::mem::zeroed();
                let mut there: libc::ucontext_t = core::mem::zeroed();
                libc::getcontext(&mut there);
                there.uc_stack.ss_sp = *base as *mut libc::c_void;
                there.uc_stack.ss_size = REPORT_STACK;
                there.uc_link = &mut here;
                libc::makecontext(&mut there, on_report_stack, 0);
                libc::swapcontext(&mut here, &there);
            }
        }
        drop(base);
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
        return;
    }
    chain(sig, info, ctx);
}

/// Reports the fault in `JOB` (on the report stack).
extern "C" fn on_report_stack() {
    // SAFETY: the handler stored a pointer to its `Job`, which outlives this call (the
    // handler waits in swapcontext, or calls this directly).
    let job = unsafe { &*JOB.load(Ordering::Acquire) };
    (backing().unchecked)(&mut || {
        // SAFETY: `ctx` is the kernel's ucontext for this signal; `header` a registered
        // guarded block's header (on its own readable page).
        unsafe { report_fault(job.addr, job.user, &*(job.header as *const Header), job.ctx) }
    });
}

/// Passes a fault that is not ours to the previous handler, or to the default action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let prev = PREVIOUS.get().map(|p| p.0);
    match prev {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO, so it has
                // the three-argument signature; the arguments are the kernel's.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { core::mem::transmute(p.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a handler installed without SA_SIGINFO takes the signal number.
                let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(p.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // Default action: restore it and return; the access faults again and the
            // kernel ends the process with SIGSEGV, as without the checker.
            // SAFETY: a zeroed sigaction with SIG_DFL (0) is the default disposition.
            unsafe {
                let mut dfl: libc::sigaction = core::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, core::ptr::null_mut());
            }
        }
    }
}

/// Reports a fault at `addr` in the guarded block at `user`.
///
/// # Safety
/// `ctx` is the kernel's `ucontext_t` for this signal.
unsafe fn report_fault(addr: usize, user: usize, h: &Header, ctx: *mut libc::c_void) {
    // SAFETY: per the contract.
    let g = unsafe { (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs };
    let ip = g[libc::REG_RIP as usize] as u64;
    let sp = g[libc::REG_RSP as usize] as u64;
    let bp = g[libc::REG_RBP as usize] as u64;
    let write = g[libc::REG_ERR as usize] & 2 != 0;
    let size = h.len();
    let freed = h.state() != LIVE;
    let bug = if freed && addr >= user && addr < user + size {
        "heap-use-after-free"
    } else {
        "heap-buffer-overflow"
    };
    let mut r = Report::new(
        bug,
        &format!("{bug} on address {addr:#x} at pc {ip:#x} bp {bp:#x} sp {sp:#x}"),
    );
    r.line(&format!(
        "{} of unknown size at {addr:#x} thread T{}",
        if write { "WRITE" } else { "READ" },
        threads::current()
    ));
    r.stack(&fault_stack(ip, sp, bp));
    r.location(addr, user, size);
    r.block_history(h, freed);
    let printed = r.emit();
    // Still here: keep going (or suppressed). Let the access proceed.
    let _ = (printed, options());
    guard::disarm(user, h);
}
