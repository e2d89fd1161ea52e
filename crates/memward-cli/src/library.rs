//! Finding `libmemward.so` and making sure it can be preloaded.
//!
//! The dynamic loader does not fail when an `LD_PRELOAD` entry is unusable: it prints
//! `object ... cannot be preloaded: ignored` and runs the program on glibc's malloc. A
//! `memward run --lib /etc/passwd` would then "succeed" without memward, so the library is
//! checked before anything runs: an ELF shared object, for this machine's architecture
//! and word size, that defines `malloc`. The check reads the file (with the `object`
//! crate, the ELF reader the Rust toolchain itself uses) rather than `dlopen`ing it,
//! because loading libmemward.so into this process would run its exit hook here (it writes
//! the summary file and prints statistics when asked to) and would execute whatever
//! constructors an arbitrary file given to `--lib` carries.

use object::{Architecture, BinaryFormat, Object, ObjectKind, ObjectSymbol, ReadRef};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// File name of the preload library.
pub const LIB_NAME: &str = "libmemward.so";

/// Why no usable library was found; `usage` is set when the user named a bad one with
/// `--lib` (a command-line error), not when the environment or installation is at fault.
#[derive(Debug)]
pub struct LibError {
    /// The user's `--lib` was wrong: exit with the usage status.
    pub usage: bool,
    /// One line, without the `memward:` prefix.
    pub msg: String,
}

fn env_error(msg: String) -> LibError {
    LibError { usage: false, msg }
}

/// Chooses the library: `--lib`, then `$MEMWARD_LIB`, then next to the executable, then in
/// `../lib` relative to it (an installed layout: `bin/memward`, `lib/libmemward.so`), and
/// checks that it can be preloaded. Returns an absolute path, as LD_PRELOAD must not
/// depend on the child's directory.
pub fn find(
    explicit: Option<PathBuf>,
    env: Option<OsString>,
    exe: Option<&Path>,
) -> Result<PathBuf, LibError> {
    let usage = explicit.is_some();
    let err = |msg: String| LibError { usage, msg };
    let chosen = if let Some(p) = explicit {
        Some((p, "--lib"))
    } else {
        env.filter(|v| !v.is_empty())
            .map(|v| (PathBuf::from(v), "MEMWARD_LIB"))
    };
    let (path, source) = match chosen {
        Some((p, source)) => {
            if !p.is_file() {
                return Err(err(format!(
                    "library {} (from {source}) does not exist or is not a file",
                    p.display()
                )));
            }
            (p, source)
        }
        None => {
            let dir = exe.and_then(Path::parent).ok_or_else(|| {
                env_error(format!(
                    "cannot locate {LIB_NAME}: set MEMWARD_LIB to its path"
                ))
            })?;
            let candidates = [dir.join(LIB_NAME), dir.join("../lib").join(LIB_NAME)];
            match candidates.iter().find(|c| c.is_file()) {
                Some(c) => (c.clone(), "the memward executable's directory"),
                None => {
                    return Err(env_error(format!(
                        "{LIB_NAME} not found next to {} nor in {}; build it with \
                         `cargo build --release` or set MEMWARD_LIB to its path",
                        dir.display(),
                        dir.join("../lib").display()
                    )))
                }
            }
        }
    };
    let path = path
        .canonicalize()
        .map_err(|e| err(format!("library {}: {e}", path.display())))?;
    // ld.so splits LD_PRELOAD at colons and spaces, so such a path cannot be preloaded.
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| matches!(b, b':' | b' ' | b'\t' | b'\n'))
    {
        return Err(err(format!(
            "library path {} contains a colon or white space, which LD_PRELOAD cannot express",
            path.display()
        )));
    }
    let file = std::fs::File::open(&path)
        .map_err(|e| err(format!("library {} (from {source}): {e}", path.display())))?;
    // Reads only the parts the check looks at (headers, dynamic symbols), not the whole
    // file: a release libmemward.so is mostly debug information.
    check_preloadable(&object::ReadCache::new(file)).map_err(|why| {
        err(format!(
            "library {} (from {source}) cannot be preloaded: {why}",
            path.display()
        ))
    })?;
    Ok(path)
}

/// Checks that `data` is an ELF shared object that this machine's loader would preload
/// and that defines `malloc`. The error says what is wrong in a few words.
pub fn check_preloadable<'data, R: ReadRef<'data>>(data: R) -> Result<(), String> {
    let file = match object::File::parse(data) {
        Ok(f) if f.format() == BinaryFormat::Elf => f,
        _ => return Err("it is not an ELF shared library".into()),
    };
    if file.kind() != ObjectKind::Dynamic {
        return Err(format!(
            "it is an ELF {}, not a shared library",
            match file.kind() {
                ObjectKind::Relocatable => "object file",
                ObjectKind::Executable => "executable",
                ObjectKind::Core => "core dump",
                _ => "file of unknown type",
            }
        ));
    }
    let host_64 = cfg!(target_pointer_width = "64");
    if file.is_64() != host_64 {
        return Err(format!(
            "it is a {}-bit library and this machine runs {}-bit programs",
            if file.is_64() { 64 } else { 32 },
            if host_64 { 64 } else { 32 }
        ));
    }
    if let Some(host) = host_architecture() {
        if file.architecture() != host {
            return Err(format!(
                "it is built for {:?}, not for this machine ({})",
                file.architecture(),
                std::env::consts::ARCH
            ));
        }
    }
    let defines_malloc = file
        .dynamic_symbols()
        .any(|s| s.is_definition() && s.name() == Ok("malloc"));
    if !defines_malloc {
        return Err("it does not define `malloc`, so it would not replace the allocator".into());
    }
    Ok(())
}

