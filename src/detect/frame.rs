//! What the detect stage hands the objects stage: one frame's detections, the facts about the
//! frame, and (when someone needs the picture) the frame itself.

use std::sync::Arc;
use std::time::Duration;

use image::RgbImage;

use crate::detect::Detection;
use crate::source::FrameMeta;

/// A frame's detections, with what the stage needs to know about the frame.
pub struct DetectedFrame {
    /// Its place in the camera's frames as the detect workers took them (see
    /// [`crate::detect::worker`]): the objects stage handles them in this order.
    pub ticket: u64,
    /// The worker could not detect on it (inference failed; counted there): the objects stage
    /// only moves past it.
    pub skipped: bool,
    pub meta: FrameMeta,
    /// The stream's timestamp, if it has one.
    pub pts: Option<Duration>,
    pub detections: Vec<Detection>,
    /// The frame as the detector saw it, when the camera takes snapshots.
    pub image: Option<Arc<FrameImage>>,
}

/// A frame as the detector saw it: RGB, scaled from the source by `scale` (image px per
/// source px), shared by every object seen in it.
#[derive(Debug)]
pub struct FrameImage {
    pub rgb: RgbImage,
    pub scale_x: f32,
    pub scale_y: f32,
}
