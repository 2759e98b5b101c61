//! Home Assistant MQTT discovery: retained config messages under `homeassistant/` that make
//! each camera's availability, zone occupancy per label, line counts and snapshot appear in
//! Home Assistant with no YAML. Pure: the cameras' object settings in, (topic, payload) pairs out. With the objects stage,
//! because the entities are its outputs: occupancy per zone and label, line counts, snapshots.
//!
//! ```toml
//! [mqtt]
//! discovery = true                  # default false
//! discovery_prefix = "homeassistant"
//! ```

use serde_json::{Value, json};

use crate::objects::settings::ObjectsSpec;
use crate::toggles::Kind;

/// What discovery needs of one camera.
#[derive(Debug, Clone)]
pub struct Camera<'a> {
    pub name: &'a str,
    /// The camera's `detect.labels` as class indices; `None`: all.
    pub labels: Option<&'a [usize]>,
    pub objects: &'a ObjectsSpec,
    /// The camera's switches (`CameraSpec::switches`).
    pub switches: Vec<(crate::toggles::Kind, String)>,
}

/// The gateway's profile select: `profiles` (with `default`) as options, set through
/// `<prefix>/profile/set`, shown from `<prefix>/profile/state`. On the gateway's own device,
/// which the cameras' devices name as `via_device`.
pub fn profile_select(gw: &str, profiles: &[String], topic_prefix: &str, discovery_prefix: &str) -> (String, Vec<u8>) {
    let node = id(&format!("lookout_{gw}"));
    let config = json!({
        "name": "Profile",
        "unique_id": format!("{node}_profile"),
        "object_id": format!("{node}_profile"),
        "command_topic": format!("{topic_prefix}/profile/set"),
        "state_topic": format!("{topic_prefix}/profile/state"),
        "value_template": "{{ value_json.profile }}",
        "json_attributes_topic": format!("{topic_prefix}/profile/state"),
        "options": profiles,
        "icon": "mdi:tune-variant",
        "availability": [{ "topic": format!("{topic_prefix}/status"), "payload_available": "online", "payload_not_available": "offline" }],
        "device": {
            "identifiers": [node],
            "name": format!("Lookout {gw}"),
            "manufacturer": "Lookout",
            "model": "video analytics gateway",
            "sw_version": env!("CARGO_PKG_VERSION"),
        },
    });
    (format!("{discovery_prefix}/select/{node}/profile/config"), serde_json::to_vec(&config).unwrap_or_default())
}

/// "motion" → "Motion": Home Assistant shows entity names as written.
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Labels a zone or line reports when neither it nor the camera names any: the ones
/// people ask about. Listing all 80 COCO labels would bury the useful entities.
const DEFAULT_LABELS: [&str; 2] = ["person", "car"];

