//! The CPU pool: a fixed number of threads that decode and detect for every stream.
//!
//! A stream is an actor: when it has input it is scheduled once (never on two workers at a
//! time), runs a bounded slice of work and reschedules itself if input is left, so one busy
//! stream cannot starve the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    tx: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    alive: Arc<AtomicUsize>,
    size: usize,
}

/// Counts a worker alive while its thread runs (jobs' panics are caught in `work`).
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
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let alive = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for i in 0..size {
            let (rx, alive) = (rx.clone(), alive.clone());
            alive.fetch_add(1, Ordering::SeqCst);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("vqa-worker-{i}"))
                    .spawn(move || work(&rx, Alive(alive)))?,
            );
        }
        Ok(Pool {
            tx: Mutex::new(Some(tx)),
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

    pub fn submit(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = super::lock(&self.tx).as_ref() {
            let _ = tx.send(Box::new(job));
        }
    }

    /// Lets queued jobs finish, then stops the workers.
    pub fn shutdown(&self) {
        super::lock(&self.tx).take();
        for w in std::mem::take(&mut *super::lock(&self.workers)) {
            let _ = w.join();
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>, _alive: Alive) {
    loop {
        let job = match super::lock(rx).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A job that panics is a bug in it: the worker goes on with the next one (the stream
        // actor marks its stream failed; see `stream::run`).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a monitoring job panicked (a bug: please report it)");
        }
    }
}
