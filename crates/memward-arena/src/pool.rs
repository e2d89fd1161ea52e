//! `Pool<T>`: a slot map with 8-byte generational keys.
//!
//! Values live in one `Vec` of slots; removed slots form an intrusive LIFO free list (the
//! link lives where the value was), so insert and remove are O(1) with no allocation once
//! the vector has grown, and `get` is one bounds check and one generation compare. A
//! `Key` is a 32-bit slot index and a non-zero 32-bit generation, so `Key` and
//! `Option<Key>` are both 8 bytes. Unlike slab's bare indices a key never aliases a later
//! value: generations grow on every reuse, and a slot whose generation would wrap is
//! retired for good (see `slot`).

mod slot;

use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU32;
use slot::Slot;

/// No free slot.
const NONE: u32 = u32::MAX;

/// A handle to a value in a [`Pool`]: 8 bytes, `Copy`, and never valid for any value but
/// the one it was made for.
///
/// ```
/// use memward_arena::{Key, Pool};
/// assert_eq!(core::mem::size_of::<Key>(), 8);
/// assert_eq!(core::mem::size_of::<Option<Key>>(), 8);
///
/// let mut pool = Pool::new();
/// let k = pool.insert("a");
/// pool.remove(k);
/// let k2 = pool.insert("b"); // reuses the slot
/// assert_eq!(pool.get(k), None); // the old key does not reach "b"
/// assert_eq!(pool.get(k2), Some(&"b"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: NonZeroU32,
}

impl Key {
    /// The key as one integer (index in the low half), for storing outside Rust.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(1);
    /// assert_eq!(memward_arena::Key::from_bits(k.to_bits()), Some(k));
    /// ```
    pub fn to_bits(self) -> u64 {
        u64::from(self.generation.get()) << 32 | u64::from(self.index)
    }

    /// The key [`to_bits`](Key::to_bits) made, or `None` for a value no key has (a zero
    /// or even generation: keys are only made for occupied slots, whose generations are
    /// odd). A well-formed but foreign key is harmless: lookups return `None`.
    ///
    /// ```
    /// assert_eq!(memward_arena::Key::from_bits(0), None);
    /// assert_eq!(memward_arena::Key::from_bits(2 << 32), None);
    /// ```
    pub fn from_bits(bits: u64) -> Option<Key> {
        let generation = (bits >> 32) as u32;
        if generation & 1 == 0 {
            return None;
        }
        Some(Key {
            index: bits as u32,
            generation: NonZeroU32::new(generation)?,
        })
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}v{})", self.index, self.generation)
    }
}

