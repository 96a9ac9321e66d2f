//! The RTMP handshake: server side (simple and digest schemes) and a simple
//! client side.
//!
//! Server: C0+C1 in, S0+S1+S2 out, C2 in. If C1 carries a valid Flash Player
//! digest (either layout) the answer carries FMS digests, otherwise it is the
//! plain handshake of the RTMP 1.0 spec (S2 echoes C1).

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::RtmpError;

/// The only RTMP version we speak (C0/S0).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, S1, C2 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// Size of an HMAC-SHA256 digest.
pub const DIGEST_LEN: usize = 32;

const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_PREFIX: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const FMS_PREFIX: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// The full 62-byte Flash Player key (the first 30 bytes key C1's digest).
pub fn flash_player_key() -> [u8; 62] {
    let mut k = [0u8; 62];
    k[..30].copy_from_slice(FP_PREFIX);
    k[30..].copy_from_slice(&KEY_TAIL);
    k
}

/// The full 68-byte Flash Media Server key (the first 36 bytes key S1's digest).
pub fn flash_media_server_key() -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..36].copy_from_slice(FMS_PREFIX);
    k[36..].copy_from_slice(&KEY_TAIL);
    k
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Where the digest sits in a 1536-byte C1/S1 for the given layout
/// (0: offset from bytes 8..12, 1: offset from bytes 772..776).
pub fn digest_offset(block: &[u8; HANDSHAKE_SIZE], schema: u8) -> usize {
    let base = if schema == 0 { 8 } else { 772 };
    let sum: usize = block[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    sum % 728 + base + 4
}

/// The digest of `block` (excluding the 32 bytes at `offset`) keyed with `key`.
pub fn block_digest(block: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&block[..offset], &block[offset + DIGEST_LEN..]])
}

/// Finds a valid Flash Player digest in C1: `(schema, digest)`.
pub fn find_client_digest(c1: &[u8; HANDSHAKE_SIZE]) -> Option<(u8, [u8; DIGEST_LEN])> {
    [0u8, 1].into_iter().find_map(|schema| {
        let off = digest_offset(c1, schema);
        let expected = block_digest(c1, off, FP_PREFIX);
        (c1[off..off + DIGEST_LEN] == expected).then_some((schema, expected))
    })
}

/// Writes a digest into `block` at the layout's offset, keyed with `key`.
pub fn sign_block(block: &mut [u8; HANDSHAKE_SIZE], schema: u8, key: &[u8]) {
    let off = digest_offset(block, schema);
    let d = block_digest(block, off, key);
    block[off..off + DIGEST_LEN].copy_from_slice(&d);
}

fn random_block() -> Box<[u8; HANDSHAKE_SIZE]> {
    let mut b = Box::new([0u8; HANDSHAKE_SIZE]);
    rand::rng().fill_bytes(&mut b[8..]);
    b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Server side of the handshake.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    buf: BytesMut,
    out: BytesMut,
    digest: bool,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A handshake waiting for C0+C1.
    pub fn new() -> Self {
        Self {
            state: ServerState::WaitC0C1,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            digest: false,
        }
    }

    /// Feeds bytes; returns how many were consumed. Bytes not consumed
    /// (those after C2) belong to the chunk layer.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, RtmpError> {
        let mut used = 0;
        while used < data.len() && self.state != ServerState::Done {
            let want = match self.state {
                ServerState::WaitC0C1 => 1 + HANDSHAKE_SIZE,
                _ => HANDSHAKE_SIZE,
            };
            let rest = data.get(used..).unwrap_or_default();
            let n = (want - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..n]);
            used += n;
            if self.buf.first().is_some_and(|&v| v != RTMP_VERSION)
                && self.state == ServerState::WaitC0C1
            {
                return Err(RtmpError::BadVersion {
                    version: self.buf[0],
                });
            }
            if self.buf.len() < want {
                break;
            }
            let block = self.buf.split();
            match self.state {
                ServerState::WaitC0C1 => {
                    let mut c1 = [0u8; HANDSHAKE_SIZE];
                    c1.copy_from_slice(&block[1..]);
                    self.respond(&c1);
                    self.state = ServerState::WaitC2;
                }
                _ => self.state = ServerState::Done,
            }
        }
        Ok(used)
    }

    fn respond(&mut self, c1: &[u8; HANDSHAKE_SIZE]) {
        self.out.put_u8(RTMP_VERSION);
        match find_client_digest(c1) {
            Some((schema, c1_digest)) => {
                self.digest = true;
                let mut s1 = random_block();
                s1[..4].fill(0);
                s1[4..8].copy_from_slice(&[4, 5, 0, 1]);
                sign_block(&mut s1, schema, FMS_PREFIX);
                self.out.put_slice(&s1[..]);
                let mut s2 = random_block();
                rand::rng().fill_bytes(&mut s2[..8]);
                let key = hmac_sha256(&flash_media_server_key(), &[&c1_digest]);
                let split = HANDSHAKE_SIZE - DIGEST_LEN;
                let d = hmac_sha256(&key, &[&s2[..split]]);
                s2[split..].copy_from_slice(&d);
                self.out.put_slice(&s2[..]);
            }
            None => {
                let s1 = random_block();
                self.out.put_slice(&s1[..]);
                self.out.put_slice(c1);
            }
        }
    }

    /// True once C2 has been received.
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// True if the client used the digest scheme.
    pub fn is_digest(&self) -> bool {
        self.digest
    }

    /// S0+S1+S2, once, after C0+C1 arrived.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }
}

