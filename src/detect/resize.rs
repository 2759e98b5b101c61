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
    let xs = taps(width, out_width, true);
    let ys = taps(height, out_height, false);
    // The horizontal pass of the two source rows the current output row reads, kept while the
    // next output rows read them too (each source row is filtered once).
    let mut rows: [(usize, Vec<i32>); 2] = [(usize::MAX, vec![0; row_len]), (usize::MAX, vec![0; row_len])];
    let horizontal = |r: usize, buf: &mut [i32]| {
        let line = &src[r * stride..];
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
}
