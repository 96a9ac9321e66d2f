//! Stream names from hostile clients, as every protocol parses them: raw URL path
//! segments (percent-decoded once, `+` kept) and plain parts (RTMP). A name that is accepted
//! has no control character, no separator, no dot segment, and the same key either way.
//! Input: app, a `/`, stream (as raw path segments).
#![no_main]

use access::{StreamName, escape_for_log};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (app, stream) = text.split_once('/').unwrap_or((&text, ""));
    if let Ok(n) = StreamName::from_path_segments(app, stream) {
        for part in [n.app(), n.stream()] {
            assert!(!part.is_empty() && part != "." && part != "..");
            assert!(!part.contains(['/', '\\']));
            assert!(!part.chars().any(char::is_control));
        }
        // The decoded parts name the same stream when given as plain parts (RTMP).
        let again = StreamName::new(n.app(), n.stream()).expect("a checked name is valid");
        assert_eq!(again.key(), n.key());
        assert_eq!(escape_for_log(n.key()), n.key());
        assert_eq!(StreamName::from_key(n.key()).map(|k| k.key().to_owned()), Ok(n.key().to_owned()));
    }
    let plain = StreamName::new(app, stream);
    if let Ok(n) = plain {
        assert_eq!(n.key(), format!("{app}/{stream}"));
    }
    assert!(!escape_for_log(&text).contains(['\r', '\n']));
});