/// Client side of the simple handshake (for our own test and load clients).
#[derive(Debug)]
pub struct ClientHandshake {
    buf: BytesMut,
    out: BytesMut,
    done: bool,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientHandshake {
    /// A client handshake; C0+C1 are ready in [`Self::take_output`].
    pub fn new() -> Self {
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&random_block()[..]);
        Self {
            buf: BytesMut::new(),
            out,
            done: false,
        }
    }

    /// Feeds S0+S1+S2; returns how many bytes were consumed.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, RtmpError> {
        if self.done {
            return Ok(0);
        }
        let want = 1 + 2 * HANDSHAKE_SIZE;
        let n = (want - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if let Some(&v) = self.buf.first()
            && v != RTMP_VERSION
        {
            return Err(RtmpError::BadVersion { version: v });
        }
        if self.buf.len() == want {
            // C2 echoes S1.
            self.out.put_slice(&self.buf[1..1 + HANDSHAKE_SIZE]);
            self.buf = BytesMut::new();
            self.done = true;
        }
        Ok(n)
    }

    /// True once S2 has been received (C2 is then queued).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes to send (C0+C1 first, C2 later).
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_exchange() {
        let mut client = ClientHandshake::new();
        let mut server = ServerHandshake::new();
        let c0c1 = client.take_output().unwrap();
        assert_eq!(c0c1.len(), 1537);
        // Delivered in two pieces.
        assert_eq!(server.handle_input(&c0c1[..100]).unwrap(), 100);
        assert!(server.take_output().is_none());
        assert_eq!(server.handle_input(&c0c1[100..]).unwrap(), 1437);
        let s = server.take_output().unwrap();
        assert_eq!(s.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(s[0], 3);
        assert_eq!(&s[1 + HANDSHAKE_SIZE..], &c0c1[1..], "S2 echoes C1");
        assert!(!server.is_digest());
        assert_eq!(client.handle_input(&s).unwrap(), s.len());
        assert!(client.is_done());
        let c2 = client.take_output().unwrap();
        assert_eq!(&c2[..], &s[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");
        // C2 followed by chunk bytes: only C2 is consumed.
        let mut tail = c2.to_vec();
        tail.extend_from_slice(&[0x02, 0xAA]);
        assert_eq!(server.handle_input(&tail).unwrap(), HANDSHAKE_SIZE);
        assert!(server.is_done());
    }

    #[test]
    fn bad_version() {
        let mut server = ServerHandshake::new();
        assert_eq!(
            server.handle_input(&[6]),
            Err(RtmpError::BadVersion { version: 6 })
        );
    }

    fn digest_exchange(schema: u8) {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        for (i, b) in c1.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        // Sign C1 independently of the library helpers.
        let base = if schema == 0 { 8 } else { 772 };
        let off = c1[base..base + 4]
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()
            % 728
            + base
            + 4;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Genuine Adobe Flash Player 001").unwrap();
        mac.update(&c1[..off]);
        mac.update(&c1[off + 32..]);
        let c1_digest: [u8; 32] = mac.finalize().into_bytes().into();
        c1[off..off + 32].copy_from_slice(&c1_digest);

        let mut server = ServerHandshake::new();
        server.handle_input(&[3]).unwrap();
        server.handle_input(&c1).unwrap();
        assert!(server.is_digest());
        let out = server.take_output().unwrap();
        let s1: [u8; HANDSHAKE_SIZE] = out[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
        let s2 = &out[1 + HANDSHAKE_SIZE..];

        // S1 digest, same layout, keyed with the 36-byte FMS prefix.
        let soff = s1[base..base + 4]
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()
            % 728
            + base
            + 4;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(b"Genuine Adobe Flash Media Server 001").unwrap();
        mac.update(&s1[..soff]);
        mac.update(&s1[soff + 32..]);
        assert_eq!(&s1[soff..soff + 32], &mac.finalize().into_bytes()[..]);

        // S2 digest: key = HMAC(full FMS key, C1 digest).
        let mut full = b"Genuine Adobe Flash Media Server 001".to_vec();
        full.extend_from_slice(&KEY_TAIL);
        let mut mac = Hmac::<Sha256>::new_from_slice(&full).unwrap();
        mac.update(&c1_digest);
        let key = mac.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(&s2[..HANDSHAKE_SIZE - 32]);
        assert_eq!(&s2[HANDSHAKE_SIZE - 32..], &mac.finalize().into_bytes()[..]);
    }

    #[test]
    fn digest_exchange_schema0() {
        digest_exchange(0);
    }

    #[test]
    fn digest_exchange_schema1() {
        digest_exchange(1);
    }
}
