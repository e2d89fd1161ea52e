//! Reports in AddressSanitizer's layout, with `memward` where it says `AddressSanitizer`:
//! a line of 65 `=`, `==PID==ERROR: memward: <what>`, the stack of the call or access,
//! where the address lies relative to the block (`0x... is located 0 bytes after
//! 13-byte region [0x...,0x...)`), the free and allocation stacks (`freed by thread T1
//! here:`, `previously allocated by thread T0 here:`), `SUMMARY: memward: <bug> <where>`,
//! and, unless the user asked to keep going, `==PID==ABORTING` and the end of the process
//! with the exit code (default 1) through `_exit`, as AddressSanitizer ends.
//!
//! Stacks are symbolised in-process when the report is written, with memward-symbolize
//! over the running process's modules (DWARF, else the symbol table), and printed as
//! AddressSanitizer prints them: `    #N 0xPC in FUNCTION FILE:LINE:COLUMN`, or
//! `    #N 0xPC  (/path/module+0xOFFSET)` for a frame nothing is known of. As in
//! sanitizer reports, a frame's address is the return address minus one (inside the
//! call instruction), except the first frame of a fault, which is the faulting
//! instruction itself. Leading frames of memward itself (when it is linked into the
//! program rather than preloaded, its frames share the executable) are dropped by name.
//! The SUMMARY line names the first frame left: `FILE:LINE:COLUMN in FUNCTION`, or
//! `(MODULE+0xOFFSET)`.
//!
//! A report goes to stderr and, with `MEMWARD_CHECK_LOG_FILE=PATH`, is appended to
//! `PATH.<pid>`. Reports from different threads do not interleave (one lock). A report
//! whose kind and frames match a suppression is dropped before anything is printed.

use crate::block::Header;
use crate::checker::options;
use crate::stacks;
use memward_profile::shared::SpinLock;
use memward_symbolize::{asan, Symbolizer};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Errors reported so far (not counting suppressed ones).
static ERRORS: AtomicU64 = AtomicU64::new(0);
/// Serialises reports.
static PRINTING: SpinLock<()> = SpinLock::new(());
/// The process's symbolizer, made at the first report and kept (it caches what it read).
static SYMBOLIZER: SpinLock<Option<Symbolizer>> = SpinLock::new(None);

/// Runs `f` with the symbolizer, its module map brought up to date. `None` if the
/// process's modules cannot be read.
pub fn with_symbolizer<R>(f: impl FnOnce(&mut Symbolizer) -> R) -> Option<R> {
    let mut guard = SYMBOLIZER.lock();
    match guard.as_mut() {
        Some(sym) => {
            let _ = sym.refresh_this_process();
        }
        None => *guard = Some(Symbolizer::for_this_process().ok()?),
    }
    guard.as_mut().map(f)
}

/// `frames` without memward's own leading frames (see the module docs), at most the
/// report depth.
pub fn program_frames(frames: &[u64]) -> Vec<u64> {
    let skip = with_symbolizer(|sym| {
        frames
            .iter()
            .take_while(|&&a| {
                let loc = sym.symbolize(a);
                loc.frames.last().is_some_and(|f| is_memward_frame(&f.name))
            })
            .count()
    })
    .unwrap_or(0);
    let rest = &frames[skip..];
    rest[..rest.len().min(options().depth.max(1))].to_vec()
}

