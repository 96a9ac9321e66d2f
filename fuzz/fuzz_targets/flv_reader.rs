//! An FlvReader fed arbitrary bytes in arbitrary splits must yield the same tags as a
//! whole-buffer read, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the split pattern; the rest is the stream.
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = flv::read_all_tags(stream);

    let mut reader = flv::FlvReader::new();
    let mut tags = Vec::new();
    let mut error = None;
    let mut rest = stream;
    let mut step = usize::from(seed) + 1;
    'feed: while !rest.is_empty() {
        let n = step.min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        step = step * 7 % 251 + 1;
        reader.push(chunk);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => {
                    let _ = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body.clone());
                    tags.push(tag);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    match (whole, error) {
        (Ok(all), None) => assert_eq!(all, tags),
        (Err(_), _) => {}
        (Ok(_), Some(e)) => panic!("split read failed where whole read succeeded: {e}"),
    }
});
