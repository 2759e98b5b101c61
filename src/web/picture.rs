//! A camera's frame as the console shows it: back to the source's aspect
//! ratio (the detector's input is stretched), with its masks shaded, its zones outlined, its
//! lines drawn with an arrow for each counted direction, and the tracked objects boxed with
//! their track ids. Pure: an image and the camera's rules in, an image out.

use image::{Rgb, RgbImage};

use crate::annotate::{draw_labelled_box, draw_tag, fill_rect};
use crate::rules::{Direction, Point, RulesConfig};
use crate::view::ViewObject;

/// The longest side of a frame sent to a browser.
pub const MAX_SIDE: u32 = 960;

const ZONE: Rgb<u8> = Rgb([255, 210, 0]);
const LINE: Rgb<u8> = Rgb([0, 220, 255]);
const MASK: [u8; 3] = [40, 40, 40];

/// `rgb` (scaled from a `src_w`×`src_h` source) resized to the source's aspect ratio.
pub fn to_source_aspect(rgb: &RgbImage, src_w: f32, src_h: f32) -> RgbImage {
    // As much detail as the stretched frame holds along its finer axis, never above the
    // source's own size or MAX_SIDE.
    let detail = (rgb.width() as f32 / src_w.max(1.0)).max(rgb.height() as f32 / src_h.max(1.0));
    let k = detail.min(1.0).min(MAX_SIDE as f32 / src_w.max(src_h));
    let (w, h) = (((src_w * k).round() as u32).clamp(1, MAX_SIDE), ((src_h * k).round() as u32).clamp(1, MAX_SIDE));
    if (w, h) == rgb.dimensions() {
        return rgb.clone();
    }
    image::imageops::resize(rgb, w, h, image::imageops::FilterType::Triangle)
}

/// Draw `rules` (normalised) and `objects` (boxes in source pixels, `src_w` wide) onto `img`.
pub fn annotate(img: &mut RgbImage, rules: &RulesConfig, objects: &[ViewObject], src_w: f32) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let px = |p: &Point| (p.x * w, p.y * h);
    for mask in &rules.filters.masks {
        shade(img, mask);
        outline(img, mask, Rgb(MASK), false);
    }
    for z in &rules.zones {
        outline(img, &z.polygon, ZONE, true);
        if let Some(p) = z.polygon.first() {
            let (x, y) = px(p);
            draw_tag(img, x.max(0.0) as u32, (y.max(0.0) as u32) + 10, &z.name, ZONE);
        }
    }
    for l in &rules.lines {
        let (a, b) = (px(&l.points[0]), px(&l.points[1]));
        segment(img, a, b, 3, LINE);
        // An arrow from the middle for each counted direction, pointing the way it counts:
        // left_to_right crosses from the left of a→b (walking a to b) to its right.
        let (mx, my) = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        // Right of a→b in image coordinates (y down): (-dy, dx).
        let (rx, ry) = (-dy / len, dx / len);
        let arrow = 0.06 * w.max(h);
        for (d, sign) in [(Direction::LeftToRight, 1.0), (Direction::RightToLeft, -1.0)] {
            if l.direction.allows(d) {
                let tip = (mx + sign * rx * arrow, my + sign * ry * arrow);
                let tail = (mx - sign * rx * arrow * 0.3, my - sign * ry * arrow * 0.3);
                segment(img, tail, tip, 2, LINE);
                let (ux, uy) = (sign * rx, sign * ry);
                let head = arrow * 0.35;
                segment(img, tip, (tip.0 - ux * head + uy * head * 0.6, tip.1 - uy * head - ux * head * 0.6), 2, LINE);
                segment(img, tip, (tip.0 - ux * head - uy * head * 0.6, tip.1 - uy * head + ux * head * 0.6), 2, LINE);
            }
        }
        draw_tag(img, a.0.max(0.0) as u32, a.1.max(0.0) as u32, &format!("{} A", l.name), LINE);
        draw_tag(img, b.0.max(0.0) as u32, b.1.max(0.0) as u32, "B", LINE);
    }
    let k = w / src_w.max(1.0);
    for o in objects {
        let b = o.bbox.map(|v| v * k);
        draw_labelled_box(img, b, &format!("#{} {}", o.id, o.label), o.id as usize);
    }
}

