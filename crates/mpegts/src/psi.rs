//! Program specific information: the PAT and PMT sections (ISO/IEC 13818-1 2.4.4).

use crate::crc::crc32_mpeg2;

/// transport_stream_id written in the PAT.
pub const TRANSPORT_STREAM_ID: u16 = 1;
/// The one program's program_number.
pub const PROGRAM_NUMBER: u16 = 1;
/// PCR_PID meaning "no PCR" (used when the program has no streams yet).
pub const NO_PCR_PID: u16 = 0x1FFF;

/// An elementary stream entry of the PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtStream {
    /// stream_type (0x1B H.264, 0x24 H.265, 0x0F AAC ADTS).
    pub stream_type: u8,
    /// elementary_PID.
    pub pid: u16,
}

/// Writes the long-form section header up to and including last_section_number.
/// `body_len` is the length of everything after last_section_number, excluding the CRC.
fn section_header(out: &mut Vec<u8>, table_id: u8, id: u16, version: u8, body_len: usize) {
    // section_length counts the 5 bytes after it, the body and the 4-byte CRC.
    let section_length = (5 + body_len + 4) as u16;
    out.push(table_id);
    // section_syntax_indicator 1, '0', reserved '11', 12-bit section_length.
    out.push(0xB0 | ((section_length >> 8) as u8 & 0x0F));
    out.push(section_length as u8);
    out.extend_from_slice(&id.to_be_bytes());
    // reserved '11', version_number (5 bits), current_next_indicator 1.
    out.push(0xC0 | ((version & 0x1F) << 1) | 1);
    out.push(0); // section_number
    out.push(0); // last_section_number
}

fn push_crc(out: &mut Vec<u8>) {
    let crc = crc32_mpeg2(out);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// The program association section: one program ([`PROGRAM_NUMBER`]) whose PMT is on `pmt_pid`.
pub fn pat_section(pmt_pid: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    section_header(&mut out, 0x00, TRANSPORT_STREAM_ID, 0, 4);
    out.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
    out.extend_from_slice(&(0xE000 | (pmt_pid & 0x1FFF)).to_be_bytes());
    push_crc(&mut out);
    out
}

/// The program map section for [`PROGRAM_NUMBER`]: `pcr_pid`, no program descriptors, and
/// one entry without descriptors per stream.
pub fn pmt_section(version: u8, pcr_pid: u16, streams: &[PmtStream]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 5 * streams.len());
    section_header(
        &mut out,
        0x02,
        PROGRAM_NUMBER,
        version,
        4 + 5 * streams.len(),
    );
    out.extend_from_slice(&(0xE000 | (pcr_pid & 0x1FFF)).to_be_bytes());
    out.extend_from_slice(&[0xF0, 0x00]); // reserved '1111', program_info_length 0
    for s in streams {
        out.push(s.stream_type);
        out.extend_from_slice(&(0xE000 | (s.pid & 0x1FFF)).to_be_bytes());
        out.extend_from_slice(&[0xF0, 0x00]); // reserved '1111', ES_info_length 0
    }
    push_crc(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_bytes() {
        // table_id 0, syntax 1 + section_length 13, tsid 1, version 0 current, section 0/0,
        // program 1 -> PID 0x1000, CRC.
        assert_eq!(
            pat_section(0x1000),
            [
                0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
                0x04, 0xB2
            ]
        );
    }

    #[test]
    fn pmt_bytes() {
        let streams = [
            PmtStream {
                stream_type: 0x1B,
                pid: 0x100,
            },
            PmtStream {
                stream_type: 0x0F,
                pid: 0x101,
            },
        ];
        // section_length 23 = 5 + PCR_PID 2 + program_info_length 2 + 2 * 5 + CRC 4.
        assert_eq!(
            pmt_section(0, 0x100, &streams),
            [
                0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1,
                0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00, 0x2F, 0x44, 0xB9, 0x9B
            ]
        );
        // An empty program: PCR_PID 0x1FFF, section_length 13; version 3 sets bits 5..1.
        let empty = pmt_section(3, NO_PCR_PID, &[]);
        assert_eq!(
            &empty[..12],
            &[
                0x02, 0xB0, 0x0D, 0x00, 0x01, 0xC7, 0x00, 0x00, 0xFF, 0xFF, 0xF0, 0x00
            ]
        );
        assert_eq!(crc32_mpeg2(&empty), 0, "CRC residue");
    }
}
