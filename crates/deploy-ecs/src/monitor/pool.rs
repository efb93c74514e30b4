//! The CPU pool: a fixed number of threads that decode and detect for every stream.
//!
//! A stream is an actor: when it has input it is scheduled once (never on two workers at a
//! time), runs a bounded slice of work and reschedules itself if input is left, so one busy
//! stream cannot starve the others. Waiting jobs are taken most urgent first (the stream
//! furthest behind its live edge), in submission order among equals: when the pool is
//! short of time, the lag is spread over the streams rather than piling up on some.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

struct Queued {
    urgency: i64,
    seq: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.urgency, self.seq) == (other.urgency, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// The max-heap's top: the most urgent, then the oldest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.urgency
            .cmp(&other.urgency)
            .then(other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Queue {
    jobs: BinaryHeap<Queued>,
    next_seq: u64,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    alive: Arc<AtomicUsize>,
    size: usize,
}

/// Counts a worker alive while it runs.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// `size` threads; 0 means one per core.
    pub fn new(size: usize) -> std::io::Result<Pool> {
        let size = if size == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            size
        };
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            ready: Condvar::new(),
        });
        let alive = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for i in 0..size {
            let (shared, alive) = (shared.clone(), alive.clone());
            alive.fetch_add(1, Ordering::SeqCst);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("vqa-worker-{i}"))
                    .spawn(move || work(&shared, Alive(alive)))?,
            );
        }
        Ok(Pool {
            shared,
            workers: Mutex::new(workers),
            alive,
            size,
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Workers still running (all of them until shutdown).
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Queues a job; the larger `urgency`, the sooner it runs.
    pub fn submit(&self, urgency: i64, job: impl FnOnce() + Send + 'static) {
        let mut q = super::lock(&self.shared.queue);
        if q.closed {
            return;
        }
        let seq = q.next_seq;
        q.next_seq += 1;
        q.jobs.push(Queued {
            urgency,
            seq,
            job: Box::new(job),
        });
        drop(q);
        self.shared.ready.notify_one();
    }

    /// Lets queued jobs finish, then stops the workers.
    pub fn shutdown(&self) {
        super::lock(&self.shared.queue).closed = true;
        self.shared.ready.notify_all();
        for w in std::mem::take(&mut *super::lock(&self.workers)) {
            let _ = w.join();
        }
    }
}

fn work(shared: &Shared, _alive: Alive) {
    loop {
        let job = {
            let mut q = super::lock(&shared.queue);
            loop {
                if let Some(next) = q.jobs.pop() {
                    break next.job;
                }
                if q.closed {
                    return;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        // A job that panics is a bug in it: the worker goes on with the next one (the stream
        // actor marks its stream failed; see `stream::run`).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a monitoring job panicked (a bug: please report it)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_urgent_job_runs_first_then_the_oldest() {
        let pool = Pool::new(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        // Hold the only worker while the others queue up.
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        pool.submit(0, move || {
            let _ = started_tx.send(());
            let _ = hold_rx.recv();
        });
        started_rx.recv().unwrap();
        for (name, urgency) in [("a", 1), ("b", 5), ("c", 1), ("d", 3)] {
            let order = order.clone();
            pool.submit(urgency, move || super::super::lock(&order).push(name));
        }
        hold_tx.send(()).unwrap();
        pool.shutdown();
        assert_eq!(*super::super::lock(&order), vec!["b", "d", "a", "c"]);
    }
}
