//! `Walker::walk_cached`: a kept walk is returned only for the same stack. Two callers
//! of one capturing function, alike in shape (so the capture runs at the same stack
//! pointer under both), alternate; every capture must name its real caller, and most
//! must come from the cache (else this would not test it).

use memward_profile::shared::{Scan, Stacks, WalkCache, Walked, MAX_FRAMES};
use std::hint::black_box;

struct Env {
    stacks: Stacks,
    cache: WalkCache,
    /// Stacks by id (id = index + 1).
    known: Vec<Vec<u64>>,
    hits: usize,
    /// Where `leaf` kept a local on the last call (its frame's depth).
    depth: usize,
}

impl Env {
    #[inline(never)]
    fn capture(&mut self) -> Vec<u64> {
        let walker = self.stacks.walker();
        let top = memward_profile::shared::stack_top(false);
        let mut out = [0u64; MAX_FRAMES];
        let stacks = &mut self.stacks;
        let walked = walker.walk_cached(
            &mut out,
            MAX_FRAMES,
            top,
            &mut |ra, sp, bp, lo, hi| stacks.step_slow(ra, sp, bp, lo, hi),
            Some(&mut self.cache),
            0,
        );
        match walked {
            Walked::Known(id) => {
                self.hits += 1;
                self.known[id as usize - 1].clone()
            }
            Walked::Frames(n) => {
                let frames = out[..n].to_vec();
                let id = match self.known.iter().position(|k| *k == frames) {
                    Some(i) => i + 1,
                    None => {
                        self.known.push(frames.clone());
                        self.known.len()
                    }
                };
                self.cache.remember(id as u32);
                frames
            }
        }
    }
}

#[inline(never)]
fn leaf(env: &mut Env) -> Vec<u64> {
    let local = black_box(0u8);
    env.depth = black_box(&local) as *const u8 as usize;
    black_box(env.capture())
}

#[inline(never)]
fn via_a(env: &mut Env, n: u64) -> (Vec<u64>, u64) {
    let f = leaf(black_box(env));
    (f, black_box(n + 1))
}

#[inline(never)]
fn via_b(env: &mut Env, n: u64) -> (Vec<u64>, u64) {
    let f = leaf(black_box(env));
    (f, black_box(n + 2))
}

/// Which of `a` and `b` the return address `ra` lies in: the closer start below it.
fn owner(ra: u64, a: u64, b: u64) -> Option<char> {
    match (ra.checked_sub(a), ra.checked_sub(b)) {
        (Some(da), Some(db)) => Some(if da < db { 'a' } else { 'b' }),
        (Some(_), None) => Some('a'),
        (None, Some(_)) => Some('b'),
        (None, None) => None,
    }
}

#[test]
fn kept_walks_are_returned_only_for_the_same_stack() {
    let mut scan = Scan::new().unwrap();
    scan.refresh();
    let mut stacks = Stacks::new();
    for m in scan.modules() {
        stacks.add(m);
    }
    let mut env = Env {
        stacks,
        cache: WalkCache::new(),
        known: Vec::new(),
        hits: 0,
        depth: 0,
    };
    let mut depths = [0usize; 2];
    let (a, b) = (via_a as *const () as u64, via_b as *const () as u64);
    let leaf_at = leaf as *const () as u64;
    for round in 0..200u64 {
        let use_a = (round * 7 + round / 3) % 2 == 0;
        let (frames, _) = if use_a {
            via_a(&mut env, round)
        } else {
            via_b(&mut env, round)
        };
        depths[usize::from(use_a)] = env.depth;
        // The frame after `leaf`'s is its caller's.
        let at = frames
            .iter()
            .position(|&ra| ra > leaf_at && ra - leaf_at < 256)
            .unwrap_or_else(|| panic!("no frame in leaf: {frames:x?}"));
        let caller = frames[at + 1];
        assert_eq!(
            owner(caller, a, b),
            Some(if use_a { 'a' } else { 'b' }),
            "round {round}: {frames:x?}"
        );
    }
    // Both callers ran the capture at the same depth, so the cache had to tell their
    // stacks apart by what they hold, not by where the walk started.
    assert_eq!(
        depths[0], depths[1],
        "the two callers' frames differ in size"
    );
    assert!(env.known.len() >= 2, "{:?}", env.known.len());
    if env.hits == 0 {
        // Every walk took a slow step: more return addresses of this stack share a set
        // of the rule table than it has ways, in this process's address layout (rare),
        // so none was kept. Another process gets another layout.
        let tries: u32 = std::env::var("WALK_CACHE_TRY").map_or(0, |v| v.parse().unwrap());
        assert!(
            tries < 3,
            "no walk came from the cache in {} processes",
            tries + 1
        );
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "kept_walks_are_returned_only_for_the_same_stack"])
            .env("WALK_CACHE_TRY", (tries + 1).to_string())
            .status()
            .unwrap();
        assert!(status.success(), "the rerun failed");
        return;
    }
    assert!(
        env.hits > 150,
        "only {} of 200 walks came from the cache",
        env.hits
    );
}
