//! What a WHEP offer asks for, checked before str0m sees it so a useless offer gets a 400
//! with a reason: we send H.264 (packetization-mode 1) and Opus, nothing else.

/// Most lines scanned in an offer (bounded work; `max_sdp_bytes` bounds the size).
pub const MAX_SDP_LINES: usize = 4096;

/// The usable media of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OfferMedia {
    /// A video m-line offers H.264 with packetization-mode=1.
    pub(crate) h264: bool,
    /// An audio m-line offers Opus.
    pub(crate) opus: bool,
}

/// Scans an offer; `Err(reason)` when it is not an SDP offer or has nothing we can send.
pub(crate) fn check_offer(sdp: &str) -> Result<OfferMedia, String> {
    if !sdp.starts_with("v=0") {
        return Err("not an SDP document (must start with v=0)".to_owned());
    }
    let mut media = OfferMedia::default();
    let mut kind = "";
    // Payload types of H.264 in the current video section, and those with mode 1.
    let mut h264_pts: Vec<&str> = Vec::new();
    let mut mode1_pts: Vec<&str> = Vec::new();
    let mut any_m = false;
    let finish = |h264: &[&str], mode1: &[&str], media: &mut OfferMedia| {
        if h264.iter().any(|pt| mode1.contains(pt)) {
            media.h264 = true;
        }
    };
    for line in sdp.lines().take(MAX_SDP_LINES) {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            finish(&h264_pts, &mode1_pts, &mut media);
            h264_pts.clear();
            mode1_pts.clear();
            kind = m.split(' ').next().unwrap_or("");
            any_m = true;
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, codec) = map.split_once(' ').unwrap_or((map, ""));
            let codec = codec.to_ascii_lowercase();
            if kind == "video" && codec.starts_with("h264/") {
                h264_pts.push(pt);
            } else if kind == "audio" && codec.starts_with("opus/") {
                media.opus = true;
            }
        } else if let Some(fmtp) = line.strip_prefix("a=fmtp:") {
            let (pt, params) = fmtp.split_once(' ').unwrap_or((fmtp, ""));
            if kind == "video"
                && params
                    .split(';')
                    .any(|p| p.trim().eq_ignore_ascii_case("packetization-mode=1"))
            {
                mode1_pts.push(pt);
            }
        }
    }
    finish(&h264_pts, &mode1_pts, &mut media);
    if !any_m {
        return Err("the offer has no media section".to_owned());
    }
    if !media.h264 && !media.opus {
        return Err(
            "the offer has neither H.264 (packetization-mode=1) video nor Opus audio".to_owned(),
        );
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\na=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:97 H264/90000\r\na=fmtp:97 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:98 H264/90000\r\na=fmtp:98 packetization-mode=0\r\n";

    #[test]
    fn finds_h264_mode_1_and_opus() {
        assert_eq!(
            check_offer(OFFER),
            Ok(OfferMedia {
                h264: true,
                opus: true
            })
        );
    }

    #[test]
    fn refuses_offers_we_cannot_serve() {
        assert!(check_offer("hello").unwrap_err().contains("v=0"));
        assert!(
            check_offer("v=0\r\ns=-\r\n")
                .unwrap_err()
                .contains("no media")
        );
        // Only VP8 and H.264 in packetization-mode 0.
        let vp8 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=rtpmap:96 VP8/90000\r\n\
            a=rtpmap:98 H264/90000\r\na=fmtp:98 packetization-mode=0\r\n";
        assert!(check_offer(vp8).unwrap_err().contains("neither"));
        // Opus named in a video section does not count.
        let odd = "v=0\r\nm=video 9 X 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(check_offer(odd).is_err());
    }
}
