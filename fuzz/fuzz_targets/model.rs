//! Fuzzes memward's raw API through the shared model (`memward-model`): the input decodes
//! to a thread count and a list of actions (alloc, realloc, free, transfer to another
//! thread, thread restart, heap check), run in lockstep on real threads. The model checks
//! every byte of every live block, alignments, usable sizes and the heap invariants, so
//! the fuzzer looks for any sequence that breaks them, not only for crashes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use memward_model::{lockstep, Action};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    threads: u8,
    actions: Vec<Action>,
}

fuzz_target!(|input: Input| {
    // One to four threads: enough for every cross-thread path, few enough to stay fast.
    let threads = usize::from(input.threads % 4) + 1;
    lockstep::run(threads, input.actions);
});
