//! The demultiplexing key of a datagram on the shared WebRTC port: the local ICE ufrag in a
//! STUN request's USERNAME (`ours:theirs`, RFC 8445 §7.2.2).
//!
//! All peers share one UDP port, so before a datagram can reach a peer's ICE agent the
//! server must know which peer it is for: a known source address, else the ufrag a STUN
//! Binding request names. This reads only that (header, attribute walk, USERNAME); it
//! verifies nothing: the peer's ICE agent (str0m) checks the message integrity and
//! everything else of the request it is handed. Bounded and never panicking on any input.

/// Length of the STUN header (type, length, magic cookie, transaction id).
pub const HEADER_LEN: usize = 20;
/// The STUN magic cookie (RFC 5389).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Attribute type of USERNAME.
const ATTR_USERNAME: u16 = 0x0006;
/// Longest USERNAME value (RFC 5389: under 513 bytes).
pub const MAX_USERNAME: usize = 512;
/// Most attributes looked at before giving up on finding USERNAME.
pub const MAX_ATTRIBUTES: usize = 32;

/// The local ufrag a STUN message names in its USERNAME, when `data` is a STUN message (the
/// first two bits zero, the magic cookie, a length that fits) with a USERNAME of UTF-8 text.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    let header = data.get(..HEADER_LEN)?;
    if header[0] & 0xC0 != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if cookie != MAGIC_COOKIE || len % 4 != 0 {
        return None;
    }
    let mut attrs = data.get(HEADER_LEN..HEADER_LEN + len)?;
    for _ in 0..MAX_ATTRIBUTES {
        let [t0, t1, l0, l1, rest @ ..] = attrs else {
            return None;
        };
        let kind = u16::from_be_bytes([*t0, *t1]);
        let value_len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let value = rest.get(..value_len)?;
        if kind == ATTR_USERNAME {
            if value_len > MAX_USERNAME {
                return None;
            }
            let username = std::str::from_utf8(value).ok()?;
            let (ours, _) = username.split_once(':')?;
            return (!ours.is_empty()).then_some(ours);
        }
        // Attributes are padded to four bytes.
        let padded = value_len.div_ceil(4) * 4;
        attrs = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request with `attrs` (type, value) after the header.
    fn request(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn finds_the_local_ufrag_after_other_attributes() {
        let m = request(&[
            (0x0024, &[0, 0, 0, 1]),
            (0x0006, b"srv1:cli9"),
            (0x0008, &[1; 20]),
        ]);
        assert_eq!(local_ufrag(&m), Some("srv1"));
        let odd = request(&[(0x8022, b"abc"), (0x0006, b"u:x")]);
        assert_eq!(local_ufrag(&odd), Some("u"));
    }

    #[test]
    fn not_stun_or_no_username() {
        assert_eq!(local_ufrag(&[]), None);
        assert_eq!(local_ufrag(&[0x80; 40]), None, "RTP/RTCP (first bits 10)");
        let mut bad_cookie = request(&[(0x0006, b"a:b")]);
        bad_cookie[4] ^= 1;
        assert_eq!(local_ufrag(&bad_cookie), None);
        assert_eq!(local_ufrag(&request(&[(0x0024, &[0; 4])])), None);
        assert_eq!(local_ufrag(&request(&[(0x0006, b"nocolon")])), None);
        assert_eq!(local_ufrag(&request(&[(0x0006, b":theirs")])), None);
        assert_eq!(
            local_ufrag(&request(&[(0x0006, &[0xFF, b':', b'x'])])),
            None
        );
        let mut truncated = request(&[(0x0006, b"srv1:cli9")]);
        truncated.truncate(truncated.len() - 4);
        assert_eq!(local_ufrag(&truncated), None, "length beyond the datagram");
        let long = vec![b'a'; MAX_USERNAME + 1];
        assert_eq!(local_ufrag(&request(&[(0x0006, &long)])), None);
    }
}
