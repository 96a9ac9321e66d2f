//! Transport stream packets: headers, adaptation fields (PCR, random access, stuffing),
//! continuity counters, and splitting PES packets and PSI sections into 188-byte packets.

use bytes::{BufMut, BytesMut};

/// Length of every transport stream packet.
pub const TS_PACKET_LEN: usize = 188;
/// The sync byte that starts every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// Bytes after the 4-byte packet header (adaptation field + payload).
const BODY_LEN: usize = TS_PACKET_LEN - 4;
/// Adaptation field flag: random_access_indicator.
const AF_RANDOM_ACCESS: u8 = 0x40;
/// Adaptation field flag: PCR_flag.
const AF_PCR: u8 = 0x10;
/// 33-bit mask for PTS, DTS and PCR base values.
pub const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// A 4-bit continuity counter for one PID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContinuityCounter(u8);

impl ContinuityCounter {
    /// Returns the value for the next packet carrying payload and advances (mod 16).
    pub fn advance(&mut self) -> u8 {
        let value = self.0;
        self.0 = (value + 1) & 0x0F;
        value
    }

    /// The value the next packet will carry.
    pub fn peek(&self) -> u8 {
        self.0
    }
}

/// What goes into the adaptation field of the first packet of a PES packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FirstPacketFlags {
    /// Program clock reference base (90 kHz, 33 bits); the extension is always zero.
    pub(crate) pcr: Option<u64>,
    /// Sets random_access_indicator.
    pub(crate) random_access: bool,
}

/// Writes the 4-byte packet header (payload always present).
fn header(out: &mut BytesMut, pid: u16, start: bool, adaptation: bool, cc: u8) {
    out.put_u8(SYNC_BYTE);
    out.put_u8(if start { 0x40 } else { 0 } | ((pid >> 8) as u8 & 0x1F));
    out.put_u8(pid as u8);
    let control = if adaptation { 0x30 } else { 0x10 };
    out.put_u8(control | (cc & 0x0F));
}

/// Writes a 6-byte PCR field: 33-bit base, 6 reserved bits, 9-bit extension (zero).
fn put_pcr(out: &mut BytesMut, pcr: u64) {
    let base = pcr & TIMESTAMP_MASK;
    out.put_u32((base >> 1) as u32);
    out.put_u8((((base & 1) as u8) << 7) | 0x7E);
    out.put_u8(0);
}

/// Splits one PES packet (`data` = PES header + payload) into transport packets on `pid`.
///
/// The first packet has payload_unit_start_indicator set and, when `first` asks for it, an
/// adaptation field with the PCR and/or random_access_indicator. The last packet is padded
/// to 188 bytes with adaptation-field stuffing. Writes nothing when `data` is empty.
pub(crate) fn write_pes_packets(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut ContinuityCounter,
    data: &[u8],
    first: FirstPacketFlags,
) {
    let packets = data.len().div_ceil(BODY_LEN - 8).max(1);
    out.reserve(packets.saturating_mul(TS_PACKET_LEN));
    let mut rest = data;
    let mut is_first = true;
    while !rest.is_empty() {
        let (flags, pcr) = if is_first {
            let random = if first.random_access {
                AF_RANDOM_ACCESS
            } else {
                0
            };
            let pcr_flag = if first.pcr.is_some() { AF_PCR } else { 0 };
            (random | pcr_flag, first.pcr)
        } else {
            (0, None)
        };
        // Adaptation field content (after its length byte) that must be present.
        let mut af_len = if flags != 0 {
            1 + if pcr.is_some() { 6 } else { 0 }
        } else {
            0
        };
        let mut has_af = flags != 0;
        let room = BODY_LEN - if has_af { 1 + af_len } else { 0 };
        let take = rest.len().min(room);
        if take < room {
            // Stuff the adaptation field so the packet ends exactly at 188 bytes.
            let af_total = BODY_LEN - take;
            has_af = true;
            af_len = af_total - 1;
        }
        let (chunk, tail) = rest.split_at(take);
        header(out, pid, is_first, has_af, cc.advance());
        if has_af {
            out.put_u8(af_len as u8);
            if af_len > 0 {
                out.put_u8(flags);
                let mut used = 1;
                if let Some(pcr) = pcr {
                    put_pcr(out, pcr);
                    used += 6;
                }
                out.put_bytes(0xFF, af_len - used);
            }
        }
        out.put_slice(chunk);
        rest = tail;
        is_first = false;
    }
}

