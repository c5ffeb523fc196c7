//! Hashing a byte stream on helper threads while the caller consumes it.
//!
//! [`TeeReader`] hands every chunk it reads to one thread per digest (SHA-256, optionally MD5), so the
//! caller's work (decompression, tar parsing) and each digest run on their own core. Channels are
//! bounded: a slow digest slows the reader down instead of buffering the stream in memory.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use md5::Md5;
use sha2::{Digest, Sha256};

/// Bytes read from the inner reader per chunk handed to the digest threads.
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait for a digest thread; bounds memory to about `2 * DEPTH * CHUNK`.
const DEPTH: usize = 8;

/// The digests of a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Lower-case hex MD5, when asked for.
    pub md5: Option<String>,
    /// Number of bytes hashed.
    pub size: u64,
}

type Chunk = Arc<[u8]>;

/// A reader that counts and hashes everything read through it, on scoped helper threads.
pub struct TeeReader<'scope, R> {
    inner: R,
    current: Chunk,
    pos: usize,
    count: u64,
    senders: Vec<SyncSender<Chunk>>,
    sha256: ScopedJoinHandle<'scope, String>,
    md5: Option<ScopedJoinHandle<'scope, String>>,
}

fn spawn_digest<'scope, D: Digest + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    senders: &mut Vec<SyncSender<Chunk>>,
) -> ScopedJoinHandle<'scope, String> {
    let (tx, rx): (SyncSender<Chunk>, Receiver<Chunk>) = sync_channel(DEPTH);
    senders.push(tx);
    scope.spawn(move || {
        let mut digest = D::new();
        for chunk in rx {
            digest.update(&chunk);
        }
        hex::encode(digest.finalize())
    })
}

impl<'scope, R: Read> TeeReader<'scope, R> {
    /// Starts the digest threads in `scope`; `md5` adds an MD5 digest next to SHA-256.
    pub fn new(scope: &'scope Scope<'scope, '_>, inner: R, md5: bool) -> Self {
        let mut senders = Vec::with_capacity(2);
        let sha256 = spawn_digest::<Sha256>(scope, &mut senders);
        let md5 = md5.then(|| spawn_digest::<Md5>(scope, &mut senders));
        TeeReader { inner, current: Arc::from(Vec::new()), pos: 0, count: 0, senders, sha256, md5 }
    }

    /// Bytes read from the inner reader so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads the rest of the inner stream, then returns the digests of everything.
    pub fn finish(mut self) -> io::Result<Digests> {
        io::copy(&mut self, &mut io::sink())?;
        let TeeReader { senders, sha256, md5, count, .. } = self;
        drop(senders);
        let join = |h: ScopedJoinHandle<'scope, String>| {
            h.join().map_err(|_| io::Error::other("a digest thread panicked"))
        };
        Ok(Digests { sha256: join(sha256)?, md5: md5.map(join).transpose()?, size: count })
    }

    fn refill(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        let n = loop {
            match self.inner.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(n);
        let chunk: Chunk = Arc::from(buf);
        if n > 0 {
            for tx in &self.senders {
                tx.send(Arc::clone(&chunk)).map_err(|_| io::Error::other("a digest thread stopped early"))?;
            }
            self.count += n as u64;
        }
        self.current = chunk;
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.current.len() {
            self.refill()?;
        }
        let available = &self.current[self.pos..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Digests of a whole stream, computed with the same threads as [`TeeReader`].
///
/// ```
/// let d = libvieter::digest::digest_stream(&b"abc"[..], true).unwrap();
/// assert_eq!(d.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// assert_eq!(d.md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
/// assert_eq!(d.size, 3);
/// ```
pub fn digest_stream<R: Read>(reader: R, md5: bool) -> io::Result<Digests> {
    std::thread::scope(|scope| TeeReader::new(scope, reader, md5).finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_chunk_stream() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i * 31 % 251) as u8).collect();
        let d = digest_stream(&data[..], true).unwrap();
        assert_eq!(d.size, data.len() as u64);
        assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(d.md5, Some(hex::encode(Md5::digest(&data))));
    }

    #[test]
    fn partial_reads_then_finish() {
        let data = vec![7u8; CHUNK + 5];
        std::thread::scope(|scope| {
            let mut tee = TeeReader::new(scope, &data[..], false);
            let mut head = [0u8; 10];
            tee.read_exact(&mut head).unwrap();
            assert_eq!(head, [7u8; 10]);
            let d = tee.finish().unwrap();
            assert_eq!(d.sha256, hex::encode(Sha256::digest(&data)));
            assert_eq!(d.md5, None);
        });
    }
}
