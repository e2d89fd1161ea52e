//! Heap and RSS over time, in bounded memory.
//!
//! The run's length is unknown while reading, so points are kept at a spacing in
//! allocation events that doubles whenever the buffer fills: pairs of neighbouring points
//! merge, keeping the larger heap of the two (a peak is never smoothed away) and the later
//! time and RSS. The result is between `MAX_POINTS / 2` and `MAX_POINTS` points whatever
//! the profile's size.

use super::replay::Heap;
use serde::Serialize;

/// Most points kept.
const MAX_POINTS: usize = 2048;

/// One point of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimePoint {
    /// Allocation events before this point (a clock that does not depend on timing).
    pub allocations: u64,
    /// Nanoseconds since the start (the latest time record at that point).
    pub nanos: u64,
    /// The largest heap (requested bytes in live blocks) since the previous point.
    pub heap_bytes: u64,
    /// Live blocks when that largest heap was reached.
    pub heap_blocks: u64,
    /// Resident set size at the latest time record (0 before the first).
    pub rss_bytes: u64,
}

/// The timeline being built.
#[derive(Debug, Clone)]
pub(crate) struct TimelineBuilder {
    points: Vec<TimePoint>,
    /// Allocation events per point.
    spacing: u64,
    /// The point being filled.
    current: Option<TimePoint>,
    rss: u64,
}

impl TimelineBuilder {
    pub(crate) fn new() -> Self {
        TimelineBuilder {
            points: Vec::new(),
            spacing: 1,
            current: None,
            rss: 0,
        }
    }

    /// The heap changed (after an allocation or a free).
    pub(crate) fn heap(&mut self, heap: &Heap) {
        let bucket = heap.allocations.div_ceil(self.spacing);
        match &mut self.current {
            Some(p) if p.allocations.div_ceil(self.spacing) == bucket => {
                if heap.bytes > p.heap_bytes {
                    p.heap_bytes = heap.bytes;
                    p.heap_blocks = heap.blocks;
                }
                p.nanos = heap.nanos;
                p.rss_bytes = self.rss;
            }
            _ => {
                if let Some(done) = self.current.take() {
                    self.push(done);
                }
                self.current = Some(TimePoint {
                    allocations: heap.allocations,
                    nanos: heap.nanos,
                    heap_bytes: heap.bytes,
                    heap_blocks: heap.blocks,
                    rss_bytes: self.rss,
                });
            }
        }
    }

    /// A memory sample: its RSS applies from now on.
    pub(crate) fn rss(&mut self, heap: &Heap, rss: u64) {
        self.rss = rss;
        self.heap(heap);
    }

    fn push(&mut self, p: TimePoint) {
        self.points.push(p);
        if self.points.len() >= MAX_POINTS {
            self.spacing *= 2;
            let merged: Vec<TimePoint> = self
                .points
                .chunks(2)
                .map(|pair| {
                    let last = pair[pair.len() - 1];
                    let top = pair
                        .iter()
                        .max_by_key(|p| p.heap_bytes)
                        .copied()
                        .unwrap_or(last);
                    TimePoint {
                        allocations: pair[0].allocations,
                        heap_bytes: top.heap_bytes,
                        heap_blocks: top.heap_blocks,
                        ..last
                    }
                })
                .collect();
            self.points = merged;
        }
    }

    pub(crate) fn finish(mut self) -> Vec<TimePoint> {
        if let Some(p) = self.current.take() {
            self.push(p);
        }
        self.points
    }
}
