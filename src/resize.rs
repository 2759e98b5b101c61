//! The resize of the reference recipes, bit for bit: OpenCV's `cv2.resize(img, (w, h),
//! interpolation=cv2.INTER_LINEAR)` on 8-bit pixels, which is how YOLOX's own preprocessing
//! (and most Python deployments) fit an image to the model. Pure.
//!
//! Why not a general-purpose resizer: an antialiased (PIL-style) bilinear filter averages over
//! more source pixels when it shrinks, so the model sees a softer picture than it was trained
//! on, and scores moved by up to 0.038 against the reference on images outside the repository.
//! INTER_LINEAR always takes two taps per axis, at half-pixel centres, in fixed point:
//!
//! - coordinates: `f = (d + 0.5) * (src / dst) - 0.5`, computed in f64 and rounded to f32;
//!   `i = floor(f)`, `t = f - i`; on the x axis only, a tap outside the image is pulled to the
//!   edge with `t = 0`; on the y axis the weights stay and both rows clamp to the edge;
//! - weights: `round_ties_even((1 - t) * 2048)` and `round_ties_even(t * 2048)`, each on its own;
//! - horizontal pass, exact in i32: `a * w0 + b * w1`;
//! - vertical pass, as OpenCV's int16 kernel does it:
//!   `(((h0 >> 4) * w0 >> 16) + ((h1 >> 4) * w1 >> 16) + 2) >> 2`.
//!
//! `tests/fixtures/cv2_resize/` holds OpenCV's own output for shrinking, growing, an exact half
//! and the demo's 416 letterbox size (made by scripts/cv2_resize_fixtures.py), and the tests
//! here match it byte for byte.

/// Fixed-point weights: 11 fractional bits, as OpenCV's INTER_RESIZE_COEF_BITS.
const COEF_ONE: f32 = 2048.0;

/// The two source taps of one destination index and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: i32,
    w1: i32,
}

fn taps(src: usize, dst: usize, pull_to_edge: bool) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut i = f.floor() as i64;
            let mut t = f - i as f32;
            if pull_to_edge {
                if i < 0 {
                    (i, t) = (0, 0.0);
                }
                if i >= last {
                    (i, t) = (last, 0.0);
                }
            }
            Tap {
                i0: i.clamp(0, last) as usize,
                i1: (i + 1).clamp(0, last) as usize,
                w0: ((1.0 - t) * COEF_ONE).round_ties_even() as i32,
                w1: (t * COEF_ONE).round_ties_even() as i32,
            }
        })
        .collect()
}

/// Resize packed 8-bit pixels of `channels` channels, `width` x `height` with rows `stride`
/// bytes apart, to `out_width` x `out_height`, written packed into `out` (which must hold
/// `out_width * out_height * channels` bytes). Empty sizes write nothing.
#[allow(clippy::too_many_arguments)]
pub fn resize_linear(
    src: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    channels: usize,
    out_width: usize,
    out_height: usize,
    out: &mut [u8],
) {
    if width == 0 || height == 0 || out_width == 0 || out_height == 0 || channels == 0 {
        return;
    }
    let row_len = out_width * channels;
    if (out_width, out_height) == (width, height) {
        for (y, dst) in out.chunks_exact_mut(row_len).take(out_height).enumerate() {
            dst.copy_from_slice(&src[y * stride..y * stride + row_len]);
        }
        return;
    }
    let size = (width, height, out_width, out_height);
    resize_rows(size, channels, out, |r, _, row| row.copy_from_slice(&src[r * stride..r * stride + width * channels]));
}

/// One decoded I420 picture: the Y plane and the two chroma planes at half size (rounded up),
/// each with its own row stride.
#[derive(Debug, Clone, Copy)]
pub struct I420<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub uv_stride: usize,
    pub width: usize,
    pub height: usize,
}

/// One pixel as OpenCV's video reader converts it (`cv2.VideoCapture`, FFmpeg's swscale,
/// unscaled yuv420p → BGR): BT.601 limited range whatever the stream says, 16-bit fixed-point
/// coefficients, every product floored on its own (pmulhw), no rounding term. Returns R, G, B.
/// `scripts/swscale_yuv.py` checks the same formula against cv2 byte for byte.
pub fn swscale_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let yy = ((i32::from(y) * 8 - 128) * 9539) >> 16;
    let (uu, vv) = (i32::from(u) * 8 - 1024, i32::from(v) * 8 - 1024);
    let b = yy + ((uu * 16525) >> 16);
    let g = yy + ((uu * -3209) >> 16) + ((vv * -6660) >> 16);
    let r = yy + ((vv * 13075) >> 16);
    [r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8]
}

/// What the reference recipe does to a video frame, exactly: OpenCV's colour conversion
/// ([`swscale_rgb`], each pixel taking its 2x2 block's chroma sample) then `cv2.resize`
/// INTER_LINEAR, written as packed RGB into `out` (`out_width * out_height * 3` bytes). Only the
/// source pixels the resize reads are converted: about four per output pixel.
pub fn resize_i420(src: &I420<'_>, out_width: usize, out_height: usize, out: &mut [u8]) {
    if src.width == 0 || src.height == 0 || out_width == 0 || out_height == 0 {
        return;
    }
    let size = (src.width, src.height, out_width, out_height);
    resize_rows(size, 3, out, |r, xs, row| {
        let (y_row, c_row) = (&src.y[r * src.y_stride..], r / 2 * src.uv_stride);
        for i in xs.iter().flat_map(|t| [t.i0, t.i1]) {
            let rgb = swscale_rgb(y_row[i], src.u[c_row + i / 2], src.v[c_row + i / 2]);
            row[i * 3..i * 3 + 3].copy_from_slice(&rgb);
        }
    });
}

