//! Letterbox maths: scale a source frame into the model's input (aspect kept, pasted at the
//! top-left or the centre of a canvas filled with the pad value; or stretched to fill it), and
//! map boxes back. Pure: no I/O, no allocation beyond what the caller hands in.

/// Grey that YOLOX was trained with for the padding.
pub const PAD_VALUE: f32 = 114.0;

pub use crate::source::geometry::{Geometry, Letterbox, Placement};

/// What the model wants from a pixel: the channel order of its planes, and per plane (in that
/// order) `value * mul + add`, which is `(value * scale - mean) / std` folded into one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalize {
    pub bgr: bool,
    pub mul: [f32; 3],
    pub add: [f32; 3],
    /// The pad value (a raw 0..255 grey), already normalised per plane.
    pub pad: [f32; 3],
}

impl Normalize {
    /// `scale`, `mean` and `std` as a manifest writes them, in the planes' order.
    pub fn new(bgr: bool, scale: f32, mean: [f32; 3], std: [f32; 3], pad_value: f32) -> Normalize {
        let mul = [scale / std[0], scale / std[1], scale / std[2]];
        let add = [-mean[0] / std[0], -mean[1] / std[1], -mean[2] / std[2]];
        let pad = [pad_value * mul[0] + add[0], pad_value * mul[1] + add[1], pad_value * mul[2] + add[2]];
        Normalize { bgr, mul, add, pad }
    }

    /// YOLOX's export: BGR, raw 0..255, pad 114.
    pub fn yolox() -> Normalize {
        Normalize::new(true, 1.0, [0.0; 3], [1.0; 3], PAD_VALUE)
    }
}

/// Write an already-resized RGB image (`w` x `h`, rows of `stride` bytes) into `out`, a planar
/// f32 tensor of the letterbox's canvas size, at the letterbox's offset, normalised as `norm`
/// says, padding the rest.
pub fn fill_planar(rgb: &[u8], w: u32, h: u32, stride: usize, lb: &Letterbox, norm: &Normalize, out: &mut [f32]) {
    let (cw, ch) = (lb.width as usize, lb.height as usize);
    let plane = cw * ch;
    debug_assert!(out.len() >= 3 * plane);
    for p in 0..3 {
        out[p * plane..(p + 1) * plane].fill(norm.pad[p]);
    }
    let (ox, oy) = ((lb.offset_x as usize).min(cw), (lb.offset_y as usize).min(ch));
    let (w, h) = ((w as usize).min(cw - ox), (h as usize).min(ch - oy));
    // Source channel feeding each plane: R,G,B → planes 2,1,0 when the model wants BGR.
    let src: [usize; 3] = if norm.bgr { [2, 1, 0] } else { [0, 1, 2] };
    for y in 0..h {
        let row = &rgb[y * stride..y * stride + 3 * w];
        let base = (y + oy) * cw + ox;
        for x in 0..w {
            let px = &row[3 * x..3 * x + 3];
            for p in 0..3 {
                out[p * plane + base + x] = px[src[p]] as f32 * norm.mul[p] + norm.add[p];
            }
        }
    }
}

/// Write an already-resized RGB image (`w` x `h`, rows of `stride` bytes) into `out`, a packed
/// (NHWC) u8 canvas of the letterbox's size, at the letterbox's offset, padding the rest with
/// `pad`: the input of a uint8 model, which normalises in its own graph. In RGB order each row
/// is one copy; `bgr` swaps each pixel's channels instead.
pub fn fill_packed_u8(rgb: &[u8], w: u32, h: u32, stride: usize, lb: &Letterbox, bgr: bool, pad: u8, out: &mut [u8]) {
    let (cw, ch) = (lb.width as usize, lb.height as usize);
    debug_assert!(out.len() >= 3 * cw * ch);
    let (ox, oy) = ((lb.offset_x as usize).min(cw), (lb.offset_y as usize).min(ch));
    let (w, h) = ((w as usize).min(cw - ox), (h as usize).min(ch - oy));
    // Pad only what the image leaves uncovered: the rows above and below it, and each row's
    // margins, so a full-width frame costs one copy per row and nothing more.
    out[..3 * oy * cw].fill(pad);
    out[3 * (oy + h) * cw..3 * cw * ch].fill(pad);
    for y in 0..h {
        let row = &rgb[y * stride..y * stride + 3 * w];
        let line = &mut out[3 * (y + oy) * cw..3 * (y + oy + 1) * cw];
        line[..3 * ox].fill(pad);
        line[3 * (ox + w)..].fill(pad);
        let dst = &mut line[3 * ox..3 * (ox + w)];
        if bgr {
            for (d, s) in dst.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        } else {
            dst.copy_from_slice(row);
        }
    }
}

