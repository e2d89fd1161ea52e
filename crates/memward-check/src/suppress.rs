//! Suppressions: which reports the user chose not to see.
//!
//! The file has one suppression per line, `KIND:PATTERN`, as LeakSanitizer's and
//! AddressSanitizer's files do; blank lines and lines starting with `#` are ignored.
//! `KIND` is the bug name of the report's SUMMARY line (`double-free`, `bad-free`,
//! `alloc-dealloc-mismatch`, `new-delete-type-mismatch`, `heap-buffer-overflow`,
//! `heap-use-after-free`, `bad-malloc_usable_size`, `leak`) or `*` for any. `PATTERN` is
//! matched against every frame of the report's stacks (the access or call stack, and the
//! allocation and free stacks): the function name, the source file and the module path.
//! It matches anywhere in them unless it starts with `^` (anchored at the start) or ends
//! with `$` (anchored at the end); `*` matches any run of characters.

/// The kinds a line may name.
const KINDS: &[&str] = &[
    "*",
    "double-free",
    "bad-free",
    "alloc-dealloc-mismatch",
    "new-delete-type-mismatch",
    "heap-buffer-overflow",
    "heap-use-after-free",
    "bad-malloc_usable_size",
    "leak",
];

/// One `KIND:PATTERN` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub kind: String,
    pub pattern: String,
}

/// The parsed file.
#[derive(Debug, Default)]
pub struct Suppressions {
    pub list: Vec<Suppression>,
}

impl Suppressions {
    /// Parses a suppressions file; `Err` names the first bad line.
    pub fn parse(text: &str) -> Result<Suppressions, String> {
        let mut list = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((kind, pattern)) = line.split_once(':') else {
                return Err(format!(
                    "line {}: expected KIND:PATTERN, found {line:?}",
                    i + 1
                ));
            };
            let (kind, pattern) = (kind.trim(), pattern.trim());
            if !KINDS.contains(&kind) {
                return Err(format!(
                    "line {}: unknown kind {kind:?} (expected one of {})",
                    i + 1,
                    KINDS.join(", ")
                ));
            }
            if pattern.is_empty() {
                return Err(format!("line {}: empty pattern", i + 1));
            }
            list.push(Suppression {
                kind: kind.to_string(),
                pattern: pattern.to_string(),
            });
        }
        Ok(Suppressions { list })
    }

    /// The first suppression of `kind` matching one of `names` (function names, files,
    /// module paths of the report's frames).
    pub fn find(&self, kind: &str, names: &[&str]) -> Option<&Suppression> {
        self.list.iter().find(|s| {
            (s.kind == "*" || s.kind == kind) && names.iter().any(|n| matches(&s.pattern, n))
        })
    }
}

/// Whether `pattern` matches `text` (see the module docs).
pub fn matches(pattern: &str, text: &str) -> bool {
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    let mut full = String::new();
    if !start {
        full.push('*');
    }
    full.push_str(p);
    if !end {
        full.push('*');
    }
    glob(full.as_bytes(), text.as_bytes())
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_sanitizer_templates() {
        assert!(matches("foo", "libfoo.so"));
        assert!(matches("^lib", "libfoo.so"));
        assert!(!matches("^foo", "libfoo.so"));
        assert!(matches(".so$", "libfoo.so"));
        assert!(!matches("foo$", "libfoo.so"));
        assert!(matches("lib*.so", "/usr/lib/libbar.so"));
        assert!(matches("^/usr/*/libbar.so$", "/usr/lib/libbar.so"));
        assert!(!matches("^/usr/*/libbaz.so$", "/usr/lib/libbar.so"));
        assert!(matches("*", ""));
    }

    #[test]
    fn parses_lines_and_finds_by_kind() {
        let s = Suppressions::parse(
            "# a comment\n\nleak:libpython\n double-free : ^my_free$\n*:third_party\n",
        )
        .unwrap();
        assert_eq!(s.list.len(), 3);
        assert_eq!(s.list[1].pattern, "^my_free$");
        assert!(s.find("double-free", &["my_free"]).is_some());
        assert!(s.find("double-free", &["my_free2"]).is_none());
        assert!(s.find("leak", &["/usr/lib/libpython3.11.so"]).is_some());
        assert!(s
            .find("heap-buffer-overflow", &["/src/third_party/x.c"])
            .is_some());
        assert!(s.find("bad-free", &["main"]).is_none());
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Suppressions::parse("leak:a\nnot a suppression\n").unwrap_err();
        assert!(e.starts_with("line 2: expected KIND:PATTERN"), "{e}");
        let e = Suppressions::parse("use-after-return:x\n").unwrap_err();
        assert!(e.contains("unknown kind \"use-after-return\""), "{e}");
        let e = Suppressions::parse("leak:\n").unwrap_err();
        assert!(e.contains("empty pattern"), "{e}");
    }
}
