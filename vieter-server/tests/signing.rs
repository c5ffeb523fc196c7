//! Signed repositories against real pacman 6.0 (gpgme) with `SigLevel = Required DatabaseRequired`:
//! the server signs with `signing_key = "generate"`, a temporary keyring trusts the key served by
//! `GET /api/v1/keys`, and pacman verifies every database and package signature.

mod common;

use common::*;

fn tools() -> bool {
    ["pacman", "pacman-key", "gpg", "gpgconf"].into_iter().all(require_tool)
}

/// The server's current key: (fingerprint, armored public key).
async fn served_key(http: &reqwest::Client, url: &str) -> (String, String) {
    let (status, v) = json(http.get(format!("{url}/api/v1/keys")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{v}");
    let key = &v["data"][0];
    let fingerprint = key["fingerprint"].as_str().expect("a fingerprint").to_owned();
    let public = key["public_key"].as_str().expect("a public key").to_owned();
    assert!(public.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"), "{public}");
    assert!(!public.contains("PRIVATE"), "only the public key is served");
    (fingerprint, public)
}

#[tokio::test]
async fn pacman_requiring_signatures_installs_from_a_signing_server_and_refuses_other_keys() {
    if !tools() {
        return;
    }
    let server = Server::start(&[("VIETER_SIGNING_KEY", "generate")]);
    let http = reqwest::Client::new();
    let v1 = package("greeter", "1.0-1", "x86_64", &[("usr/share/greeter/version", b"one\n")]);
    let data = package("greeter-data", "1-1", "any", &[("usr/share/greeter/data", b"data\n")]);
    assert_eq!(publish(&http, &server.url, "mine", v1).await.status(), 200);
    assert_eq!(publish(&http, &server.url, "mine", data).await.status(), 200);

    for file in ["mine.db.sig", "mine.files.sig", "greeter-1.0-1-x86_64.pkg.tar.zst.sig"] {
        let r = http.get(format!("{}/mine/x86_64/{file}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], "application/pgp-signature", "{file}");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(bytes[0] & 0x80, 0x80, "{file}: a binary OpenPGP packet");
    }
    let (status, _) =
        get_bytes(&http, &format!("{}/mine/x86_64/nothing-1-1-x86_64.pkg.tar.zst.sig", server.url)).await;
    assert_eq!(status, 404);

    let (fingerprint, public) = served_key(&http, &server.url).await;
    let keyring = Keyring::new();
    keyring.trust(&public, &fingerprint);
    let pacman = Pacman::signed(&server.url, &["mine"], &keyring);
    let (ok, out) = pacman.run(&["-Sy", "greeter", "greeter-data"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(pacman.root().join("usr/share/greeter/version")).unwrap(), "one\n");

    // A new version: a new db, signed again; the upgrade verifies both.
    let v2 = package("greeter", "1.1-1", "x86_64", &[("usr/share/greeter/version", b"two\n")]);
    assert_eq!(publish(&http, &server.url, "mine", v2).await.status(), 200);
    let (ok, out) = pacman.run(&["-Syu"]);
    assert!(ok, "{out}");
    assert_eq!(std::fs::read_to_string(pacman.root().join("usr/share/greeter/version")).unwrap(), "two\n");

    // Trusting another key only: the database's signature is refused.
    let other = Server::start(&[("VIETER_SIGNING_KEY", "generate")]);
    let (other_fpr, other_public) = served_key(&http, &other.url).await;
    assert_ne!(other_fpr, fingerprint, "each server generates its own key");
    let strangers = Keyring::new();
    strangers.trust(&other_public, &other_fpr);
    let refusing = Pacman::signed(&server.url, &["mine"], &strangers);
    let (ok, out) = refusing.run(&["-Sy", "greeter"]);
    eprintln!("pacman trusting another key: {out}");
    assert!(!ok, "a database signed by an untrusted key is refused: {out}");
    assert!(out.contains("invalid or corrupted database (PGP signature)"), "a signature error: {out}");
    assert!(!refusing.root().join("usr/share/greeter/version").exists());
}

#[tokio::test]
async fn a_package_whose_signature_belongs_to_another_file_is_refused() {
    if !tools() {
        return;
    }
    let server = Server::start(&[("VIETER_SIGNING_KEY", "generate")]);
    let http = reqwest::Client::new();
    let honest = package("honest", "1-1", "x86_64", &[("usr/share/honest", b"honest\n")]);
    let swapped = package("swapped", "1-1", "x86_64", &[("usr/share/swapped", b"swapped\n")]);
    assert_eq!(publish(&http, &server.url, "mine", honest.clone()).await.status(), 200);
    assert_eq!(publish(&http, &server.url, "mine", swapped.clone()).await.status(), 200);
    // What a tampering mirror would serve: a valid signature, of another file.
    let sha = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    let pool = server.data.join("pool");
    std::fs::copy(pool.join(format!("{}.sig", sha(&honest))), pool.join(format!("{}.sig", sha(&swapped))))
        .unwrap();

    let (fingerprint, public) = served_key(&http, &server.url).await;
    let keyring = Keyring::new();
    keyring.trust(&public, &fingerprint);
    let pacman = Pacman::signed(&server.url, &["mine"], &keyring);
    let (ok, out) = pacman.run(&["-Sy", "swapped"]);
    eprintln!("pacman given another file's signature: {out}");
    assert!(!ok, "a package with another file's signature is refused: {out}");
    assert!(out.contains("invalid or corrupted package (PGP signature)"), "a signature error: {out}");
    assert!(!pacman.root().join("usr/share/swapped").exists(), "nothing was installed");
    let (ok, out) = pacman.run(&["-S", "honest"]);
    assert!(ok, "the honestly signed package still installs: {out}");
    assert!(pacman.root().join("usr/share/honest").exists());
}

#[tokio::test]
async fn a_generated_key_is_kept_across_restarts_and_unsigned_servers_serve_no_signatures() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    // Unsigned first: no key, no signature.
    let mut server = Server::start_on(&data, &[]);
    assert_eq!(publish(&http, &server.url, "mine", package("a", "1-1", "x86_64", &[])).await.status(), 200);
    let (status, v) = json(http.get(format!("{}/api/v1/keys", server.url)).send().await.unwrap()).await;
    assert_eq!((status, v["data"].clone()), (200, serde_json::json!([])));
    for file in ["mine.db.sig", "a-1-1-x86_64.pkg.tar.zst.sig"] {
        let (status, _) = get_bytes(&http, &format!("{}/mine/x86_64/{file}", server.url)).await;
        assert_eq!(status, 404, "{file} of an unsigned repository");
    }
    let (_, unsigned_db) = get_bytes(&http, &format!("{}/mine/x86_64/mine.db", server.url)).await;
    server.kill();

    // Signing turned on: the startup recovery signs what is there, without rewriting the db.
    let mut server = Server::start_on(&data, &[("VIETER_SIGNING_KEY", "generate")]);
    let key_file = data.join("signing_key.asc");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let (first, _) = served_key(&http, &server.url).await;
    let (_, db) = get_bytes(&http, &format!("{}/mine/x86_64/mine.db", server.url)).await;
    assert_eq!(db, unsigned_db, "the db is the same bytes, signed or not");
    for file in ["mine.db.sig", "a-1-1-x86_64.pkg.tar.zst.sig"] {
        let (status, _) = get_bytes(&http, &format!("{}/mine/x86_64/{file}", server.url)).await;
        assert_eq!(status, 200, "{file} after signing was turned on");
    }
    server.kill();
    let server = Server::start_on(&data, &[("VIETER_SIGNING_KEY", "generate")]);
    let (again, _) = served_key(&http, &server.url).await;
    assert_eq!(first, again, "the generated key is kept");
    drop(server);

    // The armored key itself, through VIETER_SIGNING_KEY_FILE.
    let other = dir.path().join("other");
    let server = Server::start_on(&other, &[("VIETER_SIGNING_KEY_FILE", key_file.to_str().unwrap())]);
    let (from_file, _) = served_key(&http, &server.url).await;
    assert_eq!(from_file, first, "the key file's key signs");
}

#[test]
fn a_bad_signing_key_stops_the_server_without_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret =
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PRIVATE KEY BLOCK-----\n";
    let out = std::process::Command::new(server_binary())
        .env_clear()
        .env("VIETER_ADDRESS", "127.0.0.1:0")
        .env("VIETER_DATA_DIR", dir.path().join("data"))
        .env("VIETER_API_KEY", KEY)
        .env("VIETER_SIGNING_KEY", secret)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a key that cannot sign stops the server");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("signing_key"), "the error names the setting: {text}");
    assert!(!text.contains("bm90IGEga2V5"), "and never shows the key: {text}");
}

/// The `%PGPSIG%` section of a desc, if any.
fn pgpsig(desc: &str) -> Option<&str> {
    let mut lines = desc.lines();
    lines.by_ref().find(|l| *l == "%PGPSIG%").and_then(|_| lines.next())
}

/// Runs Debian's `repo-add --sign` (6.0.2) in `dir` with the key of `gpg`; the desc of its one entry.
fn repo_add_sign(dir: &std::path::Path, gpg: &Gpg, file: &str) -> String {
    let out = std::process::Command::new("repo-add")
        .args(["-q", "--sign", "--key", &gpg.fingerprint, "ref.db.tar.gz", file])
        .current_dir(dir)
        .env("GNUPGHOME", gpg.dir.path())
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success(), "repo-add --sign: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("ref.db.tar.gz.sig").exists(), "repo-add signed its db");
    let db = libvieter::db::Database::read(std::fs::File::open(dir.join("ref.db.tar.gz")).unwrap()).unwrap();
    assert_eq!(db.len(), 1);
    let desc = db.iter().next().unwrap().entry.desc.clone();
    desc
}

#[tokio::test]
async fn with_md5_entries_carry_the_servers_signature_as_repo_add_sign_writes_it() {
    if !(tools() && require_tool("repo-add")) {
        return;
    }
    let http = reqwest::Client::new();
    let gpg = Gpg::new("Repo Add <repo-add@example.org>");
    let bytes = package("parity", "1.0-1", "x86_64", &[("usr/share/parity/file", b"parity\n")]);
    let filename = "parity-1.0-1-x86_64.pkg.tar.zst";
    for (format, embeds) in [("with_md5", true), ("current", false)] {
        let server = Server::start(&[("VIETER_SIGNING_KEY", "generate"), ("VIETER_DB_FORMAT", format)]);
        assert_eq!(publish(&http, &server.url, "mine", bytes.clone()).await.status(), 200);
        let (status, sig) = get_bytes(&http, &format!("{}/mine/x86_64/{filename}.sig", server.url)).await;
        assert_eq!(status, 200);
        let entries = served_entries(&http, &server.url, "mine", "x86_64").await;
        let ours = &entries[0].1;
        if !embeds {
            // pacman >= 6.1's repo-add writes %PGPSIG% only with --include-sigs.
            assert_eq!(pgpsig(ours), None, "{format}: {ours}");
            continue;
        }
        use base64::Engine as _;
        assert_eq!(pgpsig(ours), Some(base64::engine::general_purpose::STANDARD.encode(&sig).as_str()));
        // repo-add 6.0.2 given the same file and the server's signature next to it.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(filename), &bytes).unwrap();
        std::fs::write(dir.path().join(format!("{filename}.sig")), &sig).unwrap();
        let theirs = repo_add_sign(dir.path(), &gpg, filename);
        assert_eq!(ours, &theirs, "desc: ours, then repo-add --sign's");
    }
}

/// Uploads `bytes` as a multipart form with the signature `sig` (if any) under `key`.
async fn publish_signed(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
    sig: Option<Vec<u8>>,
) -> (u16, serde_json::Value) {
    use reqwest::multipart::{Form, Part};
    let mut form = Form::new();
    if let Some(sig) = sig {
        // Before the file: the order of the parts does not matter.
        form = form.part("sig", Part::bytes(sig).file_name(format!("{name}.sig")));
    }
    form = form.part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let r = http.post(format!("{url}/mine/publish")).header("X-Api-Key", key).multipart(form).send().await;
    json(r.unwrap()).await
}

#[tokio::test]
async fn packager_signatures_are_verified_against_the_trusted_keys() {
    if !tools() {
        return;
    }
    let http = reqwest::Client::new();
    let alice = Gpg::new("Alice Packager <alice@example.org>");
    let mallory = Gpg::new("Mallory <mallory@example.org>");
    let trusted = tempfile::tempdir().unwrap();
    std::fs::write(trusted.path().join("alice.asc"), alice.public_key()).unwrap();
    let trusted_dir = trusted.path().to_str().unwrap();
    let server = Server::start(&[
        ("VIETER_SIGNING_KEY", "generate"),
        ("VIETER_TRUSTED_KEYS", trusted_dir),
        ("VIETER_REQUIRE_SIGNED_UPLOADS", "true"),
        ("VIETER_AGENT_KEY", "agent-key"),
    ]);
    let url = &server.url;
    let signed = package("signed", "1-1", "x86_64", &[("usr/share/signed", b"signed\n")]);
    let armored = package("armored", "1-1", "x86_64", &[("usr/share/armored", b"armored\n")]);
    let other = package("other", "1-1", "x86_64", &[("usr/share/other", b"other\n")]);

    let (status, v) =
        publish_signed(&http, url, KEY, "s.pkg.tar.zst", signed.clone(), Some(alice.sign(&signed, false)))
            .await;
    assert_eq!(status, 200, "a binary signature by a trusted key: {v}");
    let (status, v) =
        publish_signed(&http, url, KEY, "a.pkg.tar.zst", armored.clone(), Some(alice.sign(&armored, true)))
            .await;
    assert_eq!(status, 200, "an armored one: {v}");

    let refused: [(&str, Option<Vec<u8>>, &str, &str); 4] = [
        (
            "another file's signature",
            Some(alice.sign(&signed, false)),
            KEY,
            "does not match the uploaded package",
        ),
        ("an unknown key", Some(mallory.sign(&other, false)), KEY, "not a trusted key"),
        (
            "not a signature",
            Some(b"-----BEGIN PGP SIGNATURE-----\n\nbm9pc2U=\n-----END PGP SIGNATURE-----\n".to_vec()),
            KEY,
            "not an OpenPGP detached signature",
        ),
        ("unsigned, with the admin key", None, KEY, "requires a packager signature"),
    ];
    for (what, sig, key, reason) in refused {
        let (status, v) = publish_signed(&http, url, key, "o.pkg.tar.zst", other.clone(), sig).await;
        assert_eq!(status, 400, "{what}: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{what}: {v}");
        if what == "an unknown key" {
            assert!(message.contains(&mallory.fingerprint), "the key is named: {v}");
        }
    }
    let r = publish(&http, url, "mine", other.clone()).await;
    assert_eq!(r.status(), 400, "a raw unsigned upload with the admin key is refused too");
    let entries = served_entries(&http, url, "mine", "x86_64").await;
    let names: Vec<&str> = entries.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(names, ["armored-1-1", "signed-1-1"], "refused uploads change nothing");

    // An agent's upload needs no packager: the server signs it.
    let (status, v) = publish_signed(&http, url, "agent-key", "o.pkg.tar.zst", other.clone(), None).await;
    assert_eq!(status, 200, "{v}");

    // Served signatures are the server's (users trust one key): pacman requiring signatures installs.
    let (fingerprint, public) = served_key(&http, url).await;
    let (_, served_sig) =
        get_bytes(&http, &format!("{url}/mine/x86_64/signed-1-1-x86_64.pkg.tar.zst.sig")).await;
    assert_ne!(served_sig, alice.sign(&signed, false), "the server's signature, not the packager's");
    let keyring = Keyring::new();
    keyring.trust(&public, &fingerprint);
    let pacman = Pacman::signed(url, &["mine"], &keyring);
    let (ok, out) = pacman.run(&["-Sy", "signed", "armored", "other"]);
    assert!(ok, "{out}");
    drop(server);

    // Without a key of its own the server serves the packager's signature (armor made binary).
    let server = Server::start(&[("VIETER_TRUSTED_KEYS", trusted_dir)]);
    let sig = alice.sign(&armored, true);
    let (status, v) =
        publish_signed(&http, &server.url, KEY, "a.pkg.tar.zst", armored.clone(), Some(sig)).await;
    assert_eq!(status, 200, "{v}");
    let (status, served) =
        get_bytes(&http, &format!("{}/mine/x86_64/armored-1-1-x86_64.pkg.tar.zst.sig", server.url)).await;
    assert_eq!(status, 200);
    assert_eq!(served[0] & 0x80, 0x80, "binary");
    let dir = tempfile::tempdir().unwrap();
    let (pkg, sig) = (dir.path().join("p"), dir.path().join("p.sig"));
    std::fs::write(&pkg, &armored).unwrap();
    std::fs::write(&sig, &served).unwrap();
    alice.run(&["--verify", sig.to_str().unwrap(), pkg.to_str().unwrap()]);
    let (status, v) = publish_signed(&http, &server.url, KEY, "o.pkg.tar.zst", other.clone(), None).await;
    assert_eq!(status, 200, "unsigned uploads are accepted when not required: {v}");
    drop(server);

    // No trusted keys: a signature cannot be checked, so it is refused; requiring one stops the start.
    let server = Server::start(&[]);
    let (status, v) = publish_signed(
        &http,
        &server.url,
        KEY,
        "s.pkg.tar.zst",
        signed.clone(),
        Some(alice.sign(&signed, false)),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("trusts no packager keys"), "{v}");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(server_binary())
        .env_clear()
        .env("VIETER_ADDRESS", "127.0.0.1:0")
        .env("VIETER_DATA_DIR", dir.path().join("data"))
        .env("VIETER_API_KEY", KEY)
        .env("VIETER_REQUIRE_SIGNED_UPLOADS", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusted_keys"), "{out:?}");
}

#[tokio::test]
async fn the_secret_key_never_appears_in_the_servers_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let trace = ("VIETER_LOG_LEVEL", "trace");
    // A generated key, then the same key given as the value itself: every log line at trace level.
    let first_log = dir.path().join("generate.log");
    let mut server = Server::start_logged(&data, &[("VIETER_SIGNING_KEY", "generate"), trace], &first_log);
    let r = publish(&http, &server.url, "mine", package("a", "1-1", "x86_64", &[])).await;
    assert_eq!(r.status(), 200);
    let (fingerprint, public) = served_key(&http, &server.url).await;
    server.kill();
    let secret = std::fs::read_to_string(data.join("signing_key.asc")).unwrap();
    assert!(secret.contains("PRIVATE KEY BLOCK"), "the kept key is the secret key");
    let second_log = dir.path().join("value.log");
    let mut server =
        Server::start_logged(&data, &[("VIETER_SIGNING_KEY", secret.as_str()), trace], &second_log);
    let r = publish(&http, &server.url, "mine", package("b", "1-1", "any", &[])).await;
    assert_eq!(r.status(), 200);
    let (status, _) =
        get_bytes(&http, &format!("{}/mine/x86_64/b-1-1-any.pkg.tar.zst.sig", server.url)).await;
    assert_eq!(status, 200);
    server.kill();
    let _ = server.child.wait();

    let log = std::fs::read_to_string(&first_log).unwrap() + &std::fs::read_to_string(&second_log).unwrap();
    assert!(log.contains(&fingerprint), "the log names the key by its fingerprint");
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the log is at its most verbose");
    assert!(!log.contains("PRIVATE KEY"), "no armored secret key in the log");
    // Every line of the secret key's armor that is not also a line of the public key's.
    let public_lines: std::collections::BTreeSet<&str> = public.lines().collect();
    let secret_lines: Vec<&str> = secret
        .lines()
        .filter(|l| l.len() >= 16 && !l.starts_with("-----") && !public_lines.contains(l))
        .collect();
    assert!(!secret_lines.is_empty());
    for line in secret_lines {
        assert!(!log.contains(line), "a line of the secret key is in the log: {line}");
    }
}

/// The re-sign's state once it has ended (it runs in the background after the start).
async fn resign_ended(http: &reqwest::Client, url: &str) -> serde_json::Value {
    for _ in 0..600 {
        let (status, v) = json(http.get(format!("{url}/api/v1/keys/resign")).send().await.unwrap()).await;
        assert_eq!(status, 200, "{v}");
        if matches!(v["data"]["state"].as_str(), Some("done" | "failed")) {
            return v["data"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the re-sign did not end within a minute");
}

#[tokio::test]
async fn after_a_key_rotation_pacman_trusting_only_the_new_key_installs_everything() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    // with_md5: the entries embed %PGPSIG%, which pacman 6.0 verifies instead of FILE.sig.
    let env = [("VIETER_SIGNING_KEY", "generate"), ("VIETER_DB_FORMAT", "with_md5")];
    let mut server = Server::start_on(&data, &env);
    let tool = package("tool", "1-1", "x86_64", &[("usr/share/tool/version", b"one\n")]);
    let shared = package("shared", "1-1", "any", &[("usr/share/shared/data", b"data\n")]);
    assert_eq!(publish(&http, &server.url, "mine", tool).await.status(), 200);
    assert_eq!(publish(&http, &server.url, "mine", shared).await.status(), 200);
    let (old_fpr, old_public) = served_key(&http, &server.url).await;
    server.kill();

    // The rotation: another key (here: a new generated one) signs from the next start on.
    std::fs::remove_file(data.join("signing_key.asc")).unwrap();
    let server = Server::start_on(&data, &env);
    let (status, keys) = json(http.get(format!("{}/api/v1/keys", server.url)).send().await.unwrap()).await;
    assert_eq!(status, 200, "{keys}");
    let listed: Vec<(&str, bool)> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["fingerprint"].as_str().unwrap(), k["current"].as_bool().unwrap()))
        .collect();
    let (new_fpr, new_public) = served_key(&http, &server.url).await;
    assert_ne!(new_fpr, old_fpr, "a new key");
    assert_eq!(
        listed,
        [(new_fpr.as_str(), true), (old_fpr.as_str(), false)],
        "current first, the old one retired"
    );
    let resign = resign_ended(&http, &server.url).await;
    assert_eq!(resign["state"], "done", "{resign}");
    assert_eq!((resign["packages"].as_u64(), resign["resigned"].as_u64()), (Some(2), Some(2)), "{resign}");

    // pacman trusting only the new key: every db, entry and package signature is the new key's.
    let keyring = Keyring::new();
    keyring.trust(&new_public, &new_fpr);
    let pacman = Pacman::signed(&server.url, &["mine"], &keyring);
    let (ok, out) = pacman.run(&["-Sy", "tool", "shared"]);
    assert!(ok, "pacman trusting the new key only: {out}");
    assert!(pacman.root().join("usr/share/shared/data").exists());
    // And trusting only the old key: refused (nothing is left signed by it).
    let old_ring = Keyring::new();
    old_ring.trust(&old_public, &old_fpr);
    let (ok, out) = Pacman::signed(&server.url, &["mine"], &old_ring).run(&["-Sy", "tool"]);
    assert!(!ok, "the retired key signs nothing any more: {out}");

    // Removing keys: the current one is refused, the retired one goes, then is unknown.
    let admin = |r: reqwest::RequestBuilder| r.header("X-Api-Key", KEY);
    let delete = |fpr: &str| admin(http.delete(format!("{}/api/v1/keys/{fpr}", server.url))).send();
    let (status, v) = json(delete(&new_fpr).await.unwrap()).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("current signing key"), "{v}");
    let (status, v) =
        json(http.delete(format!("{}/api/v1/keys/{old_fpr}", server.url)).send().await.unwrap()).await;
    assert_eq!(status, 401, "removing needs the admin key: {v}");
    let (status, v) = json(delete(&old_fpr.to_lowercase()).await.unwrap()).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = json(delete(&old_fpr).await.unwrap()).await;
    assert_eq!(status, 404, "{v}");
    let (_, keys) = json(http.get(format!("{}/api/v1/keys", server.url)).send().await.unwrap()).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "only the current key: {keys}");
    assert!(!data.join("signing_keys").join(format!("{old_fpr}.asc")).exists());
}
