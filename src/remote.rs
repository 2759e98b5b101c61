//! Requests over MQTT that change the config while the daemon runs:
//!
//! - the gateway's profile: `<prefix>/profile/set` with a profile's name (or `default`),
//!   answered, retained, on `<prefix>/profile/state`;
//! - with `mqtt.remote_config = true`, a camera's whole file: `<prefix>/config/<camera>/set`
//!   (or `…/set/<client-id>`, which names the sender; see docs/mqtt.md for the ACL that makes
//!   that name trustworthy), answered on `<prefix>/config/<camera>/result`.
//!
//! The MQTT thread parses them ([`parse`]) and hands them to the pipeline's run loop, which
//! checks and applies them exactly as a reload ([`crate::reload`]) and publishes the answer
//! built here ([`profile_state`], [`config_result`]). This module is pure.

use std::time::SystemTime;

use serde::Serialize;

use crate::config::replace::Problem;
use crate::publish::payload::{Envelope, timestamp};

/// The largest camera file accepted over MQTT. Camera files are a few kilobytes; this bounds
/// what a mistaken or hostile publisher can make the gateway parse and write.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// A request, as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Apply this profile to every camera that defines it.
    Profile { name: String },
    /// Replace this camera's file.
    Config { camera: String, payload: Vec<u8>, sender: Option<String>, retained: bool },
}

/// The request a message on `topic` is, if it is one.
pub fn parse(prefix: &str, topic: &str, payload: &[u8], retained: bool) -> Option<Request> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    if rest == "profile/set" {
        let name = String::from_utf8_lossy(payload).trim().to_string();
        return Some(Request::Profile { name });
    }
    let levels: Vec<&str> = rest.split('/').collect();
    let (camera, sender) = match levels[..] {
        ["config", camera, "set"] => (camera, None),
        ["config", camera, "set", sender] if !sender.is_empty() => (camera, Some(sender.to_string())),
        _ => return None,
    };
    // An empty payload is how a retained file is cleared from the broker: nothing to answer.
    if camera.is_empty() || payload.is_empty() {
        return None;
    }
    Some(Request::Config { camera: camera.to_string(), payload: payload.to_vec(), sender, retained })
}

/// The filters the MQTT thread subscribes to: the profile always, camera files only with
/// `mqtt.remote_config`.
pub fn subscriptions(prefix: &str, remote_config: bool) -> Vec<String> {
    let mut out = vec![format!("{prefix}/profile/set")];
    if remote_config {
        out.push(format!("{prefix}/config/+/set"));
        out.push(format!("{prefix}/config/+/set/+"));
    }
    out
}

/// A camera file's payload as text, or why it is refused before any check.
pub fn config_text(payload: &[u8], retained: bool) -> Result<String, String> {
    if retained {
        return Err("a retained camera file is not applied: it would be applied again at every reconnect, over any later change; publish it without retain, and clear the retained one (an empty retained message)".into());
    }
    if payload.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "the payload is {} bytes, over the {MAX_CONFIG_BYTES}-byte limit for a camera file",
            payload.len()
        ));
    }
    let text = String::from_utf8(payload.to_vec()).map_err(|_| "the payload is not UTF-8 text".to_string())?;
    if text.trim().is_empty() {
        return Err("the payload is empty; send the camera's whole TOML file".into());
    }
    Ok(text)
}

/// What a request did to the cameras.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Changes {
    pub restarted: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    /// Cameras whose new settings could not be applied (their model failed to load): they
    /// run on as they were.
    pub held_back: Vec<String>,
}

/// The body of `profile_state`, in the order it is written.
#[derive(Serialize)]
struct ProfileState<'a> {
    profile: &'a str,
    profiles: &'a [String],
    requested: Option<&'a str>,
    ok: bool,
    problems: &'a [Problem],
    changes: &'a Changes,
    time: String,
}

/// `<prefix>/profile/state`: the profile in force (after the request, or still, when it was
/// refused), every profile there is, and what the last request did or why it was refused.
pub fn profile_state(
    gateway_id: &str,
    active: &str,
    profiles: &[String],
    requested: Option<&str>,
    outcome: &Result<Changes, Vec<Problem>>,
    at: SystemTime,
) -> Vec<u8> {
    let none = Changes::default();
    let (changes, problems): (&Changes, &[Problem]) = match outcome {
        Ok(c) => (c, &[]),
        Err(p) => (&none, p),
    };
    let body = ProfileState {
        profile: active,
        profiles,
        requested,
        ok: outcome.is_ok(),
        problems,
        changes,
        time: timestamp(at),
    };
    Envelope::gateway(gateway_id, "profile_state", body).to_bytes()
}

/// How a camera file sent over MQTT ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigOutcome {
    /// Refused: the file on disk is untouched.
    Refused(Vec<Problem>),
    /// Written; `applied` says whether the reload went through (it doesn't when another file
    /// of the directory has errors).
    Saved { backup: String, applied: bool, changes: Changes, note: Option<String> },
}

