//! Snapshots: a JPEG of an object's best-scoring frame, as Frigate users expect one per event.
//! Pure: an RGB frame and a box in, JPEG bytes out. Saving and retention live in the
//! publisher, which owns the disk.

use std::sync::Arc;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};

use crate::annotate;
use crate::detect::Detection;

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotConfig {
    pub enabled: bool,
    /// Crop to the object (with a margin) instead of the full frame.
    pub crop: bool,
    /// Draw the object's box and label.
    pub draw_box: bool,
    /// Longest side of the JPEG, pixels; larger images are scaled down.
    pub max_size: u32,
    /// JPEG quality, 1-100.
    pub quality: u8,
}

impl Default for SnapshotConfig {
    fn default() -> SnapshotConfig {
        SnapshotConfig { enabled: false, crop: false, draw_box: true, max_size: 640, quality: 80 }
    }
}

pub use crate::detect::frame::FrameImage;

/// The best view of one object so far.
#[derive(Debug, Clone)]
pub struct BestView {
    pub score: f32,
    pub frame: Arc<FrameImage>,
    /// The object's box in source pixels.
    pub bbox: [f32; 4],
}

/// Margin around a cropped object, as a fraction of its box.
const CROP_MARGIN: f32 = 0.2;

/// Encode the snapshot of `view` for an object of `class` / `label`.
pub fn encode(
    config: &SnapshotConfig,
    view: &BestView,
    class: usize,
    label: &'static str,
) -> Result<Vec<u8>, image::ImageError> {
    let f = &view.frame;
    let b = view.bbox;
    // The box in the frame image's pixels.
    let boxed = [b[0] * f.scale_x, b[1] * f.scale_y, b[2] * f.scale_x, b[3] * f.scale_y];
    let mut img = f.rgb.clone();
    if config.draw_box {
        let d = Detection { class, label, score: view.score, bbox: boxed };
        annotate::draw_detections(&mut img, &[d]);
    }
    if config.crop {
        let (w, h) = (img.width() as f32, img.height() as f32);
        let (mx, my) = ((boxed[2] - boxed[0]) * CROP_MARGIN, (boxed[3] - boxed[1]) * CROP_MARGIN);
        let x1 = (boxed[0] - mx).clamp(0.0, w - 1.0) as u32;
        let y1 = (boxed[1] - my).clamp(0.0, h - 1.0) as u32;
        let x2 = ((boxed[2] + mx).clamp(0.0, w) as u32).max(x1 + 1);
        let y2 = ((boxed[3] + my).clamp(0.0, h) as u32).max(y1 + 1);
        img = imageops::crop_imm(&img, x1, y1, x2 - x1, y2 - y1).to_image();
    }
    let longest = img.width().max(img.height());
    if longest > config.max_size && config.max_size > 0 {
        let k = config.max_size as f32 / longest as f32;
        let (w, h) =
            (((img.width() as f32 * k).round() as u32).max(1), ((img.height() as f32 * k).round() as u32).max(1));
        img = imageops::resize(&img, w, h, FilterType::Triangle);
    }
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, config.quality.clamp(1, 100)).encode_image(&img)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> BestView {
        let rgb = image::RgbImage::from_fn(416, 177, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        // Source 640x272 scaled to 416x177.
        let frame = Arc::new(FrameImage { rgb, scale_x: 416.0 / 640.0, scale_y: 177.0 / 272.0 });
        BestView { score: 0.9, frame, bbox: [100.0, 50.0, 300.0, 250.0] }
    }

    #[test]
    fn full_frame_jpeg_keeps_the_frame_size_under_max() {
        let jpeg =
            encode(&SnapshotConfig { enabled: true, ..SnapshotConfig::default() }, &view(), 0, "person").unwrap();
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (416, 177));
    }

    #[test]
    fn crop_is_around_the_object_and_max_size_scales_down() {
        let cfg = SnapshotConfig { enabled: true, crop: true, max_size: 100, ..SnapshotConfig::default() };
        let img = image::load_from_memory(&encode(&cfg, &view(), 0, "person").unwrap()).unwrap();
        // Box 130x130 image px plus 20 % margins, clipped to the frame, then scaled to 100 px.
        assert_eq!(img.width().max(img.height()), 100);
        assert!(img.width() < 100 || img.height() < 100);
    }
}
