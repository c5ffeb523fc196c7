//! Dependency strings parse without panicking and print back as parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvieter::depend::Dependency;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(dep) = Dependency::parse(text) {
            let again = Dependency::parse(&dep.to_string()).expect("printed form parses");
            assert_eq!(again.name, dep.name);
        }
    }
});