/// Names whose frames are memward's own (dropped from the top of a stack).
fn is_memward_frame(name: &str) -> bool {
    let name = name.trim_start_matches('<');
    [
        "memward_check::",
        "memward::",
        "memward_profile::",
        "memward_preload::",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// How many errors were reported.
pub fn error_count() -> u64 {
    ERRORS.load(Ordering::Relaxed)
}

/// Counts an error reported outside [`Report::emit`] (the leak report).
pub fn count_error() {
    ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// Whether a `kind` suppression matches a frame of `stack` (function, file or module).
pub fn suppressed(kind: &str, stack: &[u64]) -> bool {
    let o = options();
    if !o
        .suppressions
        .list
        .iter()
        .any(|s| s.kind == kind || s.kind == "*")
    {
        return false;
    }
    let mut names: Vec<String> = Vec::new();
    with_symbolizer(|sym| {
        for &a in stack {
            let loc = sym.symbolize(a).clone();
            if let Some(m) = loc.module {
                names.push(sym.modules()[m].path.to_string_lossy().into_owned());
            }
            for f in loc.frames {
                names.push(f.name);
                names.extend(f.file);
            }
        }
    });
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    o.suppressions.find(kind, &names).is_some()
}

/// A stack to print: return addresses, or a fault's stack whose first frame is the
/// faulting instruction.
pub struct Stack {
    pub frames: Vec<u64>,
    pub first_is_pc: bool,
}

impl Stack {
    /// A stack from the depot.
    pub fn id(id: u32) -> Stack {
        Stack {
            frames: stacks::frames(id),
            first_is_pc: false,
        }
    }

    fn pc(&self, i: usize) -> u64 {
        let a = self.frames[i];
        if i == 0 && self.first_is_pc {
            a
        } else {
            a.saturating_sub(1)
        }
    }
}

/// A report being built.
pub struct Report {
    bug: &'static str,
    text: String,
    /// Names the suppressions are matched against (module paths, functions, files).
    names: Vec<String>,
    /// Where the SUMMARY line points: the first frame of the main stack.
    summary: Option<String>,
    /// `==PID==HINT: ...` lines after SUMMARY.
    hints: Vec<String>,
}

/// `==PID==`.
pub fn pid_prefix() -> String {
    // SAFETY: getpid has no preconditions.
    format!("=={}==", unsafe { libc::getpid() })
}

impl Report {
    /// Starts a report of `bug` (the SUMMARY name) with its `ERROR:` line.
    pub fn new(bug: &'static str, headline: &str) -> Report {
        let mut text = String::new();
        text.push_str(&"=".repeat(65));
        text.push('\n');
        let _ = writeln!(text, "{}ERROR: memward: {headline}", pid_prefix());
        Report {
            bug,
            text,
            names: Vec::new(),
            summary: None,
            hints: Vec::new(),
        }
    }

    /// Adds a line as it is.
    pub fn line(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self.text.push('\n');
        self
    }

    /// Adds a `HINT:` line after the SUMMARY line.
    pub fn hint(&mut self, s: &str) -> &mut Self {
        self.hints.push(s.to_string());
        self
    }

    /// Adds a stack; the first stack added is the one SUMMARY names.
    pub fn stack(&mut self, stack: &Stack) -> &mut Self {
        let depth = options().depth.max(1);
        let text = with_symbolizer(|sym| {
            // memward's own leading frames (a statically linked memward's) go.
            let skip = if stack.first_is_pc {
                0
            } else {
                stack
                    .frames
                    .iter()
                    .take_while(|&&a| {
                        let loc = sym.symbolize(a);
                        loc.frames.last().is_some_and(|f| is_memward_frame(&f.name))
                    })
                    .count()
            };
            let frames = &stack.frames[skip.min(stack.frames.len())..];
            let frames = &frames[..frames.len().min(depth)];
            let mut out = String::new();
            if stack.first_is_pc {
                asan::write_fault_stack(sym, frames, &mut out);
            } else {
                asan::write_stack(sym, frames, &mut out);
            }
            // Names for suppressions, and the SUMMARY's place.
            for (i, &a) in frames.iter().enumerate() {
                let key = if i == 0 && stack.first_is_pc {
                    a + 1
                } else {
                    a
                };
                let loc = sym.symbolize(key).clone();
                if let Some(m) = loc.module {
                    let path = sym.modules()[m].path.to_string_lossy().into_owned();
                    if !self.names.contains(&path) {
                        self.names.push(path);
                    }
                }
                for f in &loc.frames {
                    self.names.push(f.name.clone());
                    if let Some(file) = &f.file {
                        self.names.push(file.clone());
                    }
                }
                if self.summary.is_none() {
                    let f = &loc.frames[0];
                    self.summary = Some(match (&f.file, f.resolved) {
                        (Some(file), true) if f.line != 0 => {
                            format!("{file}:{}{} in {}", f.line, col(f.column), f.name)
                        }
                        _ => match (loc.module, loc.offset) {
                            (Some(m), Some(off)) => format!(
                                "({}+{:#x})",
                                sym.modules()[m].path.display(),
                                off.saturating_sub(1)
                            ),
                            _ => format!("({:#x})", a),
                        },
                    });
                }
            }
            out
        });
        match text {
            Some(t) if !t.is_empty() => self.text.push_str(&t),
            Some(_) => self.text.push_str("    <empty stack>\n"),
            None => {
                // The module map could not be read: addresses only.
                for (i, a) in stack.frames.iter().take(depth).enumerate() {
                    let _ = writeln!(self.text, "    #{i} {:#x}", stack.pc(i));
                    let _ = a;
                }
            }
        }
        self.text.push('\n');
        self
    }

    /// The block's history as AddressSanitizer gives it: who freed it (when `freed`) and
    /// who allocated it, with their stacks.
    pub fn block_history(&mut self, h: &Header, freed: bool) -> &mut Self {
        if freed {
            let (fs, ft) = h.freed_by();
            if fs != 0 {
                self.line(&format!("freed by thread T{ft} here:"));
                self.stack_id(fs);
            }
            self.line(&format!(
                "previously allocated by thread T{} here:",
                h.alloc_tid
            ));
        } else {
            self.line(&format!("allocated by thread T{} here:", h.alloc_tid));
        }
        self.stack_id(h.alloc_stack)
    }

    /// Adds the stack with depot id `id`.
    pub fn stack_id(&mut self, id: u32) -> &mut Self {
        self.stack(&Stack::id(id))
    }

    /// `ADDR is located N bytes <before|after|inside of> SIZE-byte region [a,b)`.
    pub fn location(&mut self, addr: usize, user: usize, size: usize) -> &mut Self {
        let end = user + size;
        let (n, rel) = if addr < user {
            (user - addr, "before")
        } else if addr >= end {
            (addr - end, "after")
        } else {
            (addr - user, "inside of")
        };
        let _ = writeln!(
            self.text,
            "{addr:#x} is located {n} bytes {rel} {size}-byte region [{user:#x},{end:#x})"
        );
        self
    }

    /// Prints the report (unless suppressed), counts it, and ends the process unless the
    /// user asked to keep going. Returns whether it was printed.
    pub fn emit(mut self) -> bool {
        let o = options();
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if o.suppressions.find(self.bug, &names).is_some() {
            return false;
        }
        let _ = write!(self.text, "SUMMARY: memward: {}", self.bug);
        match &self.summary {
            Some(at) => {
                let _ = writeln!(self.text, " {at}");
            }
            None => self.text.push('\n'),
        }
        for h in &self.hints {
            let _ = writeln!(self.text, "{}HINT: {h}", pid_prefix());
        }
        ERRORS.fetch_add(1, Ordering::Relaxed);
        let _guard = PRINTING.lock();
        if !o.keep_going {
            let _ = writeln!(self.text, "{}ABORTING", pid_prefix());
        }
        write_out(self.text.as_bytes());
        if !o.keep_going {
            die();
        }
        true
    }
}

fn col(c: u32) -> String {
    if c == 0 {
        String::new()
    } else {
        format!(":{c}")
    }
}

/// Writes `bytes` to stderr and the log file.
pub fn write_out(bytes: &[u8]) {
    write_fd(2, bytes);
    if let Some(base) = options().log_file.as_deref() {
        // SAFETY: getpid has no preconditions.
        let path = format!("{base}.{}\0", unsafe { libc::getpid() });
        // SAFETY: `path` is NUL-terminated.
        let fd = unsafe {
            libc::open(
                path.as_ptr().cast(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd >= 0 {
            write_fd(fd, bytes);
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
        }
    }
}

fn write_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            // SAFETY: reads the calling thread's errno.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        if n == 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// A one-line message from the checker itself (bad options and the like).
pub fn warn(msg: &str) {
    write_fd(2, format!("{}memward: {msg}\n", pid_prefix()).as_bytes());
}

/// Ends the process with the exit code, without running exit handlers (the heap is
/// corrupt or the program is wrong; AddressSanitizer ends the same way). C streams are
/// flushed first so the program's own output is not lost.
pub fn die() -> ! {
    // SAFETY: fflush(NULL) flushes every C stream; _exit has no preconditions.
    unsafe {
        libc::fflush(core::ptr::null_mut());
        libc::_exit(options().exit_code)
    }
}

/// Takes the report lock before `fork`.
pub fn lock() {
    PRINTING.lock_forever();
}

/// Releases the lock `lock` took.
///
/// # Safety
/// The caller took it with `lock` on this thread and holds no guard.
pub unsafe fn unlock() {
    // SAFETY: per the contract.
    unsafe { PRINTING.force_unlock() };
}
