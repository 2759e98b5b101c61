//! Motion gating, as in Frigate: a cheap frame-difference detector on a small grey frame
//! decides whether a frame is worth running the detector on. Pure: pixels and times in,
//! decisions out.
//!
//! ```toml
//! # pipelines/yard.toml (or lookout.toml, as the default for every camera)
//! [motion]
//! enabled = true                 # default false: every frame the rate gate admits is detected
//! threshold = 25                 # grey-level change (1-254) that counts a pixel as changed
//! min_area = 0.002               # fraction (0-1] of the small frame's pixels that must change
//! max_idle_detect_seconds = 10   # detect at least this often, motion or not
//! frame_height = 100             # the small frame's height in pixels
//! ```
//!
//! A frame the rate gate admitted is shrunk to `frame_height` rows of grey (a box filter, which
//! also blurs away sensor noise) and compared with a running-average background. It is detected
//! on when:
//! - enough pixels differ from the background (motion), or
//! - the camera's objects stage is tracking something (tentative, confirmed or lost tracks):
//!   a tracked object must keep getting frames, or it would be lost and end, and re-appear as
//!   a new object at the next detection; and a lost track only ends (`end` event) on a
//!   detected frame, so `end` events stay on time; or
//! - `max_idle_detect_seconds` have passed since the last detected frame: something that
//!   arrived too slowly to count as motion (or was still when the daemon started) is found
//!   within that time.
//!
//! Otherwise the frame is skipped, counted as `skipped_by_motion`. So gating saves inference
//! on scenes that are empty and still. An object that stays tracked (a parked car that the
//! filters keep) keeps detection running; use `detect.labels`, `filters` or `masks` to leave
//! such objects out if the camera should idle.

/// Defaults, as documented in docs/configuration.md.
pub const DEFAULT_MOTION_THRESHOLD: u8 = 25;
pub const DEFAULT_MOTION_MIN_AREA: f32 = 0.002;
pub const DEFAULT_MAX_IDLE_DETECT_SECONDS: f64 = 10.0;
pub const DEFAULT_MOTION_FRAME_HEIGHT: u32 = 100;
/// How fast the background follows the scene, per compared frame. At a detect rate of 5 fps,
/// 0.1 lets a change settle into the background in a few seconds (a light switched on stops
/// being motion), while anything moving differs from it frame after frame.
pub const BACKGROUND_ALPHA: f32 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionConfig {
    pub enabled: bool,
    pub threshold: u8,
    pub min_area: f32,
    pub max_idle_detect_seconds: f64,
    pub frame_height: u32,
}

impl Default for MotionConfig {
    fn default() -> MotionConfig {
        MotionConfig {
            enabled: false,
            threshold: DEFAULT_MOTION_THRESHOLD,
            min_area: DEFAULT_MOTION_MIN_AREA,
            max_idle_detect_seconds: DEFAULT_MAX_IDLE_DETECT_SECONDS,
            frame_height: DEFAULT_MOTION_FRAME_HEIGHT,
        }
    }
}

