#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches them.
    let mut dec = rtmp::chunk::ChunkDecoder::new(4096, 8);
    dec.set_max_partial_bytes(1024);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    for part in [a, b] {
        dec.push(part);
        loop {
            let r = dec.poll();
            // Incomplete messages never hold more than the budget, on at most the limit of
            // chunk streams, whatever the input.
            assert!(dec.partial_bytes() <= 1024);
            assert!(dec.partial_messages() <= rtmp::chunk::MAX_PARTIAL_MESSAGES);
            match r {
                Ok(Some(m)) => assert!(m.payload.len() <= 4096),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
