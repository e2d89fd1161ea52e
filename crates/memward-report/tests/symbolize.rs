//! Symbolisation of real binaries built here: inlined frames with their lines in a PIE
//! (so the load bias matters), C++ names from the symbol table alone, and the fallbacks
//! for a module whose build id does not match and for one that is gone.

use memward_report::{ModuleInfo, Symbolizer};
use object::Object;
use std::path::{Path, PathBuf};
use std::process::Command;

const INLINED_C: &str = r#"
#define _GNU_SOURCE
#include <link.h>
#include <stdio.h>
__attribute__((noinline)) void sink(void) {
    printf("%lx\n", (unsigned long)__builtin_return_address(0));
}
static inline __attribute__((always_inline)) void inner(void) {
    sink(); /* INNER */
    __asm__ volatile("");
}
__attribute__((noinline)) void outer(void) {
    inner(); /* OUTER */
    __asm__ volatile("");
}
static int first(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size; (void)data;
    printf("%lx\n", (unsigned long)info->dlpi_addr);
    return 1;
}
int main(void) {
    dl_iterate_phdr(first, 0);
    outer();
    return 0;
}
"#;

const MANGLED_CPP: &str = r#"
#include <cstdio>
namespace geo {
struct Shape { int sides; };
__attribute__((noinline)) void report(const Shape &s, int k) {
    std::printf("%lx\n", (unsigned long)__builtin_return_address(0));
    std::printf("%d\n", s.sides + k);
}
__attribute__((noinline)) void measure(Shape s) { report(s, 2); __asm__ volatile(""); }
}
int main() { geo::measure(geo::Shape{3}); return 0; }
"#;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("memward-report-sym-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `source` with `compiler` and runs it; returns the binary and its output lines
/// parsed as hexadecimal numbers.
fn build_and_run(
    test: &str,
    compiler: &str,
    ext: &str,
    source: &str,
    flags: &[&str],
) -> (PathBuf, Vec<u64>) {
    let dir = scratch(test);
    let src = dir.join(format!("prog.{ext}"));
    std::fs::write(&src, source).unwrap();
    let bin = dir.join("prog");
    let out = Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("{compiler}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().unwrap();
    assert!(run.status.success());
    let numbers = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| u64::from_str_radix(l, 16).unwrap())
        .collect();
    (bin, numbers)
}

fn build_id(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.build_id()
        .unwrap()
        .expect("gcc writes a build id")
        .to_vec()
}

fn line_of(source: &str, marker: &str) -> u32 {
    source
        .lines()
        .position(|l| l.contains(marker))
        .map(|i| i as u32 + 1)
        .unwrap()
}

#[test]
fn inlined_frames_with_lines_in_a_pie() {
    let (bin, nums) = build_and_run("inl", "cc", "c", INLINED_C, &["-O2", "-g", "-fPIE", "-pie"]);
    let (bias, ret) = (nums[0], nums[1]);
    assert_ne!(bias, 0, "a PIE is loaded at a non-zero bias");
    let mut sym = Symbolizer::new(vec![ModuleInfo {
        path: bin.clone(),
        build_id: build_id(&bin),
        load_bias: bias,
        ranges: vec![],
    }]);
    assert_eq!(sym.module_of(ret), Some(0));
    let loc = sym.symbolize(ret).clone();
    let names: Vec<&str> = loc.frames.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["inner", "outer"], "{loc:#?}");
    assert_eq!(loc.frames[0].line, line_of(INLINED_C, "INNER"));
    assert_eq!(loc.frames[1].line, line_of(INLINED_C, "OUTER"));
    assert!(loc.frames[0].file.as_deref().unwrap().ends_with("prog.c"));
    assert_eq!(
        loc.frames[0].label(),
        format!(
            "inner ({}:{})",
            loc.frames[0].file.as_deref().unwrap(),
            loc.frames[0].line
        )
    );
    // Cached: the same answer again.
    assert_eq!(sym.symbolize(ret), &loc);
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
}

#[test]
fn cpp_names_from_the_symbol_table_are_demangled() {
    let (bin, nums) = build_and_run("cpp", "g++", "cc", MANGLED_CPP, &["-O2", "-no-pie"]);
    let mut sym = Symbolizer::new(vec![ModuleInfo {
        path: bin.clone(),
        build_id: build_id(&bin),
        load_bias: 0,
        ranges: vec![],
    }]);
    let loc = sym.symbolize(nums[0]);
    assert_eq!(loc.frames.len(), 1, "{loc:#?}");
    let f = &loc.frames[0];
    assert_eq!(f.name, "geo::measure(geo::Shape)");
    assert_eq!(f.system_name, "_ZN3geo7measureENS_5ShapeE");
    assert_eq!((f.file.as_deref(), f.line), (None, 0));
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
}

#[test]
fn a_rebuilt_or_missing_module_degrades_to_module_offset() {
    let (bin, nums) = build_and_run(
        "rebuilt",
        "cc",
        "c",
        INLINED_C,
        &["-O2", "-g", "-fPIE", "-pie"],
    );
    let (bias, ret) = (nums[0], nums[1]);
    let mut wrong_id = build_id(&bin);
    wrong_id[0] ^= 0xff;
    let mut sym = Symbolizer::new(vec![ModuleInfo {
        path: bin.clone(),
        build_id: wrong_id,
        load_bias: bias,
        ranges: vec![],
    }]);
    let loc = sym.symbolize(ret);
    assert_eq!(loc.frames.len(), 1);
    assert_eq!(loc.frames[0].name, format!("prog+{:#x}", ret - bias));
    assert!(!loc.frames[0].resolved);
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());

    let mut gone = Symbolizer::new(vec![ModuleInfo {
        path: "/nonexistent/libgone.so.1".into(),
        build_id: vec![1, 2, 3, 4],
        load_bias: 0x7f00_0000_0000,
        ranges: vec![(0x7f00_0000_0000, 0x7f00_0010_0000)],
    }]);
    assert_eq!(
        gone.symbolize(0x7f00_0000_4242).frames[0].name,
        "libgone.so.1+0x4242"
    );
    assert_eq!(
        gone.symbolize(0x7f00_0010_0000).frames[0].name,
        "0x7f0000100000"
    );
    assert_eq!(gone.symbolize(0x7f00_0010_0000).module, None);
}
