//! Credentials in hostile queries: `?token=`/`expires=`/`sign=` extraction with
//! percent-decoding and the RTMP connect query (from `tcUrl`) merged with a stream name's.
//! Input: query, a NUL, then the tcUrl.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, tc_url) = text.split_once('\0').unwrap_or((&text, ""));
    let merged = access::merge_queries(
        Some(query),
        access::rtmp_connect_query(None, Some(tc_url)).as_deref(),
    );
    let q = access::QueryCredentials::parse(merged.as_deref().unwrap_or(""));
    let decoded = q.token.map_or(0, |t| t.1.len())
        + q.expires.map_or(0, |t| t.1.len())
        + q.sign.map_or(0, |t| t.1.len());
    // Percent-decoding never grows a value.
    assert!(decoded <= query.len() + tc_url.len());
});
