//! `vieter keys`: the server's signing keys (`GET /api/v1/keys`) and the pacman-key commands that make
//! pacman trust them.

use clap::Args;

use crate::Context;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Print only the armored public keys (for `pacman-key --add FILE`).
    #[arg(long)]
    pub export: bool,
    /// Remove a retired key (admin): it is no longer listed. Refused for the current key and while
    /// the re-sign of the packages after a rotation is not done.
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "export")]
    pub remove: Option<String>,
}

/// The re-sign's state in words.
pub fn resign_line(status: &libvieter::api::ResignStatus) -> String {
    use libvieter::api::ResignState;
    let p = &status.progress;
    match status.state {
        ResignState::Idle => "Re-sign: not run.".into(),
        ResignState::Running => {
            format!("Re-sign after the rotation: running, {} of {} package files checked, {} signed again.", p.checked, p.packages, p.resigned)
        }
        ResignState::Done => format!(
            "Re-sign after the rotation: done, {} package files checked, {} signed again.",
            p.checked, p.resigned
        ),
        ResignState::Failed => format!(
            "Re-sign after the rotation: FAILED after {} of {} package files ({}); it runs again at the next start.",
            p.checked,
            p.packages,
            status.error.as_deref().unwrap_or("no reason given")
        ),
    }
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
    if let Some(fingerprint) = &args.remove {
        client.remove_key(fingerprint).await.map_err(|e| format!("removing key {fingerprint}: {e}"))?;
        ctx.out.say(format!("Removed the retired key {fingerprint}."));
        return Ok(());
    }
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
    for key in &keys {
        let which = if key.current { "current" } else { "retired, still accepted" };
        ctx.out.say(format!("{} ({which})\n{}", key.fingerprint, key.public_key.trim_end()));
        ctx.out.say("");
    }
    let fingerprints: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
    ctx.out.say(instructions(client.address(), &fingerprints));
    if keys.len() > 1 {
        let status = client.resign_status().await.map_err(|e| e.to_string())?;
        ctx.out.say(resign_line(&status));
    }
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

    #[test]
    fn the_resign_line_says_how_far_it_is() {
        use libvieter::api::{ResignProgress, ResignState, ResignStatus};
        let mut status = ResignStatus {
            state: ResignState::Running,
            progress: ResignProgress { packages: 10, checked: 4, resigned: 3 },
            started_at: None,
            finished_at: None,
            error: None,
        };
        assert!(
            super::resign_line(&status).contains("running, 4 of 10 package files checked, 3 signed again")
        );
        status.state = ResignState::Failed;
        status.error = Some("disk full".into());
        let line = super::resign_line(&status);
        assert!(line.contains("FAILED after 4 of 10") && line.contains("disk full"), "{line}");
    }
}