/// The architecture of the programs this memward runs, where we know its name in `object`.
fn host_architecture() -> Option<Architecture> {
    Some(match std::env::consts::ARCH {
        "x86_64" => Architecture::X86_64,
        "x86" => Architecture::I386,
        "aarch64" => Architecture::Aarch64,
        "arm" => Architecture::Arm,
        "riscv64" => Architecture::Riscv64,
        "powerpc64" => Architecture::PowerPc64,
        "s390x" => Architecture::S390x,
        "loongarch64" => Architecture::LoongArch64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        crate::private_temp_dir().unwrap()
    }

    /// A real shared library that defines malloc: the C library this test runs on.
    fn libc_path() -> PathBuf {
        [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            // Other architectures: the libc the loader reports for this process.
            let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
            maps.lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
                .map(PathBuf::from)
        })
        .expect("the C library's path")
    }

    #[test]
    fn text_files_and_executables_are_refused() {
        let e = check_preloadable(&b"root:x:0:0:root:/root:/bin/bash\n"[..]).unwrap_err();
        assert!(e.contains("not an ELF shared library"), "{e}");
        let e = check_preloadable(&b""[..]).unwrap_err();
        assert!(e.contains("not an ELF"), "{e}");
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // Rust test binaries are position-independent executables: ELF type DYN, which the
        // loader would still refuse to preload usefully; they do not define malloc.
        assert!(check_preloadable(&exe[..]).is_err());
        // A truncated ELF header is not a library either.
        let libc = std::fs::read(libc_path()).unwrap();
        assert!(check_preloadable(&libc[..40]).is_err());
    }

    #[test]
    fn a_library_defining_malloc_is_accepted() {
        check_preloadable(&std::fs::read(libc_path()).unwrap()[..]).unwrap();
    }

    #[test]
    fn a_library_without_malloc_is_refused() {
        // libm is a real shared library for this machine, but it does not define malloc.
        let libc = libc_path();
        let libm = libc.with_file_name("libm.so.6");
        let e = check_preloadable(&std::fs::read(libm).unwrap()[..]).unwrap_err();
        assert!(e.contains("does not define `malloc`"), "{e}");
    }

    #[test]
    fn lookup_order() {
        let dir = temp_dir();
        let bin = dir.join("bin");
        let lib = dir.join("lib");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        let exe = bin.join("memward");
        let real = std::fs::read(libc_path()).unwrap();
        let other = dir.join("other.so");
        std::fs::write(&other, &real).unwrap();

        // Nothing installed next to the executable: a one-line error naming the fix.
        let e = find(None, None, Some(&exe)).unwrap_err();
        assert!(!e.usage);
        assert!(
            e.msg.contains("cargo build --release") && !e.msg.contains('\n'),
            "{}",
            e.msg
        );
        // The installed layout bin/ + lib/.
        std::fs::write(lib.join(LIB_NAME), &real).unwrap();
        let found = find(None, None, Some(&exe)).unwrap();
        assert_eq!(found, lib.join(LIB_NAME).canonicalize().unwrap());
        // Next to the executable beats ../lib.
        std::fs::write(bin.join(LIB_NAME), &real).unwrap();
        let found = find(None, None, Some(&exe)).unwrap();
        assert_eq!(found, bin.join(LIB_NAME).canonicalize().unwrap());
        // MEMWARD_LIB beats both; an empty one is ignored; --lib beats it.
        let env = Some(other.clone().into_os_string());
        assert_eq!(
            find(None, env.clone(), Some(&exe)).unwrap(),
            other.canonicalize().unwrap()
        );
        assert_eq!(
            find(None, Some(OsString::new()), Some(&exe)).unwrap(),
            bin.join(LIB_NAME).canonicalize().unwrap()
        );
        assert_eq!(
            find(Some(lib.join(LIB_NAME)), env, Some(&exe)).unwrap(),
            lib.join(LIB_NAME).canonicalize().unwrap()
        );
        // An explicit path that does not exist is an error, not a fallback.
        let e = find(None, Some(dir.join("nope.so").into()), Some(&exe)).unwrap_err();
        assert!(
            e.msg.contains("MEMWARD_LIB") && e.msg.contains("nope.so"),
            "{}",
            e.msg
        );
        assert!(!e.usage, "a bad MEMWARD_LIB is not a command-line error");
        let e = find(Some(dir.join("nope.so")), None, Some(&exe)).unwrap_err();
        assert!(e.msg.contains("--lib") && e.usage, "{}", e.msg);
        // A file that is not a library is refused, whichever way it was named.
        let text = dir.join("notes.txt");
        std::fs::write(&text, "hello\n").unwrap();
        let e = find(Some(text.clone()), None, Some(&exe)).unwrap_err();
        assert!(
            e.usage && e.msg.contains("cannot be preloaded"),
            "{}",
            e.msg
        );
        let e = find(None, Some(text.into()), Some(&exe)).unwrap_err();
        assert!(!e.usage && e.msg.contains("MEMWARD_LIB"), "{}", e.msg);
        // Paths LD_PRELOAD cannot carry are refused.
        let spaced = dir.join("a b.so");
        std::fs::write(&spaced, &real).unwrap();
        let e = find(Some(spaced), None, Some(&exe)).unwrap_err();
        assert!(e.msg.contains("white space"), "{}", e.msg);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