/// A collection of values addressed by [`Key`]s: O(1) insert, get and remove, slots reused
/// through a free list, stale keys always rejected.
///
/// ```
/// use memward_arena::Pool;
///
/// let mut pool = Pool::new();
/// let a = pool.insert(String::from("a"));
/// let b = pool.insert(String::from("b"));
/// pool.get_mut(a).unwrap().push('!');
/// assert_eq!(pool.remove(b).as_deref(), Some("b"));
/// assert_eq!(pool.len(), 1);
/// let all: Vec<&String> = pool.values().collect();
/// assert_eq!(all, ["a!"]);
/// ```
pub struct Pool<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
    len: u32,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T> Pool<T> {
    /// An empty pool; allocates nothing until the first insert.
    ///
    /// ```
    /// let pool: memward_arena::Pool<u8> = memward_arena::Pool::new();
    /// assert!(pool.is_empty());
    /// ```
    pub const fn new() -> Self {
        Pool {
            slots: Vec::new(),
            free_head: NONE,
            len: 0,
        }
    }

    /// An empty pool with room for `capacity` values before it reallocates.
    ///
    /// ```
    /// let pool: memward_arena::Pool<u64> = memward_arena::Pool::with_capacity(100);
    /// assert!(pool.capacity() >= 100);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Pool {
            slots: Vec::with_capacity(capacity),
            free_head: NONE,
            len: 0,
        }
    }

    /// Inserts a value and returns its key. Panics if the pool already has
    /// `u32::MAX - 1` slots.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(5);
    /// assert_eq!(pool[k], 5);
    /// ```
    #[inline]
    pub fn insert(&mut self, value: T) -> Key {
        let index = self.free_head;
        if let Some(slot) = self.slots.get_mut(index as usize) {
            let (next, generation) = slot.fill(value);
            self.free_head = next;
            self.len += 1;
            return key_of(index as usize, generation);
        }
        self.push_slot(value)
    }

    fn push_slot(&mut self, value: T) -> Key {
        let index = self.slots.len();
        assert!(index < NONE as usize, "memward-arena: Pool is full");
        self.slots.push(Slot::occupied(value));
        self.len += 1;
        key_of(index, 1)
    }

    /// The value `key` was made for, if it is still in the pool.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert('x');
    /// assert_eq!(pool.get(k), Some(&'x'));
    /// ```
    #[inline]
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slots
            .get(key.index as usize)?
            .get(key.generation.get())
    }

    /// The value `key` was made for, mutably, if it is still in the pool.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(1);
    /// *pool.get_mut(k).unwrap() += 1;
    /// assert_eq!(pool[k], 2);
    /// ```
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots
            .get_mut(key.index as usize)?
            .get_mut(key.generation.get())
    }

    /// Whether `key`'s value is still in the pool.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(());
    /// pool.remove(k);
    /// assert!(!pool.contains_key(k));
    /// ```
    #[inline]
    pub fn contains_key(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns `key`'s value; `None` (and no change) if the key is stale or
    /// foreign.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(3);
    /// assert_eq!(pool.remove(k), Some(3));
    /// assert_eq!(pool.remove(k), None);
    /// ```
    #[inline]
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        let (value, reusable) = slot.take(key.generation.get(), self.free_head)?;
        if reusable {
            self.free_head = key.index;
        }
        self.len -= 1;
        Some(value)
    }

    /// Number of values in the pool.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// pool.insert(1);
    /// assert_eq!(pool.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the pool holds no values.
    ///
    /// ```
    /// assert!(memward_arena::Pool::<i32>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots the pool can hold before its vector reallocates.
    ///
    /// ```
    /// let pool: memward_arena::Pool<u8> = memward_arena::Pool::new();
    /// assert_eq!(pool.capacity(), 0);
    /// ```
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Removes every value; every key made so far becomes stale. Slots are kept.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(1);
    /// pool.clear();
    /// assert!(pool.is_empty() && pool.get(k).is_none());
    /// ```
    pub fn clear(&mut self) {
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if slot.is_occupied() {
                let generation = slot.generation();
                if let Some((value, reusable)) = slot.take(generation, self.free_head) {
                    if reusable {
                        self.free_head = index as u32;
                    }
                    self.len -= 1;
                    drop(value);
                }
            }
        }
    }

    /// Iterates over `(key, &value)` pairs in slot order.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(10);
    /// assert_eq!(pool.iter().collect::<Vec<_>>(), [(k, &10)]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            inner: self.slots.iter().enumerate(),
        }
    }

    /// Iterates over `(key, &mut value)` pairs in slot order.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// pool.insert(1);
    /// pool.insert(2);
    /// for (_, v) in pool.iter_mut() {
    ///     *v *= 10;
    /// }
    /// assert_eq!(pool.values().sum::<i32>(), 30);
    /// ```
    pub fn iter_mut(&mut self) -> IterMut<'_, T> {
        IterMut {
            inner: self.slots.iter_mut().enumerate(),
        }
    }

    /// Iterates over the values in slot order.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// pool.insert("v");
    /// assert_eq!(pool.values().next(), Some(&"v"));
    /// ```
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, v)| v)
    }

    /// Iterates over the keys in slot order.
    ///
    /// ```
    /// let mut pool = memward_arena::Pool::new();
    /// let k = pool.insert(0);
    /// assert_eq!(pool.keys().collect::<Vec<_>>(), [k]);
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.iter().map(|(k, _)| k)
    }
}

