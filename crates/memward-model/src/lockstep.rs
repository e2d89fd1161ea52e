//! Running a list of actions on real threads, one action at a time.
//!
//! Each model thread is an OS thread serving requests over a channel; the caller's thread
//! holds every live block, sorted by the model thread that owns it, and sends each action
//! to the thread that must perform it, waiting for the answer before the next. The
//! allocator therefore sees genuine cross-thread traffic (a block allocated on one thread,
//! freed or reallocated on another; heaps abandoned by exiting threads with blocks still
//! live, then adopted) while the run stays a deterministic function of its action list:
//! a failing fuzz input or seed replays exactly. The races themselves are
//! [`crate::stress`]'s business.

use crate::action::Action;
use crate::block::Block;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// What a model thread is asked to do; each request answers with the blocks it returns.
enum Request {
    Alloc {
        size: usize,
        align: usize,
        zeroed: bool,
        seed: u8,
    },
    Realloc(Block, usize),
    Free(Block),
    /// Check the contents of blocks that just arrived from another thread.
    Receive(Block),
    /// Check this thread's heap and the edges of all its blocks.
    Check(Vec<Block>),
}

fn serve(request: Request) -> Vec<Block> {
    match request {
        Request::Alloc {
            size,
            align,
            zeroed,
            seed,
        } => vec![Block::alloc(size, align, zeroed, seed)],
        Request::Realloc(block, size) => vec![block.realloc(size)],
        Request::Free(block) => {
            block.free();
            Vec::new()
        }
        Request::Receive(block) => {
            block.verify();
            vec![block]
        }
        Request::Check(blocks) => {
            memward::check_thread_heap();
            blocks.iter().for_each(Block::verify_edges);
            blocks
        }
    }
}

/// One model thread: an OS thread answering [`Request`]s until its channel closes.
struct Worker {
    index: usize,
    requests: Sender<Request>,
    answers: Receiver<Vec<Block>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(index: usize) -> Worker {
        let (requests, inbox) = channel::<Request>();
        let (outbox, answers) = channel();
        let thread = std::thread::Builder::new()
            .name(format!("model-{index}"))
            .spawn(move || {
                for request in inbox {
                    if outbox.send(serve(request)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning a model thread");
        Worker {
            index,
            requests,
            answers,
            thread: Some(thread),
        }
    }

    fn call(&mut self, request: Request) -> Vec<Block> {
        let answer = match self.requests.send(request) {
            Ok(()) => self.answers.recv().ok(),
            Err(_) => None,
        };
        // No answer: the thread panicked (its message is on stderr); fail the run with it.
        answer.unwrap_or_else(|| self.join())
    }

    /// Closes the channel and waits for the thread to exit (its heap is then abandoned).
    /// Panics, naming the thread, if it panicked.
    fn join(&mut self) -> Vec<Block> {
        let (closed, _) = channel();
        drop(std::mem::replace(&mut self.requests, closed));
        if let Some(thread) = self.thread.take() {
            if let Err(payload) = thread.join() {
                let msg = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("model thread {} panicked: {msg}", self.index);
            }
        }
        Vec::new()
    }
}

/// The state of a run: the threads and the blocks each owns.
struct Run {
    workers: Vec<Worker>,
    held: Vec<Vec<Block>>,
    next_seed: u8,
}

impl Run {
    fn thread(&self, t: u8) -> usize {
        usize::from(t) % self.workers.len()
    }

    /// The index of one of `thread`'s blocks, if it holds any.
    fn pick(&self, thread: usize, block: u16) -> Option<usize> {
        let n = self.held[thread].len();
        (n > 0).then(|| usize::from(block) % n)
    }

    fn step(&mut self, action: Action) {
        match action {
            Action::Alloc {
                thread,
                size,
                align,
                zeroed,
            } => {
                let t = self.thread(thread);
                let size = size.bytes();
                let align = align.bytes_for(size);
                self.next_seed = self.next_seed.wrapping_add(37);
                let seed = self.next_seed;
                let got = self.workers[t].call(Request::Alloc {
                    size,
                    align,
                    zeroed,
                    seed,
                });
                self.held[t].extend(got);
            }
            Action::Realloc {
                thread,
                block,
                size,
            } => {
                let t = self.thread(thread);
                if let Some(i) = self.pick(t, block) {
                    let b = self.held[t].swap_remove(i);
                    let got = self.workers[t].call(Request::Realloc(b, size.bytes()));
                    self.held[t].extend(got);
                }
            }
            Action::Free { thread, block } => {
                let t = self.thread(thread);
                if let Some(i) = self.pick(t, block) {
                    let b = self.held[t].swap_remove(i);
                    self.workers[t].call(Request::Free(b));
                }
            }
            Action::Transfer { from, to, block } => {
                let (from, to) = (self.thread(from), self.thread(to));
                if let Some(i) = self.pick(from, block) {
                    let b = self.held[from].swap_remove(i);
                    let got = self.workers[to].call(Request::Receive(b));
                    self.held[to].extend(got);
                }
            }
            Action::Restart { thread } => {
                let t = self.thread(thread);
                self.workers[t].join();
                self.workers[t] = Worker::spawn(t);
            }
            Action::Check { thread } => {
                let t = self.thread(thread);
                let blocks = std::mem::take(&mut self.held[t]);
                self.held[t] = self.workers[t].call(Request::Check(blocks));
            }
        }
    }

    /// Frees every block on the thread that holds it, checks each heap, ends the threads.
    fn finish(mut self) {
        for t in 0..self.workers.len() {
            for b in std::mem::take(&mut self.held[t]) {
                self.workers[t].call(Request::Free(b));
            }
            self.workers[t].call(Request::Check(Vec::new()));
        }
        for w in &mut self.workers {
            w.join();
        }
    }
}

/// Performs `actions` in order on `threads` model threads (1 to 256), checking every
/// block's contents as it goes, then frees what is left. Panics with the first broken
/// promise: a wrong byte (with its offset and the block's size), a misaligned or too
/// small block, a failed allocation, or a heap invariant.
///
/// ```
/// use memward_model::{lockstep, random_actions, Mix};
/// let mix = Mix { transfer: 2, restart: 1, ..Mix::default() };
/// lockstep::run(3, random_actions(7, 500, 3, mix));
/// ```
pub fn run(threads: usize, actions: impl IntoIterator<Item = Action>) {
    assert!((1..=256).contains(&threads), "1 to 256 model threads");
    let mut run = Run {
        workers: (0..threads).map(Worker::spawn).collect(),
        held: (0..threads).map(|_| Vec::new()).collect(),
        next_seed: 0,
    };
    for action in actions {
        run.step(action);
    }
    run.finish();
}
