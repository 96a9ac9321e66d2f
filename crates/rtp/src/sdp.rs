//! What a WHIP or WHEP offer asks for, checked before str0m sees it so a useless offer gets
//! a 400 with a reason: video in H.264 (packetization-mode 1), H.265, AV1, VP9 or VP8, and
//! Opus audio. WHIP picks one video codec by [`VIDEO_PREFERENCE`]; WHEP needs the stream's.

use media::Codec;

/// Most lines scanned in an offer (bounded work; `max_sdp_bytes` bounds the size).
pub const MAX_SDP_LINES: usize = 4096;

/// The video codecs WHIP accepts, best first: H.264 plays everywhere (every protocol and
/// HLS), H.265 next (HLS carries it too), then AV1, VP9 and VP8 (RTMP, HTTP-FLV and WHEP).
pub const VIDEO_PREFERENCE: [Codec; 5] =
    [Codec::H264, Codec::H265, Codec::Av1, Codec::Vp9, Codec::Vp8];

/// What the 400 of an offer without usable media says we take.
pub const ACCEPTED: &str =
    "H.264 (packetization-mode=1), H.265, AV1, VP9 or VP8 video, or Opus audio";

/// The usable media of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OfferMedia {
    /// A video m-line offers H.264 with packetization-mode=1.
    pub h264: bool,
    /// A video m-line offers H.265.
    pub h265: bool,
    /// A video m-line offers AV1.
    pub av1: bool,
    /// A video m-line offers VP9.
    pub vp9: bool,
    /// A video m-line offers VP8.
    pub vp8: bool,
    /// The offer has a video m-line (whatever its codecs).
    pub has_video: bool,
    /// An audio m-line offers Opus.
    pub opus: bool,
}

impl OfferMedia {
    /// Whether the offer has `codec` as usable video.
    pub fn has(&self, codec: Codec) -> bool {
        match codec {
            Codec::H264 => self.h264,
            Codec::H265 => self.h265,
            Codec::Av1 => self.av1,
            Codec::Vp9 => self.vp9,
            Codec::Vp8 => self.vp8,
            _ => false,
        }
    }

    /// The video codec WHIP takes from this offer: the first of [`VIDEO_PREFERENCE`] it has.
    pub fn pick_video(&self) -> Option<Codec> {
        VIDEO_PREFERENCE.into_iter().find(|c| self.has(*c))
    }

    fn any_video(&self) -> bool {
        self.pick_video().is_some()
    }
}

/// A codec's name as players and people know it (for error messages and logs):
/// [`Codec::name`], kept here for the WHEP/WHIP handlers that call it by this name.
pub fn codec_name(codec: Codec) -> String {
    codec.name().into_owned()
}

/// Scans an offer; `Err(reason)` when it is not an SDP offer or has nothing we can send.
pub fn check_offer(sdp: &str) -> Result<OfferMedia, String> {
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
            media.has_video |= kind == "video";
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let (pt, codec) = map.split_once(' ').unwrap_or((map, ""));
            let codec = codec.to_ascii_lowercase();
            if kind == "video" && codec.starts_with("h264/") {
                h264_pts.push(pt);
            } else if kind == "video" {
                media.h265 |= codec.starts_with("h265/");
                media.av1 |= codec.starts_with("av1/");
                media.vp9 |= codec.starts_with("vp9/");
                media.vp8 |= codec.starts_with("vp8/");
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
    if !media.any_video() && !media.opus {
        return Err(format!("the offer has nothing we accept: {ACCEPTED}"));
    }
    Ok(media)
}

/// The offer's `a=ice-ufrag` (session or first media level).
pub fn remote_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .unwrap_or_default()
        .to_owned()
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
                vp8: true,
                has_video: true,
                opus: true,
                ..OfferMedia::default()
            })
        );
        assert_eq!(check_offer(OFFER).unwrap().pick_video(), Some(Codec::H264));
    }

    #[test]
    fn picks_video_by_preference() {
        let chromium = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 45 98 102\r\n\
            a=rtpmap:96 VP8/90000\r\na=rtpmap:45 AV1/90000\r\na=rtpmap:98 VP9/90000\r\n\
            a=fmtp:98 profile-id=0\r\na=rtpmap:102 H264/90000\r\n\
            a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n";
        let m = check_offer(chromium).unwrap();
        assert!(m.vp8 && m.av1 && m.vp9 && !m.h264 && !m.h265 && !m.opus);
        assert_eq!(
            m.pick_video(),
            Some(Codec::Av1),
            "H.264 mode 0 does not count"
        );
        let hevc =
            "v=0\r\nm=video 9 X 49 96\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:49 H265/90000\r\n";
        assert_eq!(check_offer(hevc).unwrap().pick_video(), Some(Codec::H265));
        let vp8 = "v=0\r\nm=video 9 X 96\r\na=rtpmap:96 vp8/90000\r\n";
        let m = check_offer(vp8).unwrap();
        assert_eq!(m.pick_video(), Some(Codec::Vp8));
        assert!(m.has(Codec::Vp8) && !m.has(Codec::H264) && !m.has(Codec::Aac));
        // Audio only: usable, no video.
        let audio = "v=0\r\nm=audio 9 X 111\r\na=rtpmap:111 opus/48000/2\r\n";
        let m = check_offer(audio).unwrap();
        assert_eq!((m.pick_video(), m.has_video), (None, false));
        assert_eq!(codec_name(Codec::Vp9), "VP9");
        assert_eq!(codec_name(Codec::Aac), "AAC");
    }

    #[test]
    fn refuses_offers_we_cannot_serve() {
        assert!(check_offer("hello").unwrap_err().contains("v=0"));
        assert!(
            check_offer("v=0\r\ns=-\r\n")
                .unwrap_err()
                .contains("no media")
        );
        // Only Theora and H.264 in packetization-mode 0, and PCMU audio.
        let old = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 98\r\na=rtpmap:96 theora/90000\r\n\
            a=rtpmap:98 H264/90000\r\na=fmtp:98 packetization-mode=0\r\n\
            m=audio 9 X 0\r\na=rtpmap:0 PCMU/8000\r\n";
        let why = check_offer(old).unwrap_err();
        assert!(why.contains("H.264") && why.contains("VP8"), "{why}");
        // Opus or VP8 named in the wrong section does not count.
        let odd = "v=0\r\nm=audio 9 X 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(check_offer(odd).is_err());
        let odd = "v=0\r\nm=video 9 X 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(check_offer(odd).is_err());
    }
}
