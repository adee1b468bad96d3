//! RSS and Atom feeds: one document per item, each through extraction.
//! No media type hint, so sniffing RSS vs Atom vs HTML is fuzzed too.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::read_and_extract("feed.xml", data, None);
});
