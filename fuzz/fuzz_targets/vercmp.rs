//! vercmp never panics and is antisymmetric; Version parsing round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::version::{vercmp, Version};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (a, b) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    assert_eq!(vercmp(a, b), vercmp(b, a).reverse());
    assert_eq!(vercmp(a, a), std::cmp::Ordering::Equal);
    if let Ok(text) = std::str::from_utf8(a) {
        if let Ok(v) = Version::parse(text) {
            assert_eq!(v.as_str(), text);
            let rebuilt = match v.epoch() {
                Some(e) => format!("{e}:{}-{}", v.pkgver(), v.pkgrel()),
                None => format!("{}-{}", v.pkgver(), v.pkgrel()),
            };
            assert_eq!(rebuilt, text);
        }
    }
});
