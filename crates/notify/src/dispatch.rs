//! How a queued destination (webhook, SNS topic) is served: a queue per stream, first in
//! first out, at most one notification of a stream in flight, and several workers taking
//! the streams in turn. A destination that fails or hangs on one stream's notification
//! (retries with backoff, a request waiting for its timeout) holds that stream's later
//! notifications — so a receiver never sees a stream's `closed` before its `opened` — but
//! no other stream's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use vqa_core::notify::Notification;
use vqa_core::StreamId;

use crate::{GiveUp, NotifyError, WebhookStats};

/// One destination's queues and workers.
pub(crate) struct Dispatch {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<WebhookStats>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Notifications waiting (all streams together) before new ones are refused.
    capacity: usize,
}

#[derive(Default)]
struct State {
    lanes: HashMap<StreamId, Lane>,
    /// Streams with a notification waiting and none in flight, in the order they became so.
    ready: VecDeque<StreamId>,
    /// Notifications waiting, not counting those in flight.
    queued: usize,
    /// No more notifications will come: workers stop once nothing waits.
    closed: bool,
}

#[derive(Default)]
struct Lane {
    waiting: VecDeque<Notification>,
    in_flight: bool,
}

impl Dispatch {
    /// Starts `workers` threads; each makes its own sender with `make` (a client, a runtime)
    /// and calls it with each notification it takes: true when delivered. Once `give_up` has
    /// passed, what is left is counted as failed without being sent.
    pub(crate) fn start<F, S>(
        workers: usize,
        capacity: usize,
        give_up: GiveUp,
        make: F,
    ) -> Result<Dispatch, NotifyError>
    where
        F: Fn() -> S + Send + Sync + 'static,
        S: FnMut(&Notification) -> bool,
    {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Condvar::new(),
            capacity,
        });
        let make = Arc::new(make);
        let mut dispatch = Dispatch {
            shared: shared.clone(),
            workers: Vec::new(),
        };
        for _ in 0..workers.max(1) {
            let (shared, make, give_up) = (shared.clone(), make.clone(), give_up.clone());
            let worker = std::thread::Builder::new()
                .name("vqa-notify".into())
                .spawn(move || shared.work(&mut make(), &give_up));
            match worker {
                Ok(w) => dispatch.workers.push(w),
                Err(e) => {
                    dispatch.finish();
                    return Err(NotifyError::Thread(e));
                }
            }
        }
        Ok(dispatch)
    }

    /// Queues a notification; false when `capacity` are already waiting (it is not queued).
    pub(crate) fn push(&self, notification: Notification) -> bool {
        let mut state = self.shared.lock();
        if state.queued >= self.shared.capacity {
            return false;
        }
        let stream = notification.stream.clone();
        let lane = state.lanes.entry(stream.clone()).or_default();
        lane.waiting.push_back(notification);
        let became_ready = !lane.in_flight && lane.waiting.len() == 1;
        state.queued += 1;
        if became_ready {
            state.ready.push_back(stream);
            self.shared.wake.notify_one();
        }
        true
    }

    /// Lets the workers deliver what waits, then stops them; what they delivered and failed.
    pub(crate) fn finish(&mut self) -> WebhookStats {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        let mut total = WebhookStats::default();
        for w in self.workers.drain(..) {
            if let Ok(stats) = w.join() {
                total.delivered += stats.delivered;
                total.failed += stats.failed;
            }
        }
        total
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn work(&self, send: &mut impl FnMut(&Notification) -> bool, give_up: &GiveUp) -> WebhookStats {
        let mut stats = WebhookStats::default();
        while let Some((stream, notification)) = self.next() {
            let delivered = !give_up.passed() && send(&notification);
            if delivered {
                stats.delivered += 1;
            } else {
                stats.failed += 1;
            }
            self.done(stream);
        }
        stats
    }

    /// The next notification of a stream with none in flight, marking it in flight; `None`
    /// once closed and nothing waits.
    fn next(&self) -> Option<(StreamId, Notification)> {
        let mut state = self.lock();
        loop {
            if let Some(stream) = state.ready.pop_front() {
                let taken = state.lanes.get_mut(&stream).and_then(|lane| {
                    let n = lane.waiting.pop_front();
                    lane.in_flight = n.is_some();
                    n
                });
                if let Some(n) = taken {
                    state.queued -= 1;
                    return Some((stream, n));
                }
                continue;
            }
            if state.closed && state.queued == 0 {
                // Wake the others so they see it too.
                self.wake.notify_all();
                return None;
            }
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The stream's notification in flight is done: its next one, if any, is ready.
    fn done(&self, stream: StreamId) {
        let mut state = self.lock();
        let more = match state.lanes.get_mut(&stream) {
            Some(lane) => {
                lane.in_flight = false;
                !lane.waiting.is_empty()
            }
            None => false,
        };
        if more {
            state.ready.push_back(stream);
            self.wake.notify_one();
        } else {
            state.lanes.remove(&stream);
            if state.closed && state.queued == 0 {
                self.wake.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    fn note(stream: &str, n: usize) -> Notification {
        crate::opened(stream, n as f64)
    }

    #[test]
    fn a_stuck_stream_holds_its_own_notifications_in_order_and_no_one_elses() {
        let log: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
        let release = Arc::new(AtomicBool::new(false));
        let (l, r) = (log.clone(), release.clone());
        let mut d = Dispatch::start(3, 100, GiveUp::default(), move || {
            let (log, release) = (l.clone(), r.clone());
            move |n: &Notification| {
                // Stream "stuck" hangs until released, as a destination would on its
                // first notification.
                while n.stream.as_str() == "stuck" && !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                log.lock()
                    .unwrap()
                    .push((n.stream.as_str().to_string(), n.start));
                true
            }
        })
        .expect("dispatch");
        for i in 0..5 {
            assert!(d.push(note("stuck", i)));
        }
        for i in 0..20 {
            assert!(d.push(note(&format!("s{}", i % 4), i)));
        }
        let until = Instant::now() + Duration::from_secs(10);
        while log.lock().unwrap().len() < 20 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(log.lock().unwrap().len(), 20, "the others were held");
        assert!(log.lock().unwrap().iter().all(|(s, _)| s != "stuck"));
        release.store(true, Ordering::SeqCst);
        let stats = d.finish();
        assert_eq!(
            stats,
            WebhookStats {
                delivered: 25,
                failed: 0
            }
        );
        let log = log.lock().unwrap();
        for stream in ["stuck", "s0", "s1", "s2", "s3"] {
            let starts: Vec<f64> = log
                .iter()
                .filter(|(s, _)| s == stream)
                .map(|(_, t)| *t)
                .collect();
            let mut sorted = starts.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(starts, sorted, "{stream} out of order");
            assert_eq!(starts.len(), 5, "{stream}");
        }
    }

    #[test]
    fn past_its_capacity_a_notification_is_refused_and_finish_counts_what_was_given_up() {
        let give_up = GiveUp::default();
        let gate = Arc::new(AtomicBool::new(false));
        let g = gate.clone();
        let mut d = Dispatch::start(1, 4, give_up.clone(), move || {
            let gate = g.clone();
            move |_: &Notification| {
                while !gate.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                true
            }
        })
        .expect("dispatch");
        // One taken by the worker (in flight), four waiting, the sixth refused.
        assert!(d.push(note("a", 0)));
        let until = Instant::now() + Duration::from_secs(5);
        while d.shared.lock().queued > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 1..5 {
            assert!(d.push(note("b", i)));
        }
        assert!(!d.push(note("c", 5)));
        // Giving up now: the one in flight is delivered, the four waiting are not sent.
        give_up.set(Instant::now());
        gate.store(true, Ordering::SeqCst);
        assert_eq!(
            d.finish(),
            WebhookStats {
                delivered: 1,
                failed: 4
            }
        );
    }
}
