//! `MEMWARD_PROFILE=FILE`: with the `profile` feature, the heap profiler's recorder
//! (`memward-profile`) is installed as the hooks at process setup, so a program whose
//! global allocator is memward, or any program under libmemward.so, records every
//! allocation into FILE without code changes. The recorder crate does not depend on the
//! engine (the engine depends on it); this is the only place they meet. Without the
//! feature this does nothing.

/// Installs the recorder's hooks if `MEMWARD_PROFILE` asks for them. Runs once, during
/// the process setup of the first allocation, when no thread heap exists yet (new heaps
/// start in hooked mode), so setting the table is all `hooks::install` would do here.
/// The recorder's hooks (also `HeapStats`'s counters).
#[cfg(feature = "profile")]
pub static HOOKS: crate::hook_table::Hooks = crate::hook_table::Hooks {
    alloc: memward_profile::on_alloc,
    free: memward_profile::on_free,
    realloc: memward_profile::on_realloc,
};

#[cfg(feature = "profile")]
pub fn install_from_env() {
    use crate::hook_table;
    if memward_profile::configure_from_env() {
        memward_profile::set_heap_bytes_source(|| crate::stats::live_bytes().max(0) as u64);
        // With a sample rate the engine samples (`hooks::install_sampled`): unsampled
        // allocations keep the fast path and only sampled blocks are reported.
        let rate = memward_profile::sample_rate();
        memward_profile::set_engine_sampling(rate > 0);
        hook_table::set(Some(&HOOKS), rate);
    }
}

/// Without the `profile` feature: nothing to install.
#[cfg(not(feature = "profile"))]
pub fn install_from_env() {}
