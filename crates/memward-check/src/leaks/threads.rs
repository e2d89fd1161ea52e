//! Stopping the other threads for the scan, and getting their registers and stack
//! pointers.
//!
//! A leak check at exit runs while other threads may still be running: they could move a
//! pointer from a place the scan has not read yet to one it has already read, and a
//! reachable block would be reported. So every other thread is stopped, the way Boehm GC
//! does it on Linux: a signal (`SIGPWR`, Boehm's choice too) is sent to each thread of
//! `/proc/self/task` with `tgkill`; the handler, running on that thread, copies the
//! interrupted registers from its `ucontext` (which holds the stack pointer) and its
//! thread pointer (`arch_prctl`, for `dead_stacks`) into the thread's slot, says so with a release store, and waits on a futex until the round
//! ends. The task list is read again until it shows no new thread, since a thread not
//! yet stopped may have created one. LeakSanitizer attaches to each thread with `ptrace`
//! from a helper task instead; that needs ptrace permission (Yama, containers) and a
//! separate task, and gains nothing for a scan that runs in the process itself.
//!
//! A thread that does not answer within [`ANSWER_WITHIN`] (it blocks the signal, or the
//! machine is badly overloaded) is left running and reported as not suspended, as
//! LeakSanitizer prints `Running thread N was not suspended. False leaks are possible.`:
//! its stack is then scanned whole, but its registers are not known. Everything the
//! handler and the stopping thread share is atomics in slots allocated before the round;
//! the handler makes only the `gettid`, `arch_prctl` and `futex` system calls, which are
//! async-signal-safe, and keeps `errno`.

use super::memory::{errno, gettid, list_threads, thread_pointer, ReadError};
use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The signal that stops a thread.
pub(crate) const STOP_SIGNAL: i32 = libc::SIGPWR;
/// How long a thread has to answer the signal.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Registers kept per thread: the `gregs` of x86-64's `mcontext_t`.
const NREGS: usize = 23;
const REG_RSP: usize = libc::REG_RSP as usize;

/// Slot states.
const ASKED: u32 = 1;
const STOPPED: u32 = 2;
const RESUMED: u32 = 3;
const GONE: u32 = 4;
const UNRESPONSIVE: u32 = 5;

/// One other thread of the round.
pub(crate) struct Slot {
    tid: AtomicI32,
    state: AtomicU32,
    regs: [AtomicUsize; NREGS],
    /// The thread pointer (`fs` base).
    tp: AtomicUsize,
}

/// Odd while a round is on; the stopped threads wait for it to change.
static ROUND: AtomicU32 = AtomicU32::new(0);
/// The round's slots, for the handler.
static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(core::ptr::null_mut());
static SLOT_COUNT: AtomicUsize = AtomicUsize::new(0);
/// One round at a time.
static BUSY: AtomicU32 = AtomicU32::new(0);

/// What a round found: the other threads and their registers.
pub(crate) struct World {
    slots: Box<[Slot]>,
    count: usize,
    old_action: libc::sigaction,
    round: u32,
}

/// Why the threads could not be stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopError {
    /// More threads than slots: retry with more.
    TooManyThreads,
    /// Another scan is stopping the threads.
    Busy,
    /// `/proc/self/task` or `sigaction` failed (the errno).
    Os(i32),
}

impl World {
    /// Stops every other thread. `capacity` slots are allocated here, before any thread
    /// stops; `task_buf` is the buffer for reading the task list.
    pub(crate) fn stop(capacity: usize, task_buf: &mut Vec<u8>) -> Result<World, StopError> {
        if BUSY.swap(1, Ordering::Acquire) == 1 {
            return Err(StopError::Busy);
        }
        let slots: Box<[Slot]> = (0..capacity)
            .map(|_| Slot {
                tid: AtomicI32::new(0),
                state: AtomicU32::new(0),
                regs: [const { AtomicUsize::new(0) }; NREGS],
                tp: AtomicUsize::new(0),
            })
            .collect();
        SLOT_COUNT.store(0, Ordering::Relaxed);
        SLOTS.store(slots.as_ptr().cast_mut(), Ordering::Release);
        let round = ROUND.fetch_add(1, Ordering::AcqRel) + 1;
        debug_assert!(round % 2 == 1);
        let old_action = match install_handler() {
            Ok(old) => old,
            Err(e) => {
                end_round(&slots, 0);
                BUSY.store(0, Ordering::Release);
                return Err(StopError::Os(e));
            }
        };
        let mut world = World {
            slots,
            count: 0,
            old_action,
            round,
        };
        match world.stop_all(task_buf) {
            Ok(()) => Ok(world),
            Err(e) => {
                drop(world);
                Err(e)
            }
        }
    }