/// A small grey frame, rows packed.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayFrame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Shrink packed RGB (`stride` bytes a row) to `out_height` rows of grey, keeping the aspect
/// ratio, by averaging each output pixel's box of source pixels. A frame already smaller is
/// only converted. `None` if the buffer is too small for the stated size.
pub fn downscale_gray(rgb: &[u8], width: usize, height: usize, stride: usize, out_height: usize) -> Option<GrayFrame> {
    if width == 0 || height == 0 || stride < width * 3 || rgb.len() < stride * (height - 1) + width * 3 {
        return None;
    }
    let oh = out_height.clamp(1, height);
    let ow = ((width * oh) as f64 / height as f64).round().clamp(1.0, width as f64) as usize;
    let mut data = Vec::with_capacity(ow * oh);
    for oy in 0..oh {
        let (y0, y1) = (oy * height / oh, ((oy + 1) * height / oh).max(oy * height / oh + 1));
        for ox in 0..ow {
            let (x0, x1) = (ox * width / ow, ((ox + 1) * width / ow).max(ox * width / ow + 1));
            let mut sum = 0u32;
            for y in y0..y1 {
                let row = &rgb[y * stride..];
                for x in x0..x1 {
                    let p = &row[x * 3..x * 3 + 3];
                    // BT.601 luma in integers: (77 R + 150 G + 29 B) / 256.
                    sum += (77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32) >> 8;
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            data.push((sum / n.max(1)) as u8);
        }
    }
    Some(GrayFrame { width: ow, height: oh, data })
}

/// Frame difference against a running-average background.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    threshold: f32,
    background: Vec<f32>,
    size: (usize, usize),
}

impl MotionDetector {
    pub fn new(threshold: u8) -> MotionDetector {
        MotionDetector { threshold: threshold as f32, background: Vec::new(), size: (0, 0) }
    }

    /// The fraction of pixels (0..1) that differ from the background by more than the
    /// threshold; then the frame is blended into the background. The first frame (or the
    /// first after the size changes) becomes the background and counts as all motion.
    pub fn update(&mut self, frame: &GrayFrame) -> f32 {
        if self.size != (frame.width, frame.height) || self.background.len() != frame.data.len() {
            self.size = (frame.width, frame.height);
            self.background = frame.data.iter().map(|&v| v as f32).collect();
            return 1.0;
        }
        let mut changed = 0usize;
        for (bg, &v) in self.background.iter_mut().zip(&frame.data) {
            let v = v as f32;
            if (v - *bg).abs() > self.threshold {
                changed += 1;
            }
            *bg += (v - *bg) * BACKGROUND_ALPHA;
        }
        changed as f32 / frame.data.len().max(1) as f32
    }
}

/// Why a frame goes to the detector, or that it doesn't.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Enough of the frame changed (the first frame, with no background yet, counts as all changed).
    Motion,
    /// Objects are being tracked: they need every frame.
    Tracking,
    /// Nothing detected for `max_idle_detect_seconds`: look anyway.
    Idle,
    /// Still, nothing tracked, and detected recently: skip.
    Skip,
}

impl Decision {
    pub fn detect(self) -> bool {
        self != Decision::Skip
    }
}

/// One camera's gate: the detector plus the idle timer.
#[derive(Debug, Clone)]
pub struct MotionGate {
    config: MotionConfig,
    detector: MotionDetector,
    /// Stream seconds of the last frame let through.
    last_detect: Option<f64>,
}

impl MotionGate {
    pub fn new(config: MotionConfig) -> MotionGate {
        MotionGate { detector: MotionDetector::new(config.threshold), config, last_detect: None }
    }

