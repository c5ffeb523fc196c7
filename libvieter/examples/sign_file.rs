//! Signs a file as a repository signs a published package: a generated Ed25519 key
//! (`OpenPgpSigner`), the file streamed through `libvieter::repo::sign::sign_reader` exactly as
//! `Repository::publish` passes its upload. Prints the seconds the signature took (key generation
//! excluded); writes the signature and the public key when given paths. Used by
//! `scripts/bench-sign.sh`.

use std::error::Error;
use std::time::{Instant, SystemTime};

use libvieter::repo::openpgp::OpenPgpSigner;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: sign_file FILE [SIG_OUT PUBLIC_KEY_OUT]")?;
    let signer = OpenPgpSigner::generate("Bench <bench@example.org>")?;
    let mut file = std::fs::File::open(&path)?;
    let start = Instant::now();
    let signature = libvieter::repo::sign::sign_reader(&signer, &mut file, SystemTime::now())?;
    let secs = start.elapsed().as_secs_f64();
    if let (Some(sig_out), Some(key_out)) = (args.next(), args.next()) {
        std::fs::write(sig_out, &signature)?;
        std::fs::write(key_out, signer.public_key_armored())?;
    }
    println!("{secs:.3}");
    Ok(())
}