/// Writes one PSI section (which must fit in one packet, as PAT and PMT here always do) as a
/// single packet: pointer_field 0, the section, then 0xFF stuffing.
pub(crate) fn write_section_packet(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut ContinuityCounter,
    section: &[u8],
) {
    let section = &section[..section.len().min(BODY_LEN - 1)];
    header(out, pid, true, false, cc.advance());
    out.put_u8(0);
    out.put_slice(section);
    out.put_bytes(0xFF, BODY_LEN - 1 - section.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity_counter_wraps() {
        let mut cc = ContinuityCounter::default();
        let seen: Vec<u8> = (0..34).map(|_| cc.advance()).collect();
        let expected: Vec<u8> = (0..34).map(|i| i % 16).collect();
        assert_eq!(seen, expected);
        assert_eq!(cc.peek(), 2);
    }

    #[test]
    fn pes_packets_counters_and_stuffing() {
        let mut cc = ContinuityCounter::default();
        let mut out = BytesMut::new();
        // 15 * 184 + 100 bytes over several PES packets: counters continue and wrap.
        for len in [184 * 15 + 100, 183, 184, 1] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let start = out.len();
            write_pes_packets(&mut out, 0x100, &mut cc, &data, FirstPacketFlags::default());
            let written = &out[start..];
            assert_eq!(written.len() % TS_PACKET_LEN, 0);
            // Reassemble the payload and check it is exactly `data`.
            let mut payload = Vec::new();
            for (i, p) in written.chunks(TS_PACKET_LEN).enumerate() {
                assert_eq!(p[0], SYNC_BYTE);
                assert_eq!(p[1] & 0x40 != 0, i == 0, "PUSI only on the first packet");
                assert_eq!(u16::from_be_bytes([p[1] & 0x1F, p[2]]), 0x100);
                let body = if p[3] & 0x20 != 0 {
                    &p[5 + usize::from(p[4])..]
                } else {
                    &p[4..]
                };
                payload.extend_from_slice(body);
            }
            assert_eq!(payload, data, "len {len}");
        }
        let ccs: Vec<u8> = out.chunks(TS_PACKET_LEN).map(|p| p[3] & 0x0F).collect();
        let expected: Vec<u8> = (0..ccs.len()).map(|i| (i % 16) as u8).collect();
        assert_eq!(ccs, expected);
        // 183 bytes: one packet with a zero-length adaptation field.
        let p = &out[16 * TS_PACKET_LEN..17 * TS_PACKET_LEN];
        assert_eq!((p[3] & 0x30, p[4]), (0x30, 0));
        // 1 byte: flags byte 0 then 181 bytes of 0xFF stuffing.
        let p = &out[18 * TS_PACKET_LEN..];
        assert_eq!((p[3] & 0x30, p[4], p[5]), (0x30, 182, 0));
        assert!(p[6..187].iter().all(|&b| b == 0xFF));
        assert_eq!(p[187], 0);
    }

    #[test]
    fn pcr_and_random_access() {
        let mut cc = ContinuityCounter::default();
        let mut out = BytesMut::new();
        let pcr = 0x1_2345_6789u64;
        let first = FirstPacketFlags {
            pcr: Some(pcr),
            random_access: true,
        };
        write_pes_packets(&mut out, 0x101, &mut cc, &[0xAB; 500], first);
        assert_eq!(out.len(), 3 * TS_PACKET_LEN);
        let p = &out[..TS_PACKET_LEN];
        assert_eq!(&p[..4], &[0x47, 0x41, 0x01, 0x30]);
        assert_eq!((p[4], p[5]), (7, 0x50));
        let base = (u64::from(p[6]) << 25)
            | (u64::from(p[7]) << 17)
            | (u64::from(p[8]) << 9)
            | (u64::from(p[9]) << 1)
            | u64::from(p[10] >> 7);
        assert_eq!(base, pcr);
        assert_eq!((p[10] & 0x7E, p[11]), (0x7E, 0));
        assert!(p[12..].iter().all(|&b| b == 0xAB));
        // Second packet: no adaptation field; third: stuffed.
        assert_eq!(out[TS_PACKET_LEN + 3], 0x11);
        assert_eq!(out[2 * TS_PACKET_LEN + 3], 0x32);
    }
}
