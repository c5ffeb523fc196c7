//! `libvieter::version::vercmp` against pacman's own `/usr/bin/vercmp` on thousands of generated pairs.

mod common;

use std::cmp::Ordering;
use std::io::Write;
use std::process::Command;

use libvieter::version::vercmp;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A version string that stresses the corners of the algorithm.
fn version(rng: &mut Rng) -> String {
    const SEGMENTS: &[&str] = &[
        "0",
        "1",
        "2",
        "9",
        "10",
        "01",
        "001",
        "00",
        "100",
        "12345678901234567890",
        "a",
        "b",
        "z",
        "alpha",
        "beta",
        "rc",
        "rc1",
        "pre",
        "p",
        "git",
        "r45",
        "gabc",
        "1a",
        "a1",
        "",
    ];
    const SEPARATORS: &[&str] = &[".", ".", ".", "_", "+", "~", "..", "__", "._", "-", ""];
    let mut s = String::new();
    if rng.below(5) == 0 {
        s.push_str(rng.pick(&["0", "1", "2", "10", "01", ""]));
        s.push(':');
    }
    let segments = 1 + rng.below(5);
    for i in 0..segments {
        if i > 0 {
            s.push_str(rng.pick(SEPARATORS));
        }
        s.push_str(rng.pick(SEGMENTS));
    }
    if rng.below(2) == 0 {
        s.push('-');
        s.push_str(rng.pick(&["1", "2", "1.1", "1.0", "10", "0", "a", "", "1.a"]));
    }
    if rng.below(10) == 0 {
        s.push_str(rng.pick(&[".", "-", "_", "+"]));
    }
    s
}

#[test]
fn matches_pacman_vercmp_on_generated_pairs() {
    if !common::require_tool("vercmp") {
        return;
    }
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut pairs = Vec::new();
    while pairs.len() < 4000 {
        let (a, b) = (version(&mut rng), version(&mut rng));
        // The batch is read with `read -r a b`: skip strings the shell would split or drop.
        if a.is_empty() || b.is_empty() {
            continue;
        }
        // Near-equal pairs are the interesting ones: mutate one character sometimes.
        let b = if rng.below(3) == 0 { a.replacen('.', "_", 1) } else { b };
        pairs.push((a, b));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs");
    let mut f = std::fs::File::create(&input).unwrap();
    for (a, b) in &pairs {
        writeln!(f, "{a} {b}").unwrap();
    }
    drop(f);
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"while read -r a b; do vercmp "$a" "$b"; done < "$1""#)
        .arg("vercmp-batch")
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let results: Vec<i32> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(results.len(), pairs.len());
    let mut mismatches = Vec::new();
    for ((a, b), want) in pairs.iter().zip(&results) {
        let got = match vercmp(a, b) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        };
        if got != *want {
            mismatches.push(format!("vercmp {a:?} {b:?}: pacman {want}, ours {got}"));
        }
        assert_eq!(vercmp(b, a), vercmp(a, b).reverse(), "antisymmetry for {a:?} {b:?}");
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
