//! The cluster relay's decoder fed arbitrary bytes in arbitrary splits must never panic,
//! must give the same messages as a whole-buffer read, and every frame it yields must
//! re-encode to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn decode_all(
    chunks: &mut dyn Iterator<Item = &[u8]>,
) -> (Vec<relay::Message>, Option<relay::RelayError>) {
    let mut d = relay::Decoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(e) = d.push(chunk) {
            return (out, Some(e));
        }
        loop {
            match d.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn encode(msgs: &[relay::Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    relay::encode_preamble(&mut out);
    for m in msgs {
        match m {
            relay::Message::Frame(f) => relay::encode_frame(f, &mut out),
            relay::Message::Keepalive => relay::encode_keepalive(&mut out),
            relay::Message::End => relay::encode_end(&mut out),
        }
    }
    out.to_vec()
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    // Mostly valid streams: the preamble, then the fuzzer's records.
    let mut input = relay::MAGIC.to_vec();
    input.extend_from_slice(stream);
    let (whole, whole_err) = decode_all(&mut std::iter::once(&input[..]));
    let step = usize::from(seed) + 1;
    let (split, split_err) = decode_all(&mut input.chunks(step));
    assert_eq!(whole.len(), split.len());
    assert_eq!(whole_err, split_err);
    // What decoded re-encodes to the same bytes (the wire form is canonical).
    let again = encode(&whole);
    assert_eq!(&input[..again.len()], &again[..]);
});
