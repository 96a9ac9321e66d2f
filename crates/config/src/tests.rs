//! The configuration's tests: defaults, the sample file, validation, environment overrides.
use super::*;
use std::collections::BTreeMap;

const SAMPLE: &str = include_str!("../../../sluice.toml");

#[test]
fn deprecated_keys_still_load_from_files_and_the_environment() {
    let cfg = Config::from_toml("[limits]\nmax_rtmp_connections = 10\n").unwrap();
    assert_eq!(cfg.limits.max_rtmp_connections, Some(10));
    let vars = [(
        "SLUICE_LIMITS_MAX_HTTP_VIEWERS".to_owned(),
        "30000".to_owned(),
    )];
    let cfg = Config::load(None, vars).unwrap();
    assert_eq!(cfg.limits.max_http_viewers, Some(30000));
    assert_eq!(cfg.limits.deprecated_keys().len(), 1);
    assert!(!Config::default().to_toml().contains("max_http_viewers"));
}

#[test]
fn rtmp_partial_budget_fits_one_largest_message() {
    // The server-wide budget of incomplete RTMP messages must fit one largest message.
    let err = Config::from_toml("[limits]\nmax_rtmp_partial_bytes = 8388607\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.max_rtmp_partial_bytes"), "{err}");
    assert!(Config::from_toml("[limits]\nmax_rtmp_partial_bytes = 8388608\n").is_ok());
}

#[test]
fn sample_file_equals_defaults_key_for_key() {
    let sample: toml::Table = toml::from_str(SAMPLE).expect("sample parses");
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialise");
    assert_eq!(
        sample, defaults,
        "sluice.toml must list every default, unchanged"
    );
    assert_eq!(Config::from_toml(SAMPLE).expect("valid"), Config::default());
}

#[test]
fn unknown_keys_are_named() {
    let err = Config::from_toml("[rtmp]\nchunk_sise = 10\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("chunk_sise"), "{err}");
    let err = Config::from_toml("[rtpm]\n").unwrap_err().to_string();
    assert!(err.contains("rtpm"), "{err}");
}

#[test]
fn env_overrides_file() {
    let cfg = Config::load(
        Some("[rtmp]\nchunk_size = 8192\n"),
        [
            ("SLUICE_RTMP_CHUNK_SIZE".to_owned(), "60000".to_owned()),
            ("SLUICE_HTTP_LISTEN".to_owned(), "127.0.0.1:9000".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ],
    )
    .expect("valid");
    assert_eq!(cfg.rtmp.chunk_size, 60000);
    assert_eq!(cfg.http.listen, "127.0.0.1:9000".parse().unwrap());
    let err = Config::load(None, [("SLUICE_RTMP_NOPE".to_owned(), "1".to_owned())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("rtmp.nope"), "{err}");
}

#[test]
fn rooms_keys_come_from_the_environment_as_an_inline_table() {
    let cfg = Config::load(
        Some("[rooms.keys]\nfilekey = \"from-file\"\n"),
        [
            (
                "SLUICE_ROOMS_KEYS".to_owned(),
                r#"{ devkey = "secret", APIabc = "Other" }"#.to_owned(),
            ),
            ("SLUICE_ROOMS_MAX_PARTICIPANTS".to_owned(), "50".to_owned()),
        ],
    )
    .expect("valid");
    // The environment replaces the file's table; key names keep their case.
    assert_eq!(
        cfg.rooms.keys,
        BTreeMap::from([
            ("APIabc".to_owned(), "Other".to_owned()),
            ("devkey".to_owned(), "secret".to_owned()),
        ])
    );
    assert_eq!(cfg.rooms.max_participants, 50);
    // A bare string is not a table of keys: refused, naming the key.
    let err = Config::load(
        None,
        [("SLUICE_ROOMS_KEYS".to_owned(), "secret".to_owned())],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("keys"), "{err}");
    let err = Config::load(
        None,
        [(
            "SLUICE_ROOMS_KEYS".to_owned(),
            r#"{ devkey = "" }"#.to_owned(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("rooms.keys"), "{err}");
}

#[test]
fn invalid_values_name_the_key() {
    let err = Config::from_toml("[rtmp]\nchunk_size = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("rtmp.chunk_size"), "{err}");
}

#[test]
fn vod_section_parses_and_validates() {
    let cfg = Config::load(
        Some("[vod]\nupload_from = \"any\"\n"),
        [("SLUICE_VOD_MAX_UPLOAD_BYTES".to_owned(), "4096".to_owned())],
    )
    .expect("valid");
    assert_eq!(cfg.vod.upload_from, UploadFrom::Any);
    assert_eq!(cfg.vod.max_upload_bytes, 4096);
    for (doc, key) in [
        ("[vod]\ndir = \"\"\n", "vod.dir"),
        ("[vod]\nmax_upload_bytes = 0\n", "vod.max_upload_bytes"),
        ("[vod]\ncache_max_age_s = 99999999\n", "vod.cache_max_age_s"),
        ("[vod]\nupload_from = \"everyone\"\n", "everyone"),
    ] {
        let err = Config::from_toml(doc).unwrap_err().to_string();
        assert!(err.contains(key), "{doc}: {err}");
    }
}

#[test]
fn tls_section_parses_and_validates() {
    assert!(!Config::default().tls.enabled());
    let cfg = Config::load(
        Some("[tls]\ncert_file = \"/etc/c.pem\"\nkey_file = \"/etc/k.pem\"\n"),
        [("SLUICE_TLS_REDIRECT_HTTP".to_owned(), "true".to_owned())],
    )
    .expect("valid");
    assert!(cfg.tls.enabled() && cfg.tls.redirect_http);
    assert_eq!(cfg.tls.rtmps_listen.port(), 1936);
    for (doc, key) in [
        ("[tls]\ncert_file = \"c.pem\"\n", "tls.key_file"),
        ("[tls]\nkey_file = \"k.pem\"\n", "tls.key_file"),
        ("[tls]\nredirect_http = true\n", "tls.redirect_http"),
        (
            "[tls]\ncert_file = \"c\"\nkey_file = \"k\"\nreload_check_ms = 5\n",
            "tls.reload_check_ms",
        ),
    ] {
        let err = Config::from_toml(doc).unwrap_err().to_string();
        assert!(err.contains(key), "{doc}: {err}");
    }
}

#[test]
fn print_config_round_trips() {
    let text = Config::default().to_toml();
    assert_eq!(Config::from_toml(&text).expect("valid"), Config::default());
}