    fn stop_all(&mut self, task_buf: &mut Vec<u8>) -> Result<(), StopError> {
        let me = gettid();
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        for _pass in 0..64 {
            let first_new = self.count;
            let mut full = false;
            let listed = list_threads(task_buf, |tid| {
                if tid == me || self.slots[..self.count].iter().any(|s| s.tid() == tid) {
                    return;
                }
                if self.count == self.slots.len() {
                    full = true;
                    return;
                }
                let slot = &self.slots[self.count];
                slot.tid.store(tid, Ordering::Relaxed);
                slot.state.store(ASKED, Ordering::Relaxed);
                self.count += 1;
                SLOT_COUNT.store(self.count, Ordering::Release);
                // SAFETY: tgkill has no memory preconditions; a thread that has exited
                // answers ESRCH.
                if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, STOP_SIGNAL) } != 0 {
                    slot.state.store(GONE, Ordering::Relaxed);
                }
            });
            match listed {
                Ok(()) => {}
                Err(ReadError::Os(e)) => return Err(StopError::Os(e)),
                Err(ReadError::Full) => return Err(StopError::Os(libc::ENOBUFS)),
            }
            if full {
                return Err(StopError::TooManyThreads);
            }
            if self.count == first_new {
                return Ok(());
            }
            self.wait_for_answers(first_new);
        }
        Ok(())
    }

    /// Waits until the slots from `first` on are stopped, or marks them unresponsive.
    fn wait_for_answers(&self, first: usize) {
        let deadline = Instant::now() + ANSWER_WITHIN;
        for slot in &self.slots[first..self.count] {
            loop {
                let state = slot.state.load(Ordering::Acquire);
                if state != ASKED {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Lost the race if it answered just now: then it is stopped.
                    let _ = slot.state.compare_exchange(
                        ASKED,
                        UNRESPONSIVE,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    break;
                }
                futex_wait(
                    &slot.state,
                    ASKED,
                    Some(left.min(Duration::from_millis(20))),
                );
            }
        }
    }

    /// Registers (stack pointer first) of every stopped thread.
    pub(crate) fn stopped(&self) -> impl Iterator<Item = ThreadRegisters<'_>> {
        self.slots[..self.count]
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) == STOPPED)
            .map(|s| ThreadRegisters { slot: s })
    }

    /// Ids of the threads that did not stop.
    pub(crate) fn unresponsive(&self) -> impl Iterator<Item = i32> + '_ {
        self.slots[..self.count]
            .iter()
            .filter(|s| s.state.load(Ordering::Acquire) == UNRESPONSIVE)
            .map(Slot::tid)
    }
}

impl Drop for World {
    /// Lets the threads go and waits until each has left the handler.
    fn drop(&mut self) {
        // A signal sent but not yet handled (a round cut short) must be handled in this
        // round, or the thread would get it with the program's own action restored.
        self.wait_for_answers(0);
        let round = self.round;
        let unresponsive = self.unresponsive().count() > 0;
        end_round(&self.slots, self.count);
        debug_assert_ne!(ROUND.load(Ordering::Relaxed), round);
        if unresponsive {
            // A late signal may still run the handler, which may still be reading the
            // slots: keep them and the handler (it ignores signals outside a round).
            let slots = core::mem::take(&mut self.slots);
            Box::leak(slots);
        } else {
            // SAFETY: restores the action `install_handler` replaced.
            unsafe { libc::sigaction(STOP_SIGNAL, &self.old_action, core::ptr::null_mut()) };
        }
        BUSY.store(0, Ordering::Release);
    }
}

/// Ends the round: wakes the stopped threads and waits until they have left the handler.
fn end_round(slots: &[Slot], count: usize) {
    ROUND.fetch_add(1, Ordering::AcqRel);
    futex_wake(&ROUND);
    for slot in &slots[..count] {
        while slot.state.load(Ordering::Acquire) == STOPPED {
            futex_wait(&slot.state, STOPPED, Some(Duration::from_millis(20)));
        }
    }
    SLOT_COUNT.store(0, Ordering::Release);
    SLOTS.store(core::ptr::null_mut(), Ordering::Release);
}

/// A stopped thread's registers as the signal interrupted it.
pub(crate) struct ThreadRegisters<'a> {
    slot: &'a Slot,
}

impl ThreadRegisters<'_> {
    /// The interrupted stack pointer.
    pub(crate) fn sp(&self) -> usize {
        self.slot.regs[REG_RSP].load(Ordering::Relaxed)
    }

    /// The thread pointer (the `fs` base: the thread's descriptor), 0 if unknown.
    pub(crate) fn tp(&self) -> usize {
        self.slot.tp.load(Ordering::Relaxed)
    }

    /// All saved general registers.
    pub(crate) fn words(&self) -> impl Iterator<Item = usize> + '_ {
        self.slot.regs.iter().map(|r| r.load(Ordering::Relaxed))
    }
}

