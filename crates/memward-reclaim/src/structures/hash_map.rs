//! A concurrent hash map with copy-on-write buckets.
//!
//! The table is a fixed array of atomic bucket pointers (no resizing, so the choice of bucket
//! count is the caller's). A bucket is an immutable vector of entries: a reader protects the
//! bucket pointer and searches it without further synchronisation; a writer builds the bucket's
//! next version and installs it with one CAS, then retires the old version. Every update
//! therefore retires exactly one object, which makes this the retire-heaviest of the three
//! workloads, and a reader's whole lookup depends on one protection, which is what a guard must
//! keep valid.

use super::Reclaim;
use crate::sync::{AtomicPtr, Ordering};
use crate::Collector;
use core::hash::{BuildHasher, Hash};
use core::ptr;
use std::collections::hash_map::RandomState;

struct Bucket<K, V> {
    entries: Vec<(K, V)>,
}

/// A lock-free hash map from `K` to `V` (lookups are wait-free apart from `protect`'s retry).
///
/// ```
/// use memward_reclaim::structures::HashMap;
/// let map = HashMap::with_buckets(64);
/// assert!(map.insert(1, "one"));
/// assert!(!map.insert(1, "uno")); // replaced
/// assert_eq!(map.get(&1), Some("uno"));
/// assert!(map.remove(&1));
/// assert_eq!(map.get(&1), None);
/// ```
pub struct HashMap<K, V, R: Reclaim = Collector, S = RandomState> {
    buckets: Box<[AtomicPtr<Bucket<K, V>>]>,
    hasher: S,
    reclaim: R,
}

// SAFETY: keys and values move between threads through the map (`Send`) and are read from
// several threads at once (`Sync`); buckets are reached only through atomics and reclamation.
unsafe impl<K: Send + Sync, V: Send + Sync, R: Reclaim, S: Send> Send for HashMap<K, V, R, S> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync, R: Reclaim, S: Sync> Sync for HashMap<K, V, R, S> {}

impl<K, V> HashMap<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A map with `buckets` buckets (rounded up to a power of two) and its own [`Collector`].
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::<u32, u32>::with_buckets(10);
    /// assert_eq!(map.bucket_count(), 16);
    /// ```
    pub fn with_buckets(buckets: usize) -> Self {
        Self::with_reclaim(buckets, Collector::new(), RandomState::new())
    }
}

impl<K, V, R, S> HashMap<K, V, R, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    R: Reclaim,
    S: BuildHasher,
{
    /// A map with `buckets` buckets (rounded up to a power of two, at least 1), reclaiming
    /// through `reclaim` and hashing with `hasher`.
    ///
    /// ```
    /// use memward_reclaim::{structures::HashMap, Collector};
    /// let map: HashMap<u8, u8> = HashMap::with_reclaim(4, Collector::new(), Default::default());
    /// map.insert(1, 2);
    /// ```
    pub fn with_reclaim(buckets: usize, reclaim: R, hasher: S) -> Self {
        let n = buckets.max(1).next_power_of_two();
        Self {
            buckets: (0..n).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            hasher,
            reclaim,
        }
    }

    /// The number of buckets.
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::<u8, u8>::with_buckets(1);
    /// assert_eq!(map.bucket_count(), 1);
    /// ```
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The reclamation scheme.
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::<u8, u8>::with_buckets(1);
    /// assert_eq!(map.reclaim().stats().retired, 0);
    /// ```
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }

    fn bucket(&self, key: &K) -> &AtomicPtr<Bucket<K, V>> {
        let h = self.hasher.hash_one(key) as usize;
        &self.buckets[h & (self.buckets.len() - 1)]
    }

    /// Calls `f` on the value of `key` while it is protected, and returns its result.
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::with_buckets(8);
    /// map.insert("k", vec![1, 2, 3]);
    /// assert_eq!(map.get_with(&"k", |v| v.len()), Some(3));
    /// ```
    pub fn get_with<T>(&self, key: &K, f: impl FnOnce(&V) -> T) -> Option<T> {
        let mut guard = self.reclaim.enter();
        let bucket = self.reclaim.protect(&mut guard, 0, self.bucket(key));
        if bucket.is_null() {
            return None;
        }
        // SAFETY: protected, and the bucket array is a root; bucket versions are immutable.
        let entries = unsafe { &(*bucket).entries };
        entries.iter().find(|(k, _)| k == key).map(|(_, v)| f(v))
    }

    /// A clone of the value of `key`.
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::with_buckets(8);
    /// map.insert(3, 9);
    /// assert_eq!(map.get(&3), Some(9));
    /// ```
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_with(key, V::clone)
    }

    /// Inserts or replaces; returns whether `key` was absent.
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::with_buckets(8);
    /// assert!(map.insert(3, 9));
    /// assert!(!map.insert(3, 10));
    /// ```
    pub fn insert(&self, key: K, value: V) -> bool {
        let mut inserted = false;
        self.update(&key, |entries| {
            let mut next: Vec<(K, V)> = entries.to_vec();
            match next.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => {
                    entry.1 = value.clone();
                    inserted = false;
                }
                None => {
                    next.push((key.clone(), value.clone()));
                    inserted = true;
                }
            }
            Some(next)
        });
        inserted
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// ```
    /// let map = memward_reclaim::structures::HashMap::with_buckets(8);
    /// map.insert(3, 9);
    /// assert!(map.remove(&3));
    /// assert!(!map.remove(&3));
    /// ```
    pub fn remove(&self, key: &K) -> bool {
        self.update(key, |entries| {
            let at = entries.iter().position(|(k, _)| k == key)?;
            let mut next = Vec::with_capacity(entries.len() - 1);
            next.extend_from_slice(&entries[..at]);
            next.extend_from_slice(&entries[at + 1..]);
            Some(next)
        })
    }

    /// Replaces the bucket of `key` with `f(current entries)` by CAS, retrying on contention;
    /// `f` returning `None` means "no change". Returns whether a new version was installed.
    fn update(&self, key: &K, mut f: impl FnMut(&[(K, V)]) -> Option<Vec<(K, V)>>) -> bool {
        let slot = self.bucket(key);
        let mut guard = self.reclaim.enter();
        loop {
            let cur = self.reclaim.protect(&mut guard, 0, slot);
            let entries: &[(K, V)] = if cur.is_null() {
                &[]
            } else {
                // SAFETY: protected, reachable from the root array, immutable.
                unsafe { &(*cur).entries }
            };
            let Some(next) = f(entries) else {
                return false;
            };
            let new = if next.is_empty() {
                ptr::null_mut()
            } else {
                Box::into_raw(Box::new(Bucket { entries: next }))
            };
            match slot.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    if !cur.is_null() {
                        // SAFETY: from `Box::into_raw`, unlinked by our CAS, retired once (only
                        // the CAS that replaced it retires it).
                        unsafe { self.reclaim.retire(&guard, cur) };
                    }
                    return true;
                }
                Err(_) => {
                    if !new.is_null() {
                        // SAFETY: never published; ours alone.
                        drop(unsafe { Box::from_raw(new) });
                    }
                }
            }
        }
    }
}

impl<K, V, R: Reclaim, S> Drop for HashMap<K, V, R, S> {
    fn drop(&mut self) {
        for slot in self.buckets.iter() {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: `&mut self`: the linked version is ours, from `Box::into_raw`.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