/// YOLOX's input: planar BGR 0..255 on a square canvas of `size`, padded with 114.
pub fn fill_bgr_planar(rgb: &[u8], w: u32, h: u32, stride: usize, size: u32, out: &mut [f32]) {
    let lb = Letterbox {
        scale_x: 1.0,
        scale_y: 1.0,
        scaled_w: w,
        scaled_h: h,
        offset_x: 0,
        offset_y: 0,
        width: size,
        height: size,
    };
    fill_planar(rgb, w, h, stride, &lb, &Normalize::yolox(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_landscape_fills_width() {
        let lb = Letterbox::fit(640, 272, 416);
        assert_eq!((lb.scaled_w, lb.scaled_h), (416, 176));
        assert!((lb.scale_x - 0.65).abs() < 1e-6);
        assert_eq!((lb.offset_x, lb.offset_y), (0, 0));
    }

    #[test]
    fn centred_placement_splits_the_padding_and_unmaps_through_the_offset() {
        let g = Geometry { width: 416, height: 416, placement: Placement::Center };
        let lb = Letterbox::place(640, 272, g);
        assert_eq!((lb.scaled_w, lb.scaled_h), (416, 176));
        assert_eq!((lb.offset_x, lb.offset_y), (0, 120));
        let b = lb.unmap([65.0, 133.0, 130.0, 146.0], 640, 272);
        for (got, want) in b.iter().zip([100.0, 20.0, 200.0, 40.0]) {
            assert!((got - want).abs() < 1e-3, "{b:?}");
        }
    }

    #[test]
    fn stretch_scales_each_axis_on_its_own() {
        let g = Geometry { width: 320, height: 320, placement: Placement::Stretch };
        let lb = Letterbox::place(640, 160, g);
        assert_eq!((lb.scaled_w, lb.scaled_h), (320, 320));
        assert_eq!((lb.scale_x, lb.scale_y), (0.5, 2.0));
        assert_eq!(lb.unmap([10.0, 10.0, 20.0, 20.0], 640, 160), [20.0, 5.0, 40.0, 10.0]);
    }

    #[test]
    fn normalisation_folds_mean_and_std_and_normalises_the_pad() {
        let n = Normalize::new(false, 1.0 / 255.0, [0.5; 3], [0.25; 3], 114.0);
        let lb = Letterbox::place(1, 1, Geometry { width: 2, height: 1, placement: Placement::TopLeft });
        let mut out = vec![0.0f32; 6];
        fill_planar(&[255, 0, 51], 1, 1, 3, &lb, &n, &mut out);
        // R plane first (rgb): (1.0 - 0.5) / 0.25 = 2; then G: -2; then B: (0.2 - 0.5) / 0.25.
        assert!((out[0] - 2.0).abs() < 1e-5);
        assert!((out[2] + 2.0).abs() < 1e-5);
        assert!((out[4] + 1.2).abs() < 1e-5);
        // The pad pixel: (114/255 - 0.5) / 0.25.
        assert!((out[1] - (114.0 / 255.0 - 0.5) / 0.25).abs() < 1e-5);
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
    fn packed_u8_holds_the_pixels_the_planar_f32_fill_normalises() {
        // A 2x2 image with a 1-byte row gap (stride 7), at x = 1 on a 4x3 canvas: the u8 canvas,
        // cast and normalised per channel as the uint8 model's graph does it, must be exactly
        // the planar f32 fill of the same image.
        let rgb = [10u8, 20, 30, 40, 50, 60, 0, 70, 80, 90, 100, 110, 120, 0];
        let lb = Letterbox {
            scale_x: 1.0,
            scale_y: 1.0,
            scaled_w: 2,
            scaled_h: 2,
            offset_x: 1,
            offset_y: 0,
            width: 4,
            height: 3,
        };
        for (bgr, norm) in
            [(false, Normalize::new(false, 1.0 / 255.0, [0.5; 3], [0.25; 3], 114.0)), (true, Normalize::yolox())]
        {
            let mut packed = vec![0u8; 3 * 12];
            fill_packed_u8(&rgb, 2, 2, 7, &lb, bgr, 114, &mut packed);
            let mut planar = vec![0.0f32; 3 * 12];
            fill_planar(&rgb, 2, 2, 7, &lb, &norm, &mut planar);
            for px in 0..12 {
                for c in 0..3 {
                    let graph = packed[3 * px + c] as f32 * norm.mul[c] + norm.add[c];
                    assert_eq!(graph, planar[c * 12 + px], "pixel {px} channel {c} (bgr {bgr})");
                }
            }
            // The first image pixel sits at x = 1, in the channel order asked for.
            assert_eq!(&packed[3..6], if bgr { &[30, 20, 10] } else { &[10, 20, 30] });
            assert_eq!(&packed[0..3], &[114, 114, 114]);
            assert_eq!(&packed[33..36], &[114, 114, 114], "the bottom row is padding");
        }
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
