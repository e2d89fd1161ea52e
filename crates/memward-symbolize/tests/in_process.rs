//! In-process symbolisation of this test binary: inlined frames with their lines, a
//! C library function from its symbol table, and the module map of the running process.

use memward_symbolize::Symbolizer;

/// The address of the instruction after the `lea`: one past a byte of `inner`'s inlined
/// body, like a return address, wherever the compiler put it.
#[inline(always)]
fn inner() -> u64 {
    let pc: u64;
    // SAFETY: reads the instruction pointer into a register; no memory is touched.
    unsafe { core::arch::asm!("lea {}, [rip]", out(reg) pc, options(nomem, nostack)) };
    pc
}

#[inline(never)]
fn outer() -> u64 {
    std::hint::black_box(inner())
}

#[test]
fn inlined_frames_come_back_innermost_first() {
    let pc = outer();
    let mut sym = Symbolizer::for_this_process().unwrap();
    // `symbolize` looks up `address - 1` (return addresses): the last byte of the `lea`.
    let loc = sym.symbolize(pc).clone();
    let names: Vec<&str> = loc.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("in_process::inner"), "{names:?}");
    assert!(names[1].ends_with("in_process::outer"), "{names:?}");
    let file = loc.frames[0].file.as_deref().unwrap();
    assert!(file.ends_with("tests/in_process.rs"), "{file}");
    assert_eq!(loc.frames[0].line, 12, "the asm! line");
    assert_eq!(loc.frames[1].line, 18, "the call of inner in outer");
    let module = &sym.modules()[loc.module.unwrap()];
    assert_eq!(module.path, std::env::current_exe().unwrap());
    assert_eq!(loc.offset.unwrap() + module.load_bias, pc);
}

#[test]
fn libc_functions_are_named_from_their_symbol_table() {
    let mut sym = Symbolizer::for_this_process().unwrap();
    let getpid = libc_getpid as unsafe extern "C" fn() -> i32 as usize as u64;
    let loc = sym.symbolize(getpid + 1).clone();
    let module = &sym.modules()[loc.module.unwrap()];
    assert!(
        module.path.to_str().unwrap().contains("libc.so"),
        "{module:?}"
    );
    assert!(!module.build_id.is_empty());
    assert!(
        loc.frames.last().unwrap().name.contains("getpid"),
        "{loc:?}"
    );
}

extern "C" {
    #[link_name = "getpid"]
    fn libc_getpid() -> i32;
}

#[test]
fn the_process_map_has_the_executable_libc_and_the_vdso() {
    let modules = memward_symbolize::process_modules().unwrap();
    let exe = std::env::current_exe().unwrap();
    assert!(modules.iter().any(|m| m.path == exe));
    assert!(modules
        .iter()
        .any(|m| m.path.to_str().unwrap().contains("libc.so")));
    assert!(modules.iter().any(|m| m.path.to_str() == Some("[vdso]")));
    // Every module's ranges are disjoint from the others'.
    let mut all: Vec<(u64, u64)> = modules.iter().flat_map(|m| m.ranges.clone()).collect();
    all.sort_unstable();
    assert!(all.windows(2).all(|w| w[0].1 <= w[1].0), "{all:x?}");
}
