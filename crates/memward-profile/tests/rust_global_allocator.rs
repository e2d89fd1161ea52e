//! A Rust program whose global allocator is `memward::Memward` (with memward's `profile`
//! feature) profiles itself when `MEMWARD_PROFILE=FILE` is in its environment, without
//! `LD_PRELOAD`. The test binary is that program: it re-runs itself with the variable set
//! and the workload selected, then reads the profile back.

use memward_profile_format::{Ending, ModuleMap, Reader, Record, StackTable};
use object::{Object, ObjectSymbol};
use std::collections::HashMap;
use std::process::Command;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

const CHILD: &str = "MEMWARD_PROFILE_TEST_CHILD";

/// The site the test looks for: 77 blocks of 12,345 bytes, 40 of them freed.
#[inline(never)]
fn workload_site() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..77).map(|i| vec![i as u8; 12_345]).collect();
    v.truncate(37);
    v
}

#[test]
fn profiles_itself_through_memward_profile() {
    if std::env::var_os(CHILD).is_some() {
        let kept = std::hint::black_box(workload_site());
        std::mem::forget(kept);
        return;
    }
    let dir = std::env::temp_dir().join(format!("memward-profile-rust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rust.prof");
    let exe = std::env::current_exe().unwrap();
    let st = Command::new(&exe)
        .args([
            "--exact",
            "profiles_itself_through_memward_profile",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MEMWARD_PROFILE", &file)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let mut r = Reader::new(std::io::BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    assert_eq!(
        r.header().exe,
        exe.canonicalize().unwrap().as_os_str().as_encoded_bytes()
    );
    let mut modules = ModuleMap::default();
    let mut stacks = StackTable::default();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut site_allocs = 0;
    let mut site_stacks = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        match rec {
            Record::Module(m) => modules.insert(m),
            Record::StackNode(n) => stacks.insert(n).unwrap(),
            Record::Alloc {
                ptr, size, stack, ..
            } if size == 12_345 => {
                site_allocs += 1;
                live.insert(ptr, size);
                site_stacks.push(stack);
            }
            Record::Free { ptr, .. } => {
                live.remove(&ptr);
            }
            _ => {}
        }
    }
    assert_eq!(r.ending(), Ending::Complete);
    assert_eq!(site_allocs, 77);
    assert_eq!(live.len(), 37);

    // Every one of those allocations was made under `workload_site` (memward is linked
    // into this executable, so the allocator's own frames come first; the site is found
    // among the frames by the executable's symbol table).
    let data = std::fs::read(&exe).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let site = obj
        .symbols()
        .find(|s| s.name().is_ok_and(|n| n.contains("workload_site")) && s.size() > 0)
        .expect("the site's symbol");
    let (start, size) = (site.address(), site.size());
    for stack in site_stacks {
        let hit = stacks.frames(stack).any(|a| {
            modules.find(a).is_some_and(|m| {
                let rel = m.relative(a) - 1;
                rel >= start && rel < start + size
            })
        });
        assert!(hit, "stack {stack} misses workload_site");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