    /// Decide for a frame at stream time `t` seconds. `tracking`: the objects stage has live
    /// tracks. Time that goes backwards (a reconnect, a loop) restarts the idle timer.
    pub fn decide(&mut self, t: f64, frame: &GrayFrame, tracking: bool) -> Decision {
        // Always update, so the background stays current while objects are tracked.
        let changed = self.detector.update(frame);
        let idle = match self.last_detect {
            None => true,
            Some(last) => t < last || t - last >= self.config.max_idle_detect_seconds,
        };
        let d = if changed >= self.config.min_area {
            Decision::Motion
        } else if tracking {
            Decision::Tracking
        } else if idle {
            Decision::Idle
        } else {
            Decision::Skip
        };
        if d.detect() {
            self.last_detect = Some(t);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packed RGB frame of one grey level, with an optional bright square.
    fn frame(w: usize, h: usize, level: u8, square: Option<(usize, usize, usize)>) -> Vec<u8> {
        let mut v = vec![level; w * h * 3];
        if let Some((x0, y0, side)) = square {
            for y in y0..(y0 + side).min(h) {
                for x in x0..(x0 + side).min(w) {
                    v[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[250, 250, 250]);
                }
            }
        }
        v
    }

    fn gate(max_idle: f64) -> MotionGate {
        MotionGate::new(MotionConfig { enabled: true, max_idle_detect_seconds: max_idle, ..MotionConfig::default() })
    }

    #[test]
    fn downscale_keeps_aspect_and_averages() {
        let rgb = frame(400, 200, 100, None);
        let g = downscale_gray(&rgb, 400, 200, 1200, 100).unwrap();
        assert_eq!((g.width, g.height), (200, 100));
        assert!(g.data.iter().all(|&v| v == 99 || v == 100), "grey of (100,100,100)");
        // Padded rows (stride beyond width * 3) are skipped, and a short buffer is refused.
        let mut padded = vec![0u8; 8 * 4];
        for y in 0..4 {
            padded[y * 8..y * 8 + 6].copy_from_slice(&[200, 200, 200, 200, 200, 200]);
        }
        let g = downscale_gray(&padded, 2, 4, 8, 2).unwrap();
        assert_eq!((g.width, g.height), (1, 2));
        assert!(g.data.iter().all(|&v| v >= 198), "{:?}", g.data);
        assert_eq!(downscale_gray(&rgb[..100], 400, 200, 1200, 100), None);
    }

    #[test]
    fn still_frames_are_not_motion() {
        let mut g = gate(10.0);
        let still = downscale_gray(&frame(320, 240, 90, None), 320, 240, 960, 100).unwrap();
        assert!(g.decide(0.0, &still, false).detect(), "the first frame is looked at");
        for i in 1..49 {
            assert_eq!(g.decide(i as f64 * 0.2, &still, false), Decision::Skip, "frame {i}");
        }
        // 10 s after the last detection: an idle look.
        assert_eq!(g.decide(10.0, &still, false), Decision::Idle);
        assert_eq!(g.decide(10.2, &still, false), Decision::Skip);
    }

    #[test]
    fn a_moving_blob_is_motion() {
        let mut g = gate(10.0);
        let bg = downscale_gray(&frame(320, 240, 60, None), 320, 240, 960, 100).unwrap();
        g.decide(0.0, &bg, false);
        g.decide(0.2, &bg, false);
        for (i, x) in [20usize, 60, 100, 140].into_iter().enumerate() {
            // A 40 px square is about 2 % of the frame, ten times min_area.
            let moved = downscale_gray(&frame(320, 240, 60, Some((x, 100, 40))), 320, 240, 960, 100).unwrap();
            assert_eq!(g.decide(0.4 + i as f64 * 0.2, &moved, false), Decision::Motion, "step {i}");
        }
    }

    #[test]
    fn noise_below_the_threshold_is_not_motion() {
        let mut g = gate(10.0);
        let (w, h) = (320, 240);
        let base = downscale_gray(&frame(w, h, 120, None), w, h, w * 3, 100).unwrap();
        g.decide(0.0, &base, false);
        // Deterministic pixel noise of up to ±20 levels: under the threshold of 25 even before
        // the box filter averages it down.
        let mut seed = 12345u32;
        for i in 1..30 {
            let noisy: Vec<u8> = frame(w, h, 120, None)
                .into_iter()
                .map(|v| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (v as i32 + ((seed >> 16) % 41) as i32 - 20) as u8
                })
                .collect();
            let small = downscale_gray(&noisy, w, h, w * 3, 100).unwrap();
            assert_eq!(g.decide(i as f64 * 0.2, &small, false), Decision::Skip, "frame {i}");
        }
    }

    #[test]
    fn tracked_objects_keep_detection_running_and_time_going_back_restarts_the_timer() {
        let mut g = gate(10.0);
        let still = downscale_gray(&frame(64, 48, 90, None), 64, 48, 192, 48).unwrap();
        g.decide(0.0, &still, false);
        assert_eq!(g.decide(0.2, &still, true), Decision::Tracking);
        assert_eq!(g.decide(0.4, &still, false), Decision::Skip);
        // A loop or reconnect: stream time restarts.
        assert_eq!(g.decide(0.0, &still, false), Decision::Idle);
    }

    #[test]
    fn a_change_that_stays_becomes_background() {
        let mut g = gate(1000.0);
        let dark = downscale_gray(&frame(64, 48, 40, None), 64, 48, 192, 48).unwrap();
        let light = downscale_gray(&frame(64, 48, 160, None), 64, 48, 192, 48).unwrap();
        g.decide(0.0, &dark, false);
        assert_eq!(g.decide(0.2, &light, false), Decision::Motion, "the light goes on");
        let settled = (1..200).map(|i| g.decide(0.2 + i as f64 * 0.2, &light, false)).position(|d| d == Decision::Skip);
        assert!(settled.is_some_and(|n| n < 40), "a lasting change settles within seconds: {settled:?}");
    }
}