/// Names usable in Home Assistant object ids: `traffic light` → `traffic_light`.
fn id(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

fn labels_for(own: &Option<Vec<String>>, cam: &Camera) -> Vec<String> {
    if let Some(l) = own {
        return l.clone();
    }
    match cam.labels {
        Some(classes) => classes.iter().map(|&c| cam.objects.labels.name(c).to_string()).collect(),
        None => DEFAULT_LABELS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every discovery message for the `cameras` of gateway `gw`, published under `discovery_prefix` with MQTT topics
/// under `topic_prefix`.
pub fn messages(gw: &str, cameras: &[Camera], topic_prefix: &str, discovery_prefix: &str) -> Vec<(String, Vec<u8>)> {
    let node = id(&format!("lookout_{gw}"));
    let availability = json!([{ "topic": format!("{topic_prefix}/status"), "payload_available": "online", "payload_not_available": "offline" }]);
    let mut out = Vec::new();
    let mut push = |component: &str, object: String, mut config: Value, cam: &Camera| {
        config["unique_id"] = Value::from(format!("{node}_{object}"));
        config["object_id"] = Value::from(format!("{node}_{object}"));
        config["availability"] = availability.clone();
        config["device"] = json!({
            "identifiers": [format!("{node}_{}", id(cam.name))],
            "name": format!("Lookout {gw} {}", cam.name),
            "manufacturer": "Lookout",
            "model": "video analytics",
            "sw_version": env!("CARGO_PKG_VERSION"),
            "via_device": node,
        });
        let topic = format!("{discovery_prefix}/{component}/{node}/{object}/config");
        out.push((topic, serde_json::to_vec(&config).unwrap_or_default()));
    };
    for cam in cameras {
        let c = id(cam.name);
        push(
            "binary_sensor",
            format!("{c}_streaming"),
            json!({
                "name": "Streaming",
                "device_class": "connectivity",
                "state_topic": format!("{topic_prefix}/{}/status", cam.name),
                "value_template": "{{ 'ON' if value_json.state == 'streaming' else 'OFF' }}",
                "json_attributes_topic": format!("{topic_prefix}/{}/status", cam.name),
            }),
            cam,
        );
        // A switch per zone, line and mask, and for motion gating and snapshots (`toggles`).
        let switches = cam.switches.iter().map(|(kind, name)| {
            let icon = match kind {
                Kind::Zone => "mdi:vector-square",
                Kind::Line => "mdi:transit-transfer",
                Kind::Mask => "mdi:image-filter-center-focus-weak",
                Kind::Motion => "mdi:motion-sensor",
                Kind::Snapshots => "mdi:camera",
            };
            (*kind, name.as_str(), icon)
        });
        for (kind, name, icon) in switches {
            let key = (cam.name.to_string(), kind, name.to_string());
            let base = crate::toggles::topic_base(topic_prefix, &key);
            let (object, shown) = match kind {
                _ if kind.per_camera() => (format!("{c}_{}", kind.as_str()), capitalised(kind.as_str())),
                Kind::Mask => (format!("{c}_mask_{}", id(name)), format!("Mask {name}")),
                _ => (format!("{c}_{}_{}", kind.as_str(), id(name)), format!("{name} {}", kind.as_str())),
            };
            push(
                "switch",
                object,
                json!({
                    "name": shown,
                    "command_topic": format!("{base}/set"),
                    "state_topic": format!("{base}/state"),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "icon": icon,
                }),
                cam,
            );
        }
        for z in &cam.objects.rules.zones {
            let mut ls = labels_for(&z.labels, cam);
            ls.push("all".into());
            for label in ls {
                push(
                    "sensor",
                    format!("{c}_{}_{}_count", id(&z.name), id(&label)),
                    json!({
                        "name": format!("{} {} count", z.name, label),
                        "state_topic": format!("{topic_prefix}/{}/{}/{}", cam.name, z.name, label.replace(' ', "_")),
                        "value_template": "{{ value_json.count }}",
                        "state_class": "measurement",
                        "icon": "mdi:counter",
                    }),
                    cam,
                );
            }
        }
        for l in &cam.objects.rules.lines {
            for label in labels_for(&l.labels, cam) {
                for dir in ["left_to_right", "right_to_left"] {
                    push(
                        "sensor",
                        format!("{c}_{}_{}_{dir}", id(&l.name), id(&label)),
                        json!({
                            "name": format!("{} {} {}", l.name, label, dir.replace('_', " ")),
                            "state_topic": format!("{topic_prefix}/{}/{}/{}", cam.name, l.name, label.replace(' ', "_")),
                            "value_template": format!("{{{{ value_json.{dir} }}}}"),
                            "state_class": "total_increasing",
                            "icon": "mdi:transit-transfer",
                        }),
                        cam,
                    );
                }
            }
        }
        if cam.objects.snapshots.enabled {
            push(
                "camera",
                format!("{c}_snapshot"),
                json!({ "name": "Snapshot", "topic": format!("{topic_prefix}/{}/snapshot", cam.name) }),
                cam,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_home_assistant_safe() {
        assert_eq!(id("Front door.cam-1"), "front_door_cam_1");
    }
}
