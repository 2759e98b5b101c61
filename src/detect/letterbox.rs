//! Letterbox maths for YOLOX: scale to fit, paste at the top-left of a square canvas filled
//! with 114, and map boxes back. Pure: no I/O, no allocation beyond what the caller hands in.

/// Grey that YOLOX was trained with for the padding.
pub const PAD_VALUE: f32 = 114.0;

/// How a source frame of `src_w` x `src_h` fits into a `size` x `size` model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Source pixels to model pixels.
    pub scale: f32,
    /// The resized image's size; it sits at the canvas's top-left.
    pub scaled_w: u32,
    pub scaled_h: u32,
    pub size: u32,
}

impl Letterbox {
    /// The recipe: `r = min(S/h, S/w)`, resized to `(int(w*r), int(h*r))`. At least one pixel,
    /// so that a degenerate 1 x 5000 strip still produces an input.
    pub fn fit(src_w: u32, src_h: u32, size: u32) -> Letterbox {
        let scale = (size as f32 / src_h.max(1) as f32).min(size as f32 / src_w.max(1) as f32);
        let scaled_w = ((src_w as f32 * scale) as u32).clamp(1, size);
        let scaled_h = ((src_h as f32 * scale) as u32).clamp(1, size);
        Letterbox { scale, scaled_w, scaled_h, size }
    }

    /// Map a box from model-input pixels back to source pixels, clipped to the source frame.
    pub fn unmap(&self, b: [f32; 4], src_w: u32, src_h: u32) -> [f32; 4] {
        let (w, h) = (src_w as f32, src_h as f32);
        [
            (b[0] / self.scale).clamp(0.0, w),
            (b[1] / self.scale).clamp(0.0, h),
            (b[2] / self.scale).clamp(0.0, w),
            (b[3] / self.scale).clamp(0.0, h),
        ]
    }
}

/// Write an already-resized RGB image (`w` x `h`, tightly packed rows of `stride` bytes) into
/// `out`, a planar BGR f32 tensor of `size` x `size`, padding the rest with 114.
///
/// The model wants BGR in 0..255 with no normalisation: the export folded that in.
pub fn fill_bgr_planar(rgb: &[u8], w: u32, h: u32, stride: usize, size: u32, out: &mut [f32]) {
    let s = size as usize;
    let plane = s * s;
    debug_assert!(out.len() >= 3 * plane);
    out[..3 * plane].fill(PAD_VALUE);
    let (w, h) = ((w as usize).min(s), (h as usize).min(s));
    for y in 0..h {
        let row = &rgb[y * stride..y * stride + 3 * w];
        let base = y * s;
        for x in 0..w {
            let px = &row[3 * x..3 * x + 3];
            // Planes in B, G, R order.
            out[base + x] = px[2] as f32;
            out[plane + base + x] = px[1] as f32;
            out[2 * plane + base + x] = px[0] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_landscape_fills_width() {
        let lb = Letterbox::fit(640, 272, 416);
        assert_eq!((lb.scaled_w, lb.scaled_h), (416, 176));
        assert!((lb.scale - 0.65).abs() < 1e-6);
    }

    #[test]
    fn fit_portrait_fills_height() {
        let lb = Letterbox::fit(512, 600, 416);
        assert_eq!(lb.scaled_h, 416);
        assert_eq!(lb.scaled_w, (512.0f32 * (416.0 / 600.0)) as u32);
    }

    #[test]
    fn fit_degenerate_keeps_one_pixel() {
        let lb = Letterbox::fit(1, 100_000, 416);
        assert_eq!(lb.scaled_w, 1);
        assert_eq!(lb.scaled_h, 416);
    }

    #[test]
    fn unmap_inverts_scale_and_clips() {
        let lb = Letterbox::fit(640, 272, 416);
        let b = lb.unmap([65.0, 13.0, 500.0, 200.0], 640, 272);
        assert!((b[0] - 100.0).abs() < 1e-3);
        assert!((b[1] - 20.0).abs() < 1e-3);
        assert_eq!(b[2], 640.0); // clipped
        assert_eq!(b[3], 272.0); // clipped
    }

    #[test]
    fn fill_pads_and_swaps_channels() {
        // A 2x1 image: one red pixel, one blue pixel, on a 4x4 canvas.
        let rgb = [255u8, 0, 0, 0, 0, 255];
        let mut out = vec![0.0f32; 3 * 16];
        fill_bgr_planar(&rgb, 2, 1, 6, 4, &mut out);
        // B plane: pixel 0 has no blue, pixel 1 is full blue.
        assert_eq!(out[0], 0.0);
        assert_eq!(out[1], 255.0);
        // R plane: the opposite.
        assert_eq!(out[32], 255.0);
        assert_eq!(out[33], 0.0);
        // Everything outside the pasted image is the pad value, in every plane.
        for p in 0..3 {
            assert_eq!(out[p * 16 + 2], PAD_VALUE);
            assert_eq!(out[p * 16 + 4], PAD_VALUE);
            assert_eq!(out[p * 16 + 15], PAD_VALUE);
        }
    }
}
