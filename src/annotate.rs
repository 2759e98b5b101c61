//! Drawing boxes and labels onto RGB images, for `lookout detect --annotate`, snapshots and the
//! console's annotated frames.
//! A built-in 5x7 bitmap font keeps this free of font files and extra crates.

use image::{Rgb, RgbImage};

use crate::detect::Detection;

/// Distinct colours, picked by class so one label keeps one colour across images.
const PALETTE: [[u8; 3]; 8] = [
    [255, 56, 56],
    [56, 190, 255],
    [72, 249, 10],
    [255, 178, 29],
    [207, 210, 49],
    [146, 204, 23],
    [255, 55, 199],
    [44, 153, 168],
];

/// Draw every detection as a box with `label score` above it.
pub fn draw_detections(img: &mut RgbImage, dets: &[Detection]) {
    for d in dets {
        draw_labelled_box(img, d.bbox, &format!("{} {:.2}", d.label, d.score), d.class);
    }
}

/// One box (image pixels) with `text` above it, in the palette's colour for `class`. Also used
/// by the console's annotated frames (`crate::web`).
pub fn draw_labelled_box(img: &mut RgbImage, bbox: [f32; 4], text: &str, class: usize) {
    let thickness = ((img.width().max(img.height()) / 300) + 1).min(4);
    let colour = Rgb(PALETTE[class % PALETTE.len()]);
    let [x1, y1, x2, y2] = bbox.map(|v| v.max(0.0) as u32);
    draw_rect(img, x1, y1, x2, y2, thickness, colour);
    draw_tag(img, x1, y1, text, colour);
}

/// `text` on a filled background of `colour`, its bottom left at (x, y) where it fits.
pub fn draw_tag(img: &mut RgbImage, x: u32, y: u32, text: &str, colour: Rgb<u8>) {
    let scale = if img.width() >= 960 { 2 } else { 1 };
    let text_h = 9 * scale;
    let ty = if y >= text_h { y - text_h } else { y };
    let text_w = text.chars().count() as u32 * 6 * scale + 2;
    fill_rect(img, x, ty, x + text_w, ty + text_h, colour);
    draw_text(img, x + 1, ty + scale, text, scale, Rgb([0, 0, 0]));
}

fn draw_rect(img: &mut RgbImage, x1: u32, y1: u32, x2: u32, y2: u32, t: u32, c: Rgb<u8>) {
    fill_rect(img, x1, y1, x2, y1 + t, c);
    fill_rect(img, x1, y2.saturating_sub(t), x2, y2, c);
    fill_rect(img, x1, y1, x1 + t, y2, c);
    fill_rect(img, x2.saturating_sub(t), y1, x2, y2, c);
}

/// Fill [x1, x2) x [y1, y2), clipped to the image.
pub fn fill_rect(img: &mut RgbImage, x1: u32, y1: u32, x2: u32, y2: u32, c: Rgb<u8>) {
    let (w, h) = img.dimensions();
    for y in y1.min(h)..y2.min(h) {
        for x in x1.min(w)..x2.min(w) {
            img.put_pixel(x, y, c);
        }
    }
}

fn draw_text(img: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, c: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let rows = glyph(ch);
        let gx = x + i as u32 * 6 * scale;
        for (ry, bits) in rows.iter().enumerate() {
            for rx in 0..5u32 {
                if bits & (0b10000 >> rx) != 0 {
                    let px = gx + rx * scale;
                    let py = y + ry as u32 * scale;
                    fill_rect(img, px, py, px + scale, py + scale, c);
                }
            }
        }
    }
}

/// 5x7 glyphs, one byte per row, the high five bits of each used left to right.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_edges_are_drawn_and_inside_is_untouched() {
        let mut img = RgbImage::new(100, 100);
        let d = Detection { class: 0, label: "person", score: 0.9, bbox: [20.0, 30.0, 80.0, 90.0] };
        draw_detections(&mut img, &[d]);
        let c = Rgb(PALETTE[0]);
        assert_eq!(*img.get_pixel(50, 30), c); // top edge
        assert_eq!(*img.get_pixel(20, 60), c); // left edge
        assert_eq!(*img.get_pixel(50, 60), Rgb([0, 0, 0])); // inside
    }

    #[test]
    fn boxes_past_the_edge_are_clipped_not_a_panic() {
        let mut img = RgbImage::new(10, 10);
        let d = Detection { class: 3, label: "motorcycle", score: 0.5, bbox: [5.0, 5.0, 500.0, 500.0] };
        draw_detections(&mut img, &[d]);
    }
}
