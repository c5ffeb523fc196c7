//! Group commit: concurrent publishes into one repository share one transaction and one rewrite of
//! each archive they change.
//!
//! Every publisher adds its job to its repository's queue and waits. Whoever finds no batch of that
//! repository running becomes its leader: it takes what is queued (at most [`MAX_BATCH`] jobs), runs
//! them as one batch, records every job's outcome and wakes the others. A job's outcome is known only
//! once its batch is over, so nobody is answered before their package is durable and in the archives.
//! A leader that panics leaves an error outcome for each job of its batch, never a publisher waiting
//! forever.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::name::RepoName;

/// The most jobs one batch takes (one write transaction holds them all).
pub(super) const MAX_BATCH: usize = 256;

/// The queues of every repository. `J`: a job; `O`: its outcome; `X`: what a batch leaves its leader.
pub(super) struct Queue<J, O, X> {
    state: Mutex<State<J, O, X>>,
    changed: Condvar,
}

struct State<J, O, X> {
    next_id: u64,
    pending: BTreeMap<RepoName, Vec<(u64, J)>>,
    /// Repositories a leader is running a batch of.
    running: BTreeSet<RepoName>,
    /// Outcomes of finished jobs whose publisher has not taken them yet.
    done: HashMap<u64, O>,
    batch_left: std::marker::PhantomData<X>,
}

impl<J, O, X> Default for Queue<J, O, X> {
    fn default() -> Self {
        Queue {
            state: Mutex::new(State {
                next_id: 0,
                pending: BTreeMap::new(),
                running: BTreeSet::new(),
                done: HashMap::new(),
                batch_left: std::marker::PhantomData,
            }),
            changed: Condvar::new(),
        }
    }
}

impl<J, O, X> Queue<J, O, X> {
    fn lock(&self) -> MutexGuard<'_, State<J, O, X>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job` for `repo` and returns its outcome, with what the batches this caller led left
    /// (each batch's `X`, in order). `run` takes a batch (jobs with their ids, in the order queued) and
    /// returns the outcome of every job in it and what the batch leaves; `failed` is the outcome of a
    /// job whose batch panicked.
    pub(super) fn submit(
        &self,
        repo: &RepoName,
        job: J,
        mut run: impl FnMut(Vec<(u64, J)>) -> (Vec<(u64, O)>, X),
        failed: impl Fn() -> O,
    ) -> (O, Vec<X>) {
        let mut led = Vec::new();
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.pending.entry(repo.clone()).or_default().push((id, job));
        loop {
            if let Some(outcome) = state.done.remove(&id) {
                return (outcome, led);
            }
            if state.running.contains(repo) {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let Some(queued) = state.pending.get_mut(repo) else {
                // Unreachable: this job is neither done nor queued nor running.
                return (failed(), led);
            };
            let take = queued.len().min(MAX_BATCH);
            let batch: Vec<(u64, J)> = queued.drain(..take).collect();
            if queued.is_empty() {
                state.pending.remove(repo);
            }
            state.running.insert(repo.clone());
            drop(state);
            let mut unfinished = Unfinished {
                queue: self,
                repo,
                leader: id,
                ids: batch.iter().map(|(id, _)| *id).collect(),
                failed: &failed,
            };
            let (outcomes, left) = run(batch);
            led.push(left);
            state = self.lock();
            for (job, outcome) in outcomes {
                state.done.insert(job, outcome);
            }
            // Every job of the batch has its outcome (one `run` did not give fails).
            unfinished.finish(&mut state);
            self.changed.notify_all();
        }
    }
}

/// The jobs of a running batch: if the leader unwinds before the batch is over, they fail.
struct Unfinished<'a, J, O, X, F: Fn() -> O> {
    queue: &'a Queue<J, O, X>,
    repo: &'a RepoName,
    /// The leader's own job.
    leader: u64,
    ids: Vec<u64>,
    failed: &'a F,
}

impl<J, O, X, F: Fn() -> O> Unfinished<'_, J, O, X, F> {
    fn finish(&mut self, state: &mut State<J, O, X>) {
        for id in self.ids.drain(..) {
            state.done.entry(id).or_insert_with(self.failed);
        }
        state.running.remove(self.repo);
    }
}

impl<J, O, X, F: Fn() -> O> Drop for Unfinished<'_, J, O, X, F> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut state = self.queue.lock();
        // The leader is unwinding: nobody will take its own outcome.
        let leader = self.leader;
        self.ids.retain(|id| *id != leader);
        self.finish(&mut state);
        self.queue.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    fn repo(name: &str) -> RepoName {
        RepoName::new(name).unwrap()
    }

    #[test]
    fn concurrent_jobs_share_batches_and_each_gets_its_own_outcome() {
        let queue: Arc<Queue<u32, u32, usize>> = Arc::default();
        let batches = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16u32)
            .map(|n| {
                let (queue, batches, start) = (queue.clone(), batches.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let (outcome, _) = queue.submit(
                        &repo("core"),
                        n,
                        |batch| {
                            batches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            let len = batch.len();
                            (batch.into_iter().map(|(id, job)| (id, job * 10)).collect(), len)
                        },
                        || u32::MAX,
                    );
                    assert_eq!(outcome, n * 10);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let batches = batches.load(Ordering::SeqCst);
        assert!(batches < 16, "16 concurrent jobs ran in {batches} batches: none shared");
        let state = queue.lock();
        assert!(state.done.is_empty() && state.pending.is_empty() && state.running.is_empty());
    }

    #[test]
    fn a_panicking_batch_fails_its_jobs_and_the_queue_goes_on() {
        let queue: Queue<u32, u32, ()> = Queue::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            queue.submit(&repo("core"), 1, |_| panic!("a leader's bug"), || u32::MAX)
        }));
        assert!(result.is_err());
        let (outcome, _) = queue.submit(&repo("core"), 2, |b| (b, ()), || u32::MAX);
        assert_eq!(outcome, 2);
        assert!(queue.lock().done.is_empty());
    }
}
