#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches them.
    let mut dec = rtmp::chunk::ChunkDecoder::new(4096, 8);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    for part in [a, b] {
        dec.push(part);
        loop {
            match dec.poll() {
                Ok(Some(m)) => assert!(m.payload.len() <= 4096),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
