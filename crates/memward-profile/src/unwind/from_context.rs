//! Capture from a register set other than the caller's: the interrupted code of a signal
//! handler's `ucontext` (memward-check reports a fault on a guard page with the stack of
//! the faulting access). The handler runs on an alternate stack, so the bounds of the
//! readable stack are the interrupted stack pointer and the top of the thread's stack,
//! not the handler's own. The faulting instruction's address is frame 0 as it is (it is
//! not a return address); the frames after it are return addresses, as in `capture`.
//! The thread's last-capture record (`PREVIOUS`) is neither read nor changed: the
//! interrupted code may be in the middle of nothing the record describes.

use super::{Stacks, CACHE_BANKS, MAX_FRAMES};
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};

impl Stacks {
    /// Writes the stack of the code interrupted at `ip` (with stack pointer `sp` and frame
    /// pointer `bp`) into `out`, innermost first, and returns how many frames it wrote:
    /// `out[0]` is `ip`, the others are return addresses. Stack memory is read only in
    /// `[sp, stack_top)`; `stack_top` is the end of the interrupted thread's stack.
    ///
    /// ```
    /// use memward_profile::shared::{Scan, Stacks, MAX_FRAMES};
    /// let mut scan = Scan::new().unwrap();
    /// scan.refresh();
    /// let mut stacks = Stacks::new();
    /// for m in scan.modules() {
    ///     stacks.add(m);
    /// }
    /// let mut out = [0u64; MAX_FRAMES];
    /// // Without readable stack memory only the first frame is known.
    /// assert_eq!(stacks.capture_from(0x1234, 8, 0, 8, &mut out), 1);
    /// assert_eq!(out[0], 0x1234);
    /// ```
    pub fn capture_from(
        &mut self,
        ip: u64,
        sp: u64,
        bp: u64,
        stack_top: u64,
        out: &mut [u64; MAX_FRAMES],
    ) -> usize {
        let mut read = |addr: u64| -> Result<u64, ()> {
            if addr >= sp && addr % 8 == 0 && addr.checked_add(8).is_some_and(|e| e <= stack_top) {
                // SAFETY: `addr` lies between the interrupted stack pointer and the top of
                // the interrupted thread's stack, which is mapped, and is aligned.
                Ok(unsafe { core::ptr::read_volatile(addr as *const u64) })
            } else {
                Err(())
            }
        };
        out[0] = ip;
        let mut n = 1;
        let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut frame = FrameAddress::from_instruction_pointer(ip);
        while n < MAX_FRAMES {
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
            out[n] = ra;
            n += 1;
            frame = next;
        }
        n
    }
}

/// Kept here, beside the other addition for memward-check, so that `unwind.rs` (whose
/// capture path is being tuned separately) changes by one line only.
impl Default for Stacks {
    fn default() -> Self {
        Stacks::new()
    }
}