/// The body of `config_result`, in the order it is written.
#[derive(Serialize)]
struct ConfigResult<'a> {
    sender: Option<&'a str>,
    ok: bool,
    saved: bool,
    applied: bool,
    backup: Option<&'a str>,
    problems: &'a [Problem],
    note: Option<&'a str>,
    changes: &'a Changes,
    time: String,
}

/// `<prefix>/config/<camera>/result`.
pub fn config_result(
    gateway_id: &str,
    camera: &str,
    sender: Option<&str>,
    outcome: &ConfigOutcome,
    at: SystemTime,
) -> Vec<u8> {
    let none = Changes::default();
    let body = match outcome {
        ConfigOutcome::Refused(problems) => ConfigResult {
            sender,
            ok: false,
            saved: false,
            applied: false,
            backup: None,
            problems,
            note: None,
            changes: &none,
            time: timestamp(at),
        },
        ConfigOutcome::Saved { backup, applied, changes, note } => ConfigResult {
            sender,
            ok: true,
            saved: true,
            applied: *applied,
            backup: Some(backup),
            problems: &[],
            note: note.as_deref(),
            changes,
            time: timestamp(at),
        },
    };
    Envelope::state(gateway_id, camera, "config_result", body).to_bytes()
}

/// A problem that belongs to no line of a file (an unknown profile, a payload refused before
/// any check).
pub fn problem(message: impl Into<String>) -> Problem {
    Problem { file: String::new(), line: None, key: String::new(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn requests_are_parsed_from_their_topics_and_nothing_else_is() {
        let p = "lookout/gw";
        assert_eq!(
            parse(p, "lookout/gw/profile/set", b" night\n", true),
            Some(Request::Profile { name: "night".into() })
        );
        assert_eq!(
            parse(p, "lookout/gw/config/yard/set", b"uri = 1", false),
            Some(Request::Config {
                camera: "yard".into(),
                payload: b"uri = 1".to_vec(),
                sender: None,
                retained: false
            })
        );
        assert_eq!(parse(p, "lookout/gw/config/yard/set", b"", false), None, "clearing a retained file");
        assert!(matches!(
            parse(p, "lookout/gw/config/yard/set/ops-laptop", b"#", false),
            Some(Request::Config { sender: Some(s), .. }) if s == "ops-laptop"
        ));
        for other in [
            "lookout/gw/profile/state",
            "lookout/gw/config/yard/result",
            "lookout/gw/config//set",
            "lookout/gw/config/yard/set/",
            "lookout/gw/yard/detect/set",
            "lookout/other/profile/set",
        ] {
            assert_eq!(parse(p, other, b"x", false), None, "{other}");
        }
        assert_eq!(subscriptions(p, false), ["lookout/gw/profile/set"]);
        assert_eq!(subscriptions(p, true).len(), 3);
    }

    #[test]
    fn a_camera_file_payload_is_bounded_text_sent_live() {
        assert_eq!(config_text(b"uri = \"a\"\n", false).as_deref(), Ok("uri = \"a\"\n"));
        assert!(config_text(b"uri = \"a\"\n", true).unwrap_err().contains("retained"));
        assert!(config_text(&vec![b'#'; MAX_CONFIG_BYTES + 1], false).unwrap_err().contains("65536-byte limit"));
        assert!(config_text(&[0xff, 0xfe], false).unwrap_err().contains("UTF-8"));
        assert!(config_text(b"  \n", false).unwrap_err().contains("empty"));
    }

    #[test]
    fn answers_say_what_happened() {
        let at = SystemTime::UNIX_EPOCH;
        let names = vec!["default".to_string(), "night".to_string()];
        let ok: Value = serde_json::from_slice(&profile_state(
            "gw",
            "night",
            &names,
            Some("night"),
            &Ok(Changes { restarted: vec!["yard".into()], ..Changes::default() }),
            at,
        ))
        .unwrap();
        assert_eq!((ok["profile"].as_str(), ok["ok"].as_bool()), (Some("night"), Some(true)));
        assert_eq!(ok["changes"]["restarted"][0], "yard");
        let refused: Value = serde_json::from_slice(&profile_state(
            "gw",
            "default",
            &names,
            Some("nope"),
            &Err(vec![problem("no camera defines a profile `nope`")]),
            at,
        ))
        .unwrap();
        assert_eq!((refused["profile"].as_str(), refused["ok"].as_bool()), (Some("default"), Some(false)));
        assert_eq!(refused["problems"][0]["message"], "no camera defines a profile `nope`");
        let saved: Value = serde_json::from_slice(&config_result(
            "gw",
            "yard",
            Some("ops"),
            &ConfigOutcome::Saved {
                backup: "yard.toml.bak".into(),
                applied: true,
                changes: Changes::default(),
                note: None,
            },
            at,
        ))
        .unwrap();
        assert_eq!(
            (saved["ok"].as_bool(), saved["backup"].as_str(), saved["sender"].as_str()),
            (Some(true), Some("yard.toml.bak"), Some("ops"))
        );
    }
}
