//! Plain-text articles (a date line, then the body) through reading and extraction.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::read_and_extract("article.txt", data, Some("text/plain"));
});