/// Darken the pixels inside `poly` (normalised): masked areas read as switched off.
fn shade(img: &mut RgbImage, poly: &[Point]) {
    let (w, h) = img.dimensions();
    let pts: Vec<(f32, f32)> = poly.iter().map(|p| (p.x * w as f32, p.y * h as f32)).collect();
    for y in 0..h {
        let fy = y as f32 + 0.5;
        for x in 0..w {
            if inside(&pts, (x as f32 + 0.5, fy)) {
                let p = img.get_pixel_mut(x, y);
                for (c, m) in p.0.iter_mut().zip(MASK) {
                    *c = ((*c as u16 + m as u16 * 3) / 4) as u8;
                }
            }
        }
    }
}

fn inside(poly: &[(f32, f32)], (x, y): (f32, f32)) -> bool {
    let mut odd = false;
    let mut j = poly.len().wrapping_sub(1);
    for i in 0..poly.len() {
        let ((xi, yi), (xj, yj)) = (poly[i], poly[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            odd = !odd;
        }
        j = i;
    }
    odd
}

fn outline(img: &mut RgbImage, poly: &[Point], c: Rgb<u8>, closed: bool) {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let pts: Vec<(f32, f32)> = poly.iter().map(|p| (p.x * w, p.y * h)).collect();
    for pair in pts.windows(2) {
        segment(img, pair[0], pair[1], 2, c);
    }
    if let (true, Some(first), Some(last)) = (closed || pts.len() > 2, pts.first(), pts.last()) {
        segment(img, *last, *first, 2, c);
    }
}

/// A straight segment `t` pixels thick, clipped to the image.
fn segment(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), t: u32, c: Rgb<u8>) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().max(1.0) as u32;
    let half = t / 2;
    for i in 0..=steps {
        let f = i as f32 / steps as f32;
        let (x, y) = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
        if x < 0.0 || y < 0.0 {
            continue;
        }
        let (x, y) = (x as u32, y as u32);
        fill_rect(img, x.saturating_sub(half), y.saturating_sub(half), x + t - half, y + t - half, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{LineConfig, ZoneConfig};

    #[test]
    fn zones_lines_masks_and_objects_are_drawn_where_they_are() {
        let mut rules = RulesConfig::default();
        let p = |x: f32, y: f32| Point { x, y };
        rules.zones.push(ZoneConfig::new("z", vec![p(0.1, 0.1), p(0.5, 0.1), p(0.5, 0.5), p(0.1, 0.5)]));
        rules.lines.push(LineConfig::new("l", [p(0.8, 0.0), p(0.8, 1.0)]));
        rules.filters.masks.push(vec![p(0.6, 0.6), p(0.7, 0.6), p(0.7, 0.7), p(0.6, 0.7)]);
        let mut img = RgbImage::from_pixel(200, 100, Rgb([200, 200, 200]));
        let obj = ViewObject { id: 7, label: "car".into(), bbox: [1200.0, 200.0, 1500.0, 400.0], score: 0.9 };
        annotate(&mut img, &rules, &[obj], 2000.0);
        assert_eq!(*img.get_pixel(60, 10), ZONE, "the zone's top edge");
        assert_eq!(*img.get_pixel(160, 90), LINE, "the line");
        let masked = img.get_pixel(130, 65);
        assert!(masked.0[0] < 100, "inside the mask is shaded: {masked:?}");
        assert_eq!(*img.get_pixel(30, 30), Rgb([200, 200, 200]), "inside a zone is left alone");
        assert_ne!(*img.get_pixel(120, 30), Rgb([200, 200, 200]), "the object's box, scaled from source pixels");
    }

    #[test]
    fn a_stretched_frame_gets_its_aspect_back() {
        let img = RgbImage::new(416, 416);
        assert_eq!(to_source_aspect(&img, 1920.0, 1080.0).dimensions(), (740, 416));
        assert_eq!(to_source_aspect(&img, 320.0, 240.0).dimensions(), (320, 240));
    }
}
