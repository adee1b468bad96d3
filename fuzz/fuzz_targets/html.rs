//! HTML pages through reading (boilerplate removal, date meta) and extraction.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::read_and_extract("page.html", data, Some("text/html"));
});
