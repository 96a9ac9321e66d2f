//! NAL unit payload to RBSP: emulation prevention removal (H.264 7.4.1, H.265 7.4.2).

/// Removes H.264/H.265 emulation prevention bytes (the `03` in `00 00 03`), NAL -> RBSP.
/// The output is never longer than the input, so callers bound the work by bounding `nal`.
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03]),
            [0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]
        );
        assert_eq!(
            unescape_rbsp(&[0x00, 0x03, 0x00, 0x03]),
            [0x00, 0x03, 0x00, 0x03]
        );
        // After the 2-byte H.265 NAL header: 00 00 03 01 -> 00 00 01.
        assert_eq!(
            unescape_rbsp(&[0x42, 0x01, 0, 0, 3, 1, 5]),
            [0x42, 0x01, 0, 0, 1, 5]
        );
    }
}