/// The key of an occupied slot (odd, hence non-zero, generation).
#[inline(always)]
fn key_of(index: usize, generation: u32) -> Key {
    Key {
        index: index as u32,
        generation: NonZeroU32::new(generation).unwrap_or(NonZeroU32::MIN),
    }
}

/// Iterator over a pool's `(Key, &T)` pairs, from [`Pool::iter`].
///
/// ```
/// let mut pool = memward_arena::Pool::new();
/// pool.insert(1);
/// let it: memward_arena::pool::Iter<'_, i32> = pool.iter();
/// assert_eq!(it.count(), 1);
/// ```
pub struct Iter<'a, T> {
    inner: core::iter::Enumerate<core::slice::Iter<'a, Slot<T>>>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (Key, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        for (index, slot) in self.inner.by_ref() {
            let generation = slot.generation();
            if let Some(value) = slot.value() {
                return Some((key_of(index, generation), value));
            }
        }
        None
    }
}

/// Iterator over a pool's `(Key, &mut T)` pairs, from [`Pool::iter_mut`].
///
/// ```
/// let mut pool = memward_arena::Pool::new();
/// pool.insert(1);
/// let it: memward_arena::pool::IterMut<'_, i32> = pool.iter_mut();
/// assert_eq!(it.count(), 1);
/// ```
pub struct IterMut<'a, T> {
    inner: core::iter::Enumerate<core::slice::IterMut<'a, Slot<T>>>,
}

impl<'a, T> Iterator for IterMut<'a, T> {
    type Item = (Key, &'a mut T);

    fn next(&mut self) -> Option<Self::Item> {
        for (index, slot) in self.inner.by_ref() {
            let generation = slot.generation();
            if let Some(value) = slot.value_mut() {
                return Some((key_of(index, generation), value));
            }
        }
        None
    }
}

impl<'a, T> IntoIterator for &'a Pool<T> {
    type Item = (Key, &'a T);
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut Pool<T> {
    type Item = (Key, &'a mut T);
    type IntoIter = IterMut<'a, T>;

    fn into_iter(self) -> IterMut<'a, T> {
        self.iter_mut()
    }
}

impl<T> core::ops::Index<Key> for Pool<T> {
    type Output = T;

    /// Panics if the key is stale or foreign.
    fn index(&self, key: Key) -> &T {
        match self.get(key) {
            Some(v) => v,
            None => panic!("memward-arena: {key:?} is not in the pool"),
        }
    }
}

impl<T> core::ops::IndexMut<Key> for Pool<T> {
    fn index_mut(&mut self, key: Key) -> &mut T {
        match self.get_mut(key) {
            Some(v) => v,
            None => panic!("memward-arena: {key:?} is not in the pool"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_whose_generation_would_wrap_is_retired() {
        let mut pool = Pool::new();
        let k = pool.insert(1u32);
        pool.slots[0].set_generation(u32::MAX);
        let k_max = Key {
            index: 0,
            generation: NonZeroU32::new(u32::MAX).unwrap(),
        };
        assert_eq!(pool.get(k), None);
        assert_eq!(pool.remove(k_max), Some(1));
        // The slot is retired: the next insert takes a new slot, and neither old key
        // reaches the new value.
        let k2 = pool.insert(2);
        assert_eq!(k2.index, 1);
        assert_eq!(pool.get(k_max), None);
        assert_eq!(pool.get(k), None);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.values().copied().collect::<Vec<_>>(), [2]);
        // And it stays retired across later reuse of other slots.
        pool.remove(k2);
        let k3 = pool.insert(3);
        assert_eq!(k3.index, 1);
        assert_eq!(pool.slots.len(), 2);
    }

    #[test]
    fn generations_grow_by_two_per_reuse() {
        let mut pool = Pool::new();
        let mut last = pool.insert(0u8);
        for _ in 0..10 {
            pool.remove(last);
            let k = pool.insert(0);
            assert_eq!(k.index, last.index);
            assert_eq!(k.generation.get(), last.generation.get() + 2);
            last = k;
        }
    }
}
