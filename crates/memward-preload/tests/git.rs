//! `git` on a generated repository: `init`, a first commit of 3,000 files in 60
//! directories, four more commits that modify, add, delete and rename files, then `log`
//! with rename detection and stats, `diff`, `blame`, `grep` (threaded), `gc` (which runs
//! `repack`, `pack-objects` with delta search, `prune`, `reflog`...), `fsck --full
//! --strict`, `count-objects` and `ls-tree`.
//!
//! Why: git allocates heavily in many short-lived processes (object parsing, diff and
//! rename detection, delta compression in threads, pack indexing), and every object is
//! named by the hash of its content. With authors and dates fixed, every hash is
//! reproducible, so the whole transcript must be identical under glibc and memward; `fsck`
//! re-verifies every object of the repository built under the allocator.

mod common;

use common::{assert_same, report_times, require, Allocator, Session, TempDir};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FILES: usize = 3000;
const COMMITS: usize = 5;

fn file_path(i: usize) -> String {
    format!("dir{:02}/sub{}/file{i:04}.txt", i % 60, i % 3)
}

/// Content of file `i` as of commit `version`: a few dozen lines, most of which stay the
/// same between versions (so deltas and rename detection have work to do).
fn file_content(i: usize, version: usize) -> String {
    let mut s = String::new();
    let lines = 20 + (i * 7) % 60;
    for l in 0..lines {
        let changed = version > 0 && (i + l) % (7 + version) == 0;
        let _ = writeln!(
            s,
            "line{l} of file {i}: {} {}",
            if changed {
                "changed in version"
            } else {
                "original"
            },
            if changed {
                version
            } else {
                (i * 31 + l * 17) % 1000
            }
        );
    }
    s
}

/// Writes the working tree for `version`: version 0 creates all files; later versions
/// modify a slice, delete some, rename some and add new ones.
fn write_tree(root: &Path, version: usize) {
    for i in 0..FILES {
        let path = root.join(file_path(i));
        let touched = version == 0 || i % (5 + version) == 0;
        if version > 0 && i % 97 == version {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if version > 0 && i % 89 == version && path.exists() {
            // A rename with unchanged content: `log -M` must pair it up.
            let to = root.join(format!("renamed/v{version}/file{i:04}.txt"));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::rename(&path, &to).unwrap();
            continue;
        }
        if touched && (version == 0 || path.exists()) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file_content(i, version)).unwrap();
        }
    }
    for j in 0..50 * version {
        let path = root.join(format!("added/v{version}/new{j}.txt"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file_content(FILES + j, version)).unwrap();
    }
}

struct Repo<'a> {
    session: &'a mut Session,
    root: &'a Path,
    home: &'a Path,
    transcript: String,
    /// Commit number, for the reproducible commit dates.
    commit: usize,
}

impl Repo<'_> {
    fn git_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.session.command("git");
        let date = format!("2024-01-0{}T12:00:00+00:00", self.commit + 1);
        cmd.current_dir(self.root)
            .args(args)
            // No user or system configuration; fixed identities and dates, so hashes are
            // reproducible.
            .env("HOME", self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Memward Test")
            .env("GIT_AUTHOR_EMAIL", "test@memward.invalid")
            .env("GIT_COMMITTER_NAME", "Memward Test")
            .env("GIT_COMMITTER_EMAIL", "test@memward.invalid")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
        cmd
    }

    /// Runs git; its stdout goes into the transcript (filtered by `keep`).
    fn git(&mut self, args: &[&str], keep: fn(&str) -> bool) -> String {
        let what = format!("git {}", args.join(" "));
        let mut cmd = self.git_command(args);
        let out = self.session.run(&what, &mut cmd, Duration::from_secs(180));
        out.expect_success(self.session.allocator);
        self.session.expect_summary(out.pid, &what);
        let _ = writeln!(self.transcript, "$ {what}");
        for line in out.stdout.lines().filter(|l| keep(l)) {
            self.transcript.push_str(line);
            self.transcript.push('\n');
        }
        out.stdout
    }
}

fn all(_: &str) -> bool {
    true
}

/// `count-objects -v` minus the sizes, which depend on how delta search split the work
/// among threads, not on the allocator.
fn counts_only(line: &str) -> bool {
    !line.starts_with("size")
}

fn run_workload(allocator: Allocator, base: &Path) -> (String, Session) {
    let mut session = Session::new(allocator);
    let root = base.join(format!("repo-{}", allocator.name()));
    let home = base.join(format!("home-{}", allocator.name()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut repo = Repo {
        session: &mut session,
        root: &root,
        home: &home,
        transcript: String::new(),
        commit: 0,
    };
    repo.git(&["init", "-q"], all);
    repo.git(&["config", "gc.auto", "0"], all);
    repo.git(&["config", "core.autocrlf", "false"], all);
    for version in 0..COMMITS {
        write_tree(&root, version);
        repo.commit = version;
        repo.git(&["add", "-A"], all);
        let msg = format!("version {version}");
        repo.git(&["commit", "-q", "-m", &msg], all);
    }
    repo.git(&["log", "--stat", "-M", "--format=%H %an %ad %s"], all);
    repo.git(&["diff", "--shortstat", "-M", "HEAD~4", "HEAD"], all);
    repo.git(&["blame", "-s", "--", &file_path(0)], all);
    repo.git(&["grep", "-c", "changed in version 3", "HEAD"], all);
    repo.git(&["gc", "-q"], all);
    repo.git(&["fsck", "--full", "--strict", "--no-progress"], all);
    repo.git(&["count-objects", "-v"], counts_only);
    repo.git(&["rev-parse", "HEAD", "HEAD^{tree}"], all);
    let tree = repo.git(&["ls-tree", "-r", "HEAD"], all);
    assert!(
        tree.lines().count() > FILES,
        "ls-tree lists only {} files",
        tree.lines().count()
    );
    let transcript = repo.transcript;
    (transcript, session)
}

#[test]
fn git_commit_log_gc_fsck() {
    require("git", "git");
    let base = TempDir::new("git");
    let (glibc, gs) = run_workload(Allocator::Glibc, base.path());
    let (memward, ms) = run_workload(Allocator::Memward, base.path());
    assert_same("git transcript", &glibc, &memward);
    report_times("git", &gs, &ms);
}
