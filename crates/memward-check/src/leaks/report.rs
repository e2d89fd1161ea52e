//! The leak report, in LeakSanitizer's layout with `memward` as the tool's name.
//!
//! Leaks are grouped by allocation stack and kind into records; direct records come
//! first, then indirect ones, each group by bytes leaked, largest first (as
//! LeakSanitizer sorts them). Each record prints its stack symbolised in-process, in
//! AddressSanitizer's frame format, followed by a blank line; the summary line counts
//! every leaked block of every record.

use super::blocks::LiveBlock;
use super::mark::LeakKind;
use memward_symbolize::{asan, Symbolizer};
use std::collections::HashMap;
use std::fmt::Write;

/// Bytes and objects of one kind leaked from one allocation stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRecord {
    /// Direct or indirect.
    pub kind: LeakKind,
    /// The allocation stack's id.
    pub stack: u64,
    /// Bytes leaked (the sizes the program asked for).
    pub bytes: usize,
    /// Blocks leaked.
    pub objects: usize,
}

/// Groups leaked blocks into records, in report order.
pub(crate) fn group(leaked: impl Iterator<Item = (LiveBlock, LeakKind)>) -> Vec<LeakRecord> {
    let mut by_key: HashMap<(LeakKind, u64), (usize, usize)> = HashMap::new();
    for (b, kind) in leaked {
        let e = by_key.entry((kind, b.stack)).or_default();
        e.0 += b.size;
        e.1 += 1;
    }
    let mut records: Vec<LeakRecord> = by_key
        .into_iter()
        .map(|((kind, stack), (bytes, objects))| LeakRecord {
            kind,
            stack,
            bytes,
            objects,
        })
        .collect();
    records.sort_by(|a, b| {
        (a.kind, b.bytes, b.objects, a.stack).cmp(&(b.kind, a.bytes, a.objects, b.stack))
    });
    records
}

/// The report for `records` (empty: no leak, no report), with the threads that could not
/// be stopped named first. `stack_of` gives the return addresses of an allocation stack.
///
/// ```
/// use memward_check::leaks::{write_report, LeakKind, LeakRecord};
/// let records = [LeakRecord { kind: LeakKind::Direct, stack: 1, bytes: 100, objects: 1 }];
/// let mut sym = memward_symbolize::Symbolizer::new(vec![]);
/// let text = write_report(&records, &[], &mut |_| vec![0x11], &mut sym);
/// assert!(text.contains("ERROR: memward: detected memory leaks\n\n\
///     Direct leak of 100 byte(s) in 1 object(s) allocated from:\n    #0 0x10  (<unknown module>)\n\n\
///     SUMMARY: memward: 100 byte(s) leaked in 1 allocation(s).\n"));
/// assert!(write_report(&[], &[], &mut |_| vec![], &mut sym).is_empty());
/// ```
pub fn write_report(
    records: &[LeakRecord],
    unsuspended: &[i32],
    stack_of: &mut dyn FnMut(u64) -> Vec<u64>,
    sym: &mut Symbolizer,
) -> String {
    let mut out = String::new();
    if records.is_empty() {
        return out;
    }
    let pid = std::process::id();
    let _ = writeln!(out, "\n{}", "=".repeat(65));
    let _ = writeln!(out, "=={pid}==ERROR: memward: detected memory leaks");
    for tid in unsuspended {
        let _ = writeln!(
            out,
            "=={pid}==Running thread {tid} was not suspended. False leaks are possible."
        );
    }
    out.push('\n');
    for r in records {
        let kind = match r.kind {
            LeakKind::Direct => "Direct",
            LeakKind::Indirect => "Indirect",
        };
        let _ = writeln!(
            out,
            "{kind} leak of {} byte(s) in {} object(s) allocated from:",
            r.bytes, r.objects
        );
        let stack = stack_of(r.stack);
        if stack.is_empty() {
            out.push_str("    <empty stack>\n");
        }
        asan::write_stack(sym, &stack, &mut out);
        out.push('\n');
    }
    let bytes: usize = records.iter().map(|r| r.bytes).sum();
    let objects: usize = records.iter().map(|r| r.objects).sum();
    let _ = writeln!(
        out,
        "SUMMARY: memward: {bytes} byte(s) leaked in {objects} allocation(s)."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_group_by_stack_and_sort_direct_first_then_by_bytes() {
        let b = |size, stack| LiveBlock {
            start: 0,
            size,
            stack,
        };
        use LeakKind::*;
        let recs = group(
            [
                (b(10, 1), Direct),
                (b(500, 2), Indirect),
                (b(30, 3), Direct),
                (b(10, 1), Direct),
                (b(5, 3), Indirect),
            ]
            .into_iter(),
        );
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.kind, r.stack, r.bytes, r.objects))
            .collect();
        assert_eq!(
            got,
            vec![
                (Direct, 3, 30, 1),
                (Direct, 1, 20, 2),
                (Indirect, 2, 500, 1),
                (Indirect, 3, 5, 1)
            ]
        );
    }

    #[test]
    fn report_layout_matches_leak_sanitizer() {
        let recs = [
            LeakRecord {
                kind: LeakKind::Direct,
                stack: 1,
                bytes: 100,
                objects: 1,
            },
            LeakRecord {
                kind: LeakKind::Indirect,
                stack: 2,
                bytes: 48,
                objects: 3,
            },
        ];
        let mut sym = Symbolizer::new(vec![]);
        let text = write_report(&recs, &[77], &mut |s| vec![0x1000 * s + 1], &mut sym);
        let pid = std::process::id();
        let want = format!(
            "\n{eq}\n=={pid}==ERROR: memward: detected memory leaks\n\
             =={pid}==Running thread 77 was not suspended. False leaks are possible.\n\n\
             Direct leak of 100 byte(s) in 1 object(s) allocated from:\n\
             \x20   #0 0x1000  (<unknown module>)\n\n\
             Indirect leak of 48 byte(s) in 3 object(s) allocated from:\n\
             \x20   #0 0x2000  (<unknown module>)\n\n\
             SUMMARY: memward: 148 byte(s) leaked in 4 allocation(s).\n",
            eq = "=".repeat(65)
        );
        assert_eq!(text, want);
    }
}
