//! Credentials in hostile queries: `?token=`/`expires=`/`sign=` extraction with
//! percent-decoding and the RTMP connect query (from `tcUrl`) merged with a stream name's.
//! Input: query, a NUL, then the tcUrl.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, tc_url) = text.split_once('\0').unwrap_or((&text, ""));
    let decoded = sluice_server::fuzzing::auth_query(query, tc_url);
    // Percent-decoding never grows a value.
    assert!(decoded <= query.len() + tc_url.len());
});
