//! `memward install --prefix DIR`: puts the tool and the library where C programs and
//! users find them, `DIR/bin/memward` and `DIR/lib/libmemward.so` (the layout `memward run`
//! looks for next to itself).
//!
//! Each file is copied to a temporary name in its destination directory and renamed over
//! the old one. Overwriting a shared library in place would change the code under every
//! running program that has it mapped (and crash them); a rename leaves them the old
//! inode. There is no header to install: libmemward.so exports only the C library's own
//! malloc family, declared by `<stdlib.h>` and `<malloc.h>`.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What was installed, as absolute paths.
#[derive(Debug)]
pub struct Installed {
    /// `DIR/bin/memward`.
    pub tool: PathBuf,
    /// `DIR/lib/libmemward.so`.
    pub library: PathBuf,
}

/// Copies `tool` (the memward executable) and `library` into `prefix`.
pub fn install(prefix: &Path, tool: &Path, library: &Path) -> io::Result<Installed> {
    let bin = prefix.join("bin");
    let lib = prefix.join("lib");
    for dir in [&bin, &lib] {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    }
    let tool_dest = bin.join("memward").canonicalize_parent()?;
    let lib_dest = lib.join(crate::library::LIB_NAME).canonicalize_parent()?;
    replace_file(tool, &tool_dest)?;
    replace_file(library, &lib_dest)?;
    Ok(Installed {
        tool: tool_dest,
        library: lib_dest,
    })
}

/// The text printed after a successful install: where things went and how to use them.
pub fn usage_notes(done: &Installed) -> String {
    let lib_dir = done.library.parent().unwrap_or(Path::new("/"));
    let mut text = String::new();
    text.push_str(&format!(
        "installed {}\ninstalled {}\n\n",
        done.tool.display(),
        done.library.display()
    ));
    text.push_str(&format!(
        "Run any program on memward:   {} run -- CMD ARGS...\n\
         or by hand:                   LD_PRELOAD={} CMD ARGS...\n\
         Link a C program against it:  cc prog.c -L{dir} -Wl,-rpath,{dir} -lmemward\n",
        done.tool.display(),
        done.library.display(),
        dir = lib_dir.display(),
    ));
    if !is_system_lib_dir(lib_dir) {
        text.push_str(&format!(
            "(without -Wl,-rpath, add {} to /etc/ld.so.conf.d/ and run ldconfig, or set \
             LD_LIBRARY_PATH)\n",
            lib_dir.display()
        ));
    } else {
        text.push_str("(run ldconfig once so the loader's cache knows the new library)\n");
    }
    text
}

/// Directories the loader searches without configuration (Debian's multiarch ones and
/// /usr/local/lib, which Debian lists in /etc/ld.so.conf.d).
fn is_system_lib_dir(dir: &Path) -> bool {
    ["/lib", "/usr/lib", "/usr/local/lib"]
        .iter()
        .any(|d| dir == Path::new(d))
}

trait CanonicalParent {
    fn canonicalize_parent(self) -> io::Result<PathBuf>;
}

impl CanonicalParent for PathBuf {
    /// The path with its (existing) directory made absolute and free of symlinks.
    fn canonicalize_parent(self) -> io::Result<PathBuf> {
        let name = self.file_name().expect("a file name").to_owned();
        let dir = self.parent().unwrap_or(Path::new("."));
        Ok(dir.canonicalize()?.join(name))
    }
}

/// Copies `from` to `to` through a temporary file in `to`'s directory and a rename; the
/// result is mode 0755 (both files are executable code).
fn replace_file(from: &Path, to: &Path) -> io::Result<()> {
    let name = to.file_name().expect("a file name").to_string_lossy();
    let tmp = to.with_file_name(format!(".{name}.memward-install-{}", std::process::id()));
    let copied = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, to));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("copying {} to {}: {e}", from.display(), to.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_both_files_and_replaces_old_ones() {
        let dir = crate::private_temp_dir().unwrap();
        let tool = dir.join("tool");
        let lib = dir.join("lib.so");
        std::fs::write(&tool, b"tool v1").unwrap();
        std::fs::write(&lib, b"lib v1").unwrap();
        let prefix = dir.join("prefix");
        let done = install(&prefix, &tool, &lib).unwrap();
        assert_eq!(
            done.tool,
            prefix.canonicalize().unwrap().join("bin/memward")
        );
        assert_eq!(
            done.library,
            prefix.canonicalize().unwrap().join("lib/libmemward.so")
        );
        assert_eq!(std::fs::read(&done.tool).unwrap(), b"tool v1");
        let mode = std::fs::metadata(&done.library)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);

        // A second install replaces the files by rename: an open handle on the old
        // library (a running program's mapping) keeps the old contents.
        let old = std::fs::File::open(&done.library).unwrap();
        std::fs::write(&lib, b"lib v2").unwrap();
        install(&prefix, &tool, &lib).unwrap();
        assert_eq!(std::fs::read(&done.library).unwrap(), b"lib v2");
        let mut before = String::new();
        std::io::Read::read_to_string(&mut &old, &mut before).unwrap();
        assert_eq!(before, "lib v1");
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(prefix.join("lib")).unwrap().count(), 1);

        let notes = usage_notes(&done);
        assert!(
            notes.contains("-lmemward") && notes.contains("ldconfig"),
            "{notes}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_prefix_is_an_error_naming_it() {
        let dir = crate::private_temp_dir().unwrap();
        let file = dir.join("plain-file");
        std::fs::write(&file, b"").unwrap();
        // A prefix below a regular file cannot be created.
        let e = install(&file.join("prefix"), &file, &file).unwrap_err();
        assert!(e.to_string().contains("plain-file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
