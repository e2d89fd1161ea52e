//! Snapshots of the heap for massif's format, taken during the one pass.
//!
//! Massif shows the heap at moments spread over the run, some with the tree of who holds
//! it. The run's length is unknown while reading, so this does what massif itself does:
//! snapshots at a fixed spacing of massif's `B` clock (bytes allocated plus freed), and
//! when 100 are kept, every other one is dropped and the spacing doubles. Every tenth
//! snapshot taken is detailed (a copy of the live bytes of each site that has any). The
//! peak snapshot is not taken here: the analysis knows every site's bytes at the peak
//! exactly at the end, and the massif writer adds it in time order.

use super::replay::Heap;
use super::Site;

/// Snapshots kept before culling.
const MAX: usize = 100;
/// One snapshot in this many is detailed.
const DETAILED_EVERY: u64 = 10;

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Massif's `B` time: bytes allocated plus bytes freed so far.
    pub time: u64,
    /// Live requested bytes.
    pub heap: u64,
    /// For detailed snapshots: (stack id, live bytes) of every site with live bytes.
    pub sites: Option<Vec<(u32, u64)>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Snapshots {
    pub list: Vec<Snapshot>,
    spacing: u64,
    next: u64,
    taken: u64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            list: Vec::new(),
            spacing: 4096,
            next: 0,
            taken: 0,
        }
    }
}

impl Snapshots {
    /// Called after every change of the heap; cheap unless a snapshot is due.
    #[inline]
    pub(crate) fn changed(&mut self, heap: &Heap, sites: &[Site]) {
        if heap.churn >= self.next {
            self.take(heap, sites);
        }
    }

    #[cold]
    fn take(&mut self, heap: &Heap, sites: &[Site]) {
        let detailed = self.taken % DETAILED_EVERY == 0;
        self.taken += 1;
        self.list.push(Snapshot {
            time: heap.churn,
            heap: heap.bytes,
            sites: detailed.then(|| {
                sites
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.curr_bytes > 0)
                    .map(|(i, s)| (i as u32, s.curr_bytes))
                    .collect()
            }),
        });
        if self.list.len() >= MAX {
            let mut i = 0;
            self.list.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.spacing *= 2;
        }
        self.next = (heap.churn / self.spacing + 1) * self.spacing;
    }
}
