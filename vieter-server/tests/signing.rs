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
