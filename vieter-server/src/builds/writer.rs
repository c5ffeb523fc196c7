//! Group commit of job records.
//!
//! Whoever saves jobs hands them to one writer thread, which writes all it was handed meanwhile in one
//! durable transaction: many agents polling at once share a commit (and its fsync) instead of queueing
//! for one each. Records are written in the order they were handed over, and the build service hands
//! them over under its queue's lock, so an older state of a job never overwrites a newer one.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use libvieter::builds::{Saved, StoreError};
use libvieter::job::Job;

use super::store::{encode, store_err, JOBS};

type Batch = (Vec<(u64, Vec<u8>)>, SyncSender<Result<(), String>>);

/// The handle of the writer thread.
pub(super) struct JobWriter {
    tx: Sender<Batch>,
}

/// Job records handed to the [`JobWriter`]; [`Saved::wait`] returns once they are durable.
#[must_use]
pub struct Pending(Option<Receiver<Result<(), String>>>);

impl Saved for Pending {
    fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => {
                rx.recv().map_err(|_| StoreError::new("the job writer stopped"))?.map_err(StoreError::new)
            }
        }
    }
}

impl JobWriter {
    /// Starts the writer thread on `db`; it ends when the handle is dropped.
    pub(super) fn start(db: Arc<redb::Database>) -> Result<JobWriter, StoreError> {
        let (tx, rx) = channel::<Batch>();
        std::thread::Builder::new()
            .name("job-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let result = write(&db, &batch).map_err(|e| e.to_string());
                    for (_, reply) in batch {
                        let _ = reply.send(result.clone());
                    }
                }
            })
            .map_err(store_err)?;
        Ok(JobWriter { tx })
    }

    /// Hands records over (encoded here, so the writer only writes).
    pub(super) fn submit(&self, jobs: &[Job]) -> Result<Pending, StoreError> {
        let records =
            jobs.iter().map(|j| Ok((j.id().0, encode(j)?))).collect::<Result<Vec<_>, StoreError>>()?;
        if records.is_empty() {
            return Ok(Pending(None));
        }
        let (reply, rx) = sync_channel(1);
        self.tx.send((records, reply)).map_err(|_| StoreError::new("the job writer stopped"))?;
        Ok(Pending(Some(rx)))
    }
}

fn write(db: &redb::Database, batch: &[Batch]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut t = txn.open_table(JOBS)?;
        for (id, bytes) in batch.iter().flat_map(|(records, _)| records) {
            t.insert(*id, bytes.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}
