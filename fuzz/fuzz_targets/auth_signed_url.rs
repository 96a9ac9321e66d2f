//! Signed URLs: arbitrary `expires`/`sign` values for arbitrary keys never panic and never
//! verify (the fuzzer cannot know the HMAC). Input lines: key, expires, sign.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let key = lines.next().unwrap_or("");
    let expires = lines.next().unwrap_or("");
    let sign = lines.next().unwrap_or("");
    let now = 1_700_000_000;
    // The one signature that verifies is the real HMAC; anything else must be refused.
    for action in [access::Action::Play, access::Action::Publish] {
        let ok = access::signed_url::verify(b"fuzz-secret", action, key, expires, sign, now)
            .is_ok();
        if ok {
            assert_eq!(sign.len(), 64, "only a full HMAC-SHA256 tag verifies");
        }
    }
});
