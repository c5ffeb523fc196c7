//! `vieter keys`: the server's signing keys (`GET /api/v1/keys`) and the pacman-key commands that make
//! pacman trust them.

use clap::Args;

use crate::Context;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Print only the armored public keys (for `pacman-key --add FILE`).
    #[arg(long)]
    pub export: bool,
}

/// What a user runs (as root) to trust the keys, and the pacman.conf line that then requires them.
pub fn instructions(address: &str, fingerprints: &[&str]) -> String {
    let mut text = String::from("Trust them in pacman (as root):\n");
    text.push_str(&format!("  vieter --server {address} keys --export > /tmp/vieter-keys.asc\n"));
    text.push_str("  pacman-key --add /tmp/vieter-keys.asc\n");
    for fingerprint in fingerprints {
        text.push_str(&format!("  pacman-key --lsign-key {fingerprint}\n"));
    }
    text.push_str("then require signatures for the repository in /etc/pacman.conf:\n");
    text.push_str("  SigLevel = Required DatabaseRequired");
    text
}

pub async fn run(ctx: &Context, args: KeysArgs) -> Result<(), String> {
    let client = ctx.client()?;
    let keys = client.keys().await.map_err(|e| e.to_string())?;
    if args.export {
        for key in &keys {
            print!("{}", key.public_key);
            if !key.public_key.ends_with('\n') {
                println!();
            }
        }
        return Ok(());
    }
    if ctx.out.json {
        return ctx.out.print(&keys, || crate::output::table(["FINGERPRINT"]));
    }
    if keys.is_empty() {
        ctx.out.say("The server does not sign its repositories (no signing_key is configured).");
        return Ok(());
    }
    for (i, key) in keys.iter().enumerate() {
        let which = if i == 0 { "current" } else { "still accepted" };
        ctx.out.say(format!("{} ({which})\n{}", key.fingerprint, key.public_key.trim_end()));
        ctx.out.say("");
    }
    let fingerprints: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
    ctx.out.say(instructions(client.address(), &fingerprints));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_instructions_add_and_lsign_every_key() {
        let text = super::instructions("http://repo:8000", &["AAAA", "BBBB"]);
        assert!(
            text.contains("vieter --server http://repo:8000 keys --export > /tmp/vieter-keys.asc"),
            "{text}"
        );
        assert!(text.contains("pacman-key --add /tmp/vieter-keys.asc"), "{text}");
        assert!(
            text.contains("pacman-key --lsign-key AAAA\n") && text.contains("pacman-key --lsign-key BBBB\n")
        );
        assert!(text.ends_with("SigLevel = Required DatabaseRequired"), "{text}");
    }
}
