//! Datagrams on the shared WebRTC UDP socket: the STUN username routing never panics, and
//! only a STUN request naming the registered ufrag (or a later datagram from an address it
//! taught) reaches the peer. The first byte picks one of 16 source ports.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use sluice_server::fuzzing::UdpRouter;

thread_local! {
    static ROUTER: RefCell<UdpRouter> = RefCell::new(UdpRouter::new());
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, datagrams)) = data.split_first() else {
        return;
    };
    ROUTER.with(|r| {
        let mut r = r.borrow_mut();
        // Several datagrams per input, each after a 2-byte length, so learnt addresses get
        // reused.
        let mut rest = datagrams;
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
            let (d, next) = tail.split_at(len);
            r.route(40_000 + u16::from(port & 0x0F), d);
            rest = next;
        }
    });
});
