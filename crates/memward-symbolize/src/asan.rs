//! Stacks printed the way AddressSanitizer prints them, so that tools and people who read
//! sanitizer reports read memward's.
//!
//! Each stack entry expands into its frames, innermost inlined frame first, numbered
//! consecutively (an entry with two inlined calls takes three numbers, all with the same
//! address), as `llvm-symbolizer` output appears in sanitizer reports:
//! `    #N 0xADDR in FUNCTION FILE:LINE:COLUMN`. A frame without a source file names its
//! module instead, `in FUNCTION (MODULE+0xOFFSET)`; one without a function drops the
//! `in` part, keeping the double space sanitizers print. As in sanitizer reports, a
//! frame's address (and module offset) is the return address minus one, inside the call
//! instruction, except the first frame of a fault's stack, which is the faulting
//! instruction itself ([`write_fault_stack`]). The memory checker's error and leak
//! reports print their stacks with these functions.

use crate::symbolizer::{Frame, Location, Symbolizer};
use std::fmt::Write;

/// Appends the frames of `stack` (return addresses, innermost call first) to `out`, one
/// line each, in AddressSanitizer's format.
///
/// ```
/// use memward_symbolize::{asan, ModuleInfo, Symbolizer};
/// let mut sym = Symbolizer::new(vec![ModuleInfo { path: "/gone/libq.so".into(),
///     build_id: vec![], load_bias: 0x5000, ranges: vec![(0x5000, 0x9000)] }]);
/// let mut out = String::new();
/// asan::write_stack(&mut sym, &[0x5124, 0x11], &mut out);
/// assert_eq!(out, "    #0 0x5123  (/gone/libq.so+0x123)\n    #1 0x10  (<unknown module>)\n");
/// ```
pub fn write_stack(sym: &mut Symbolizer, stack: &[u64], out: &mut String) {
    write_frames(sym, stack, false, out);
}

/// Like [`write_stack`], for a fault's stack: its first entry is the faulting
/// instruction's address, not a return address.
///
/// ```
/// use memward_symbolize::{asan, Symbolizer};
/// let mut sym = Symbolizer::new(vec![]);
/// let mut out = String::new();
/// asan::write_fault_stack(&mut sym, &[0x400, 0x901], &mut out);
/// assert_eq!(out, "    #0 0x400  (<unknown module>)\n    #1 0x900  (<unknown module>)\n");
/// ```
pub fn write_fault_stack(sym: &mut Symbolizer, stack: &[u64], out: &mut String) {
    write_frames(sym, stack, true, out);
}

fn write_frames(sym: &mut Symbolizer, stack: &[u64], first_is_pc: bool, out: &mut String) {
    let mut n = 0;
    for (i, &address) in stack.iter().enumerate() {
        // The symbolizer looks up `key - 1`: the call instruction for a return address,
        // the instruction itself for a pc.
        let key = if i == 0 && first_is_pc {
            address.saturating_add(1)
        } else {
            address
        };
        let loc = sym.symbolize(key).clone();
        for frame in &loc.frames {
            write_frame(sym, n, &loc, frame, out);
            n += 1;
        }
    }
}

fn write_frame(sym: &Symbolizer, n: usize, loc: &Location, frame: &Frame, out: &mut String) {
    let _ = write!(out, "    #{n} {:#x} ", loc.address.saturating_sub(1));
    if frame.resolved {
        let _ = write!(out, "in {}", frame.name);
    }
    match (&frame.file, frame.line, frame.column) {
        (Some(file), 0, _) => {
            let _ = write!(out, " {file}");
        }
        (Some(file), line, 0) => {
            let _ = write!(out, " {file}:{line}");
        }
        (Some(file), line, column) => {
            let _ = write!(out, " {file}:{line}:{column}");
        }
        (None, _, _) => match (loc.module, loc.offset) {
            (Some(m), Some(offset)) => {
                let path = sym.modules()[m].path.display();
                let _ = write!(out, " ({path}+{:#x})", offset.saturating_sub(1));
            }
            _ => out.push_str(" (<unknown module>)"),
        },
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModuleInfo;

    #[test]
    fn the_running_test_symbolises_with_file_and_line() {
        let mut sym = Symbolizer::for_this_process().unwrap();
        let here = the_running_test_symbolises_with_file_and_line as fn() as usize as u64;
        let mut out = String::new();
        write_stack(&mut sym, &[here + 1], &mut out);
        assert!(out.starts_with(&format!("    #0 {here:#x} in ")), "{out}");
        assert!(
            out.contains("the_running_test_symbolises_with_file_and_line"),
            "{out}"
        );
        assert!(out.contains("src/asan.rs:"), "{out}");
    }

    #[test]
    fn unknown_function_in_a_known_module_shows_module_and_offset() {
        let mut sym = Symbolizer::new(vec![ModuleInfo {
            path: "/nonexistent/a.out".into(),
            build_id: vec![],
            load_bias: 0x40_0000,
            ranges: vec![(0x40_0000, 0x50_0000)],
        }]);
        let mut out = String::new();
        write_stack(&mut sym, &[0x40_1001, 0x40_2001], &mut out);
        assert_eq!(
            out,
            "    #0 0x401000  (/nonexistent/a.out+0x1000)\n    #1 0x402000  (/nonexistent/a.out+0x2000)\n"
        );
    }
}
