//! Decoding and replaying on two threads.
//!
//! A report over a hundred million allocations spends about a third of its time decoding
//! records and the rest replaying them (hash-map lookups that mostly miss the cache).
//! The two are independent, so a decoder thread hands batches of records to the replaying
//! thread through a bounded channel: on two cores the wall time is that of the slower
//! half, and memory stays bounded (a few batches in flight). Batches amortise the channel
//! cost; their vectors are sent back for reuse. Records travel as compact [`Event`]s
//! (32 bytes; the rare large records boxed), not as the reader's records (about 100 bytes
//! each, sized for module records).

use super::replay::Event;
use crate::Error;
use memward_profile_format::{Ending, ReadError, Reader};
use std::io::Read;
use std::sync::mpsc;

/// Records per batch (small enough that a batch stays in the replaying core's cache).
const BATCH: usize = 2048;
/// Batches in flight.
const IN_FLIGHT: usize = 4;

/// Feeds every record of `reader` to `apply`, in order; returns how the file ended.
pub(crate) fn for_each_record<R: Read + Send>(
    mut reader: Reader<R>,
    mut apply: impl FnMut(Event),
) -> Result<Ending, Error> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<Event>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<Event>>();
    std::thread::scope(|scope| {
        let decoder = scope.spawn(move || -> Result<Ending, ReadError> {
            loop {
                let mut batch = empty_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                while batch.len() < BATCH {
                    match reader.next_record()? {
                        Some(r) => batch.push(Event::from(r)),
                        None => break,
                    }
                }
                let done = batch.len() < BATCH;
                if !batch.is_empty() && full_tx.send(batch).is_err() {
                    // The consumer stopped; nothing more to do.
                    return Ok(reader.ending());
                }
                if done {
                    return Ok(reader.ending());
                }
            }
        });
        for mut batch in full_rx {
            for event in batch.drain(..) {
                apply(event);
            }
            let _ = empty_tx.send(batch);
        }
        decoder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(Error::from)
    })
}