impl Slot {
    fn tid(&self) -> i32 {
        self.tid.load(Ordering::Relaxed)
    }
}

fn install_handler() -> Result<libc::sigaction, i32> {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
    action.sa_sigaction =
        on_stop_signal as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `sa_mask` is ours to fill; every other signal waits while a thread is
    // stopped, so no handler of the program runs on a stopped thread.
    unsafe { libc::sigfillset(&mut action.sa_mask) };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are valid sigaction values; the handler has the SA_SIGINFO
    // signature.
    if unsafe { libc::sigaction(STOP_SIGNAL, &action, &mut old) } != 0 {
        return Err(errno());
    }
    Ok(old)
}

/// The stop signal's handler: on the thread to stop.
extern "C" fn on_stop_signal(_sig: i32, _info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let round = ROUND.load(Ordering::Acquire);
    if round % 2 == 0 || context.is_null() {
        return; // a late signal, after its round
    }
    // SAFETY: __errno_location gives this thread's errno, kept across the handler.
    let saved_errno = unsafe { *libc::__errno_location() };
    let slots = SLOTS.load(Ordering::Acquire);
    let count = SLOT_COUNT.load(Ordering::Acquire);
    if !slots.is_null() {
        // SAFETY: during a round the slots array is alive (freed only after every
        // stopped thread has left, or never when a thread did not answer) and holds at
        // least `count` initialised slots; only atomics are touched.
        let slots = unsafe { core::slice::from_raw_parts(slots, count) };
        let me = gettid();
        if let Some(slot) = slots.iter().find(|s| s.tid() == me) {
            if slot.state.load(Ordering::Acquire) == ASKED {
                // SAFETY: with SA_SIGINFO the third argument is the interrupted
                // thread's ucontext_t, valid during the handler.
                let uc = unsafe { &*context.cast::<libc::ucontext_t>() };
                for (r, &g) in slot.regs.iter().zip(uc.uc_mcontext.gregs.iter()) {
                    r.store(g as usize, Ordering::Relaxed);
                }
                slot.tp.store(thread_pointer(), Ordering::Relaxed);
                if slot
                    .state
                    .compare_exchange(ASKED, STOPPED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    futex_wake(&slot.state);
                    while ROUND.load(Ordering::Acquire) == round {
                        futex_wait(&ROUND, round, None);
                    }
                    slot.state.store(RESUMED, Ordering::Release);
                    futex_wake(&slot.state);
                }
            }
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned u32 `word` and the optional timespec; both
    // outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    /// The tests of this module stop the world one at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    #[test]
    fn stops_a_spinning_thread_and_lets_it_go() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let counter = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let spinner_tp = Arc::new(AtomicUsize::new(0));
        let (c, d, t) = (counter.clone(), done.clone(), spinner_tp.clone());
        let spinner = std::thread::spawn(move || {
            t.store(thread_pointer(), Ordering::Relaxed);
            while !d.load(Ordering::Relaxed) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            gettid()
        });
        while counter.load(Ordering::Relaxed) == 0 {
            std::hint::spin_loop();
        }
        let mut buf = Vec::with_capacity(1 << 16);
        let world = World::stop(256, &mut buf).unwrap();
        let frozen = counter.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            counter.load(Ordering::Relaxed),
            frozen,
            "the spinner still ran"
        );
        assert!(world.stopped().count() >= 1);
        assert!(world.stopped().all(|t| t.sp() != 0));
        assert!(
            world
                .stopped()
                .any(|t| t.tp() == spinner_tp.load(Ordering::Relaxed)),
            "the spinner's thread pointer"
        );
        assert_eq!(world.unresponsive().count(), 0);
        assert_eq!(
            World::stop(256, &mut buf).err(),
            Some(StopError::Busy),
            "one round at a time"
        );
        drop(world);
        std::thread::sleep(Duration::from_millis(20));
        assert_ne!(
            counter.load(Ordering::Relaxed),
            frozen,
            "the spinner was let go"
        );
        done.store(true, Ordering::Relaxed);
        let tid = spinner.join().unwrap();
        assert_ne!(tid, gettid());
    }

    #[test]
    fn too_few_slots_is_an_error_and_releases_everyone() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let s = stop.clone();
                std::thread::spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        let mut buf = Vec::with_capacity(1 << 16);
        assert_eq!(
            World::stop(1, &mut buf).err(),
            Some(StopError::TooManyThreads)
        );
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        // The round is over: another can start.
        drop(World::stop(256, &mut buf).unwrap());
    }
}
