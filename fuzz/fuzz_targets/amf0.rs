#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf::decode_all(data) {
        // Whatever decodes must re-encode and decode again without panicking.
        let mut out = bytes::BytesMut::new();
        amf::encode_all(&values, &mut out);
        let _ = amf::decode_all(&out);
    }
    let _ = amf::amf3::decode(&mut &data[..]);
});
