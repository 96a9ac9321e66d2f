//! Room signalling from hostile participants: any WebSocket message either decodes or is
//! refused without panicking, and what decodes re-encodes to a request that decodes again
//! (what a relay of it, or a test client, would send) unless a bound refuses it: the bounds
//! over-count (packed scalars look like sub-messages), and prost writes a map entry's key and
//! value even when the input left them out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rooms::RoomsError;
use rooms::signal::{MAX_SIGNAL_MESSAGE, decode_request, encode_request};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(data) else {
        return;
    };
    assert!(data.len() <= MAX_SIGNAL_MESSAGE);
    let bytes = encode_request(&req);
    match decode_request(&bytes) {
        // Maps encode in hash order, so compare sizes rather than bytes.
        Ok(again) => assert_eq!(encode_request(&again).len(), bytes.len()),
        Err(RoomsError::TooLarge { .. }) => {}
        Err(RoomsError::BadRequest(why))
            if why.contains("sub-messages") || why.contains("deeper") => {}
        Err(e) => panic!("a re-encoded request does not decode: {e}"),
    }
});
