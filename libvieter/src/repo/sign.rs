//! The signing port of a repository: detached signatures of package files and database archives.
//!
//! libvieter knows no OpenPGP: a [`Signer`] is given the bytes (streamed, so a large package or files
//! archive is never held in memory) and hands back one detached binary signature, the `FILE.sig`
//! pacman downloads next to `FILE`. The server holds the only implementation with a key; a repository
//! without a signer is unsigned, exactly as before.

use std::io::{self, Read, Write};
use std::time::SystemTime;

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl SignError {
    /// A signing failure with its cause.
    pub fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SignError(cause.into())
    }
}

/// Makes detached signatures.
pub trait Signer: Send + Sync {
    /// Starts a signature made at `created` (libvieter never reads the clock: the repository passes
    /// its own time). Everything written to the returned [`Signing`] is what is signed.
    fn start(&self, created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError>;
}

/// A signature being made: write the signed bytes, then [`Signing::finish`].
pub trait Signing: Write + Send {
    /// The detached binary signature of everything written.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, SignError>;
}

/// The detached signature of everything `data` yields.
pub fn sign_reader(
    signer: &dyn Signer,
    data: &mut dyn Read,
    created: SystemTime,
) -> Result<Vec<u8>, SignError> {
    let mut signing = signer.start(created)?;
    io::copy(data, &mut signing).map_err(SignError::new)?;
    signing.finish()
}

/// A writer that writes to `inner` and feeds the same bytes to a signature.
pub(super) struct SigningWriter<'a, 's> {
    pub inner: &'a mut dyn Write,
    pub signing: &'a mut (dyn Signing + 's),
}

impl Write for SigningWriter<'_, '_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.signing.write_all(&data[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A [`Signer`] for tests: the "signature" of bytes is `TEST-SIG ` and their SHA-256 in hex, so a test
/// can tell which bytes a signature belongs to without OpenPGP. It fails its `fail_at`-th start (from
/// 0), when given.
#[derive(Debug, Default)]
pub struct TestSigner {
    starts: std::sync::atomic::AtomicUsize,
    fail_at: Option<usize>,
}

impl TestSigner {
    /// A signer that never fails.
    pub fn new() -> Self {
        TestSigner::default()
    }

    /// A signer whose `n`-th signature (from 0) fails.
    pub fn failing_at(n: usize) -> Self {
        TestSigner { fail_at: Some(n), ..TestSigner::default() }
    }

    /// How many signatures were started.
    pub fn started(&self) -> usize {
        self.starts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The signature this signer makes of `data`.
    pub fn signature_of(data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        format!("TEST-SIG {}", hex::encode(sha2::Sha256::digest(data))).into_bytes()
    }
}

struct TestSigning(sha2::Sha256);

impl Write for TestSigning {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Signing for TestSigning {
    fn finish(self: Box<Self>) -> Result<Vec<u8>, SignError> {
        Ok(format!("TEST-SIG {}", hex::encode(sha2::Digest::finalize(self.0))).into_bytes())
    }
}

impl Signer for TestSigner {
    fn start(&self, _created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError> {
        let n = self.starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_at == Some(n) {
            return Err(SignError::new("injected signing failure"));
        }
        Ok(Box::new(TestSigning(sha2::Sha256::default())))
    }
}

impl<T: Signer + ?Sized> Signer for std::sync::Arc<T> {
    fn start(&self, created: SystemTime) -> Result<Box<dyn Signing + '_>, SignError> {
        (**self).start(created)
    }
}