/// The two passes of INTER_LINEAR. `fill(r, taps, row)` writes source row `r` as packed
/// pixels into `row` (`width * channels` bytes), at least at the columns `taps` read.
fn resize_rows(
    (width, height, out_width, out_height): (usize, usize, usize, usize),
    channels: usize,
    out: &mut [u8],
    mut fill: impl FnMut(usize, &[Tap], &mut [u8]),
) {
    let row_len = out_width * channels;
    let xs = taps(width, out_width, true);
    let ys = taps(height, out_height, false);
    let mut line = vec![0u8; width * channels];
    // The horizontal pass of the two source rows the current output row reads, kept while the
    // next output rows read them too (each source row is filtered once).
    let mut rows: [(usize, Vec<i32>); 2] = [(usize::MAX, vec![0; row_len]), (usize::MAX, vec![0; row_len])];
    let mut horizontal = |r: usize, buf: &mut [i32]| {
        fill(r, &xs, &mut line);
        for (x, tap) in xs.iter().enumerate() {
            let (a, b) = (tap.i0 * channels, tap.i1 * channels);
            for c in 0..channels {
                buf[x * channels + c] = i32::from(line[a + c]) * tap.w0 + i32::from(line[b + c]) * tap.w1;
            }
        }
    };
    for (y, tap) in ys.iter().enumerate() {
        if rows[0].0 != tap.i0 {
            // The previous output row's second tap is often this one's first.
            if rows[1].0 == tap.i0 {
                rows.swap(0, 1);
            } else {
                horizontal(tap.i0, &mut rows[0].1);
                rows[0].0 = tap.i0;
            }
        }
        if rows[1].0 != tap.i1 {
            horizontal(tap.i1, &mut rows[1].1);
            rows[1].0 = tap.i1;
        }
        let (h0, h1) = (&rows[0].1, &rows[1].1);
        let dst = &mut out[y * row_len..(y + 1) * row_len];
        for ((d, a), b) in dst.iter_mut().zip(h0).zip(h1) {
            let v = (((a >> 4) * tap.w0) >> 16) + (((b >> 4) * tap.w1) >> 16) + 2;
            *d = (v >> 2).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cv2_resize")
    }

    fn rgb(name: &str) -> image::RgbImage {
        image::open(fixtures().join(name)).unwrap().to_rgb8()
    }

    /// Every case of the fixture index, resized here and compared with OpenCV's bytes.
    #[test]
    fn matches_opencv_inter_linear_byte_for_byte() {
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("index.json")).unwrap()).unwrap();
        let cases = index["cases"].as_array().expect("cases");
        assert!(cases.len() >= 8, "{index}");
        for case in cases {
            let input = rgb(case["input"].as_str().unwrap());
            let want = rgb(case["output"].as_str().unwrap());
            let (w, h) = input.dimensions();
            let mut got = vec![0u8; (want.width() * want.height() * 3) as usize];
            resize_linear(
                input.as_raw(),
                w as usize,
                h as usize,
                w as usize * 3,
                3,
                want.width() as usize,
                want.height() as usize,
                &mut got,
            );
            let off = got.iter().zip(want.as_raw()).filter(|(a, b)| a != b).count();
            assert_eq!(off, 0, "{case}: {off} of {} bytes differ from OpenCV's", got.len());
        }
    }

    #[test]
    fn weights_sum_to_one_and_edges_clamp() {
        for (src, dst) in [(37, 17), (640, 416), (17, 50), (200, 100), (1, 5)] {
            for (k, t) in taps(src, dst, true).iter().enumerate() {
                assert!(t.i0 < src && t.i1 < src, "{src}->{dst} #{k}: {t:?}");
                assert!((2047..=2049).contains(&(t.w0 + t.w1)), "{src}->{dst} #{k}: {t:?}");
            }
        }
        // An exact half averages pairs: (10 + 20 + 2) >> 2 on each side of the rounding.
        let mut out = [0u8; 1];
        resize_linear(&[10, 20, 30, 40], 2, 2, 2, 1, 1, 1, &mut out);
        assert_eq!(out, [25]);
        // The same size is a copy, rows taken at the stride.
        let mut out = [0u8; 4];
        resize_linear(&[1, 2, 99, 3, 4, 99], 2, 2, 3, 1, 2, 2, &mut out);
        assert_eq!(out, [1, 2, 3, 4]);
    }

    #[test]
    fn i420_is_converted_as_opencv_reads_video_then_resized() {
        // scripts/swscale_yuv.py's formula (byte for byte cv2.VideoCapture's on bikes.mp4): black
        // and white at the limits of limited range, grey, and BT.601's red.
        assert_eq!(swscale_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(swscale_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(swscale_rgb(128, 128, 128), [130, 130, 130]);
        assert_eq!(swscale_rgb(81, 90, 240), [253, 0, 0]);
        // A 4x2 picture to 2x1: the same as converting every pixel, then resizing the RGB.
        let (w, h) = (4, 2);
        let y: Vec<u8> = (0..w * h).map(|i| 40 + 20 * i as u8).collect();
        let (u, v) = ([100u8, 160], [200u8, 60]);
        let src = I420 { y: &y, u: &u, v: &v, y_stride: w, uv_stride: 2, width: w, height: h };
        let full: Vec<u8> = (0..w * h).flat_map(|i| swscale_rgb(y[i], u[(i % w) / 2], v[(i % w) / 2])).collect();
        let (mut want, mut got) = (vec![0u8; 2 * 3], vec![0u8; 2 * 3]);
        resize_linear(&full, w, h, w * 3, 3, 2, 1, &mut want);
        resize_i420(&src, 2, 1, &mut got);
        assert_eq!(got, want);
    }
}
