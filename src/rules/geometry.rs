//! Plane geometry in normalised image coordinates: x grows to the right, y grows downwards,
//! both 0..1 across the frame. Pure.

use super::{FrameSize, RulesError};

/// A normalised point: (0, 0) is the top-left corner of the frame, (1, 1) the bottom-right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite()
    }

    fn in_unit_square(self) -> bool {
        (0.0..=1.0).contains(&self.x) && (0.0..=1.0).contains(&self.y)
    }
}

impl From<[f32; 2]> for Point {
    fn from([x, y]: [f32; 2]) -> Point {
        Point { x, y }
    }
}

/// A point this close to a polygon edge is on it. A millionth of the frame is far below one
/// pixel of any camera, yet absorbs the rounding of the normalisation.
const ON_EDGE: f32 = 1e-6;

/// Below this (normalised area, a thousandth of one pixel of a 4K frame) a polygon encloses
/// nothing: its points are repeated or collinear, and no object could ever be inside.
const MIN_AREA: f64 = 1e-10;

/// The point zones and lines test for an object: the bottom centre of its pixel box,
/// normalised. `None` for a zero-sized frame or a non-finite box, which no rule can place.
pub fn reference_point(bbox: [f32; 4], frame: FrameSize) -> Option<Point> {
    if frame.width == 0 || frame.height == 0 {
        return None;
    }
    let p = Point::new((bbox[0] + bbox[2]) * 0.5 / frame.width as f32, bbox[3] / frame.height as f32);
    p.is_finite().then_some(p)
}

/// The z component of (b − a) × (p − a): which side of the directed line a→b the point p is on,
/// scaled by the line's length.
///
/// Because y grows downwards, the sign is the mirror of the usual maths convention: negative
/// is on the left of someone walking from a to b on the displayed image, positive on their
/// right, zero on the line. Walking down the image from (0.5, 0) to (0.5, 1), the walker's
/// left is the right-hand half of the picture (x > 0.5).
pub fn side(a: Point, b: Point, p: Point) -> f32 {
    (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x)
}

/// Euclidean distance from p to the segment a–b (to a itself when a == b).
pub fn distance_to_segment(p: Point, a: Point, b: Point) -> f32 {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len2 = dx * dx + dy * dy;
    let s = if len2 > 0.0 { (((p.x - a.x) * dx + (p.y - a.y) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (cx, cy) = (a.x + s * dx, a.y + s * dy);
    ((p.x - cx).powi(2) + (p.y - cy).powi(2)).sqrt()
}

/// Even-odd point-in-polygon test; the polygon closes from its last point back to its first.
///
/// A point on an edge or vertex (within [`ON_EDGE`]) is inside. Zones are usually drawn to the
/// frame's border, and an object cut off by the bottom of the image has its reference point
/// exactly at y = 1: with the half-open rule of the plain crossing test, a zone drawn down to
/// y = 1 would miss it.
pub fn point_in_polygon(p: Point, polygon: &[Point]) -> bool {
    if polygon.len() < 3 || !p.is_finite() {
        return false;
    }
    let edges = || polygon.iter().zip(polygon.iter().cycle().skip(1));
    if edges().any(|(&a, &b)| distance_to_segment(p, a, b) <= ON_EDGE) {
        return true;
    }
    let mut inside = false;
    for (&a, &b) in edges() {
        // The edge straddles the horizontal through p (half-open, so a vertex is counted once)
        // and crosses it to the right of p.
        if (a.y > p.y) != (b.y > p.y) && p.x < a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y) {
            inside = !inside;
        }
    }
    inside
}

/// Whether the closed segments p1–p2 and q1–q2 share a point, touching ends included.
pub fn segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
    let d1 = side(q1, q2, p1);
    let d2 = side(q1, q2, p2);
    let d3 = side(p1, p2, q1);
    let d4 = side(p1, p2, q2);
    let opposite = |u: f32, v: f32| (u > 0.0 && v < 0.0) || (u < 0.0 && v > 0.0);
    if opposite(d1, d2) && opposite(d3, d4) {
        return true;
    }
    // A zero side means collinear: then they meet only if that end lies within the other segment.
    (d1 == 0.0 && within_box(p1, q1, q2))
        || (d2 == 0.0 && within_box(p2, q1, q2))
        || (d3 == 0.0 && within_box(q1, p1, p2))
        || (d4 == 0.0 && within_box(q2, p1, p2))
}

/// p lies in the bounding box of a–b; for p collinear with a–b, that means on the segment.
fn within_box(p: Point, a: Point, b: Point) -> bool {
    p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
}

/// Signed area by the shoelace formula, in f64 so that a thin but real polygon does not round
/// to zero.
pub fn polygon_area(polygon: &[Point]) -> f64 {
    let twice: f64 = polygon
        .iter()
        .zip(polygon.iter().cycle().skip(1))
        .map(|(a, b)| f64::from(a.x) * f64::from(b.y) - f64::from(b.x) * f64::from(a.y))
        .sum();
    twice / 2.0
}

/// A usable polygon has at least 3 points, all finite and inside the frame, enclosing some
/// area. `owner` names it in the error ("zone `driveway`"). Reports the first problem only:
/// after a bad point the area means little.
pub fn validate_polygon(owner: &str, polygon: &[Point]) -> Result<(), RulesError> {
    if polygon.len() < 3 {
        return Err(RulesError::TooFewPoints { owner: owner.to_string(), got: polygon.len() });
    }
    validate_points(owner, polygon)?;
    if polygon_area(polygon).abs() < MIN_AREA {
        return Err(RulesError::ZeroArea { owner: owner.to_string() });
    }
    Ok(())
}

/// Every point finite and within the frame.
pub(crate) fn validate_points(owner: &str, points: &[Point]) -> Result<(), RulesError> {
    for (index, &p) in points.iter().enumerate() {
        let (owner, x, y) = (owner.to_string(), p.x, p.y);
        if !p.is_finite() {
            return Err(RulesError::NotFinite { owner, index, x, y });
        }
        if !p.in_unit_square() {
            return Err(RulesError::OutsideFrame { owner, index, x, y });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poly(points: &[[f32; 2]]) -> Vec<Point> {
        points.iter().copied().map(Point::from).collect()
    }

    fn p(x: f32, y: f32) -> Point {
        Point::new(x, y)
    }

    #[test]
    fn point_in_square() {
        let sq = poly(&[[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]);
        assert!(point_in_polygon(p(0.4, 0.4), &sq));
        assert!(!point_in_polygon(p(0.1, 0.4), &sq));
        assert!(!point_in_polygon(p(0.7, 0.4), &sq));
        assert!(!point_in_polygon(p(0.4, 0.1), &sq));
        assert!(!point_in_polygon(p(0.4, 0.7), &sq));
    }

    #[test]
    fn point_in_concave_polygon() {
        // A U shape: the notch between the arms is outside.
        let u = poly(&[[0.0, 0.0], [0.3, 0.0], [0.3, 0.6], [0.6, 0.6], [0.6, 0.0], [0.9, 0.0], [0.9, 0.9], [0.0, 0.9]]);
        assert!(point_in_polygon(p(0.15, 0.3), &u));
        assert!(point_in_polygon(p(0.75, 0.3), &u));
        assert!(!point_in_polygon(p(0.45, 0.3), &u));
        assert!(point_in_polygon(p(0.45, 0.8), &u));
        // On the bottom edge of the notch: the boundary, so inside.
        assert!(point_in_polygon(p(0.45, 0.6), &u));
    }

    #[test]
    fn ray_through_a_vertex_counts_once() {
        // A diamond: the horizontal through the centre passes through the left and right vertices.
        let diamond = poly(&[[0.5, 0.1], [0.9, 0.5], [0.5, 0.9], [0.1, 0.5]]);
        assert!(point_in_polygon(p(0.5, 0.5), &diamond));
        assert!(!point_in_polygon(p(0.05, 0.5), &diamond));
        assert!(!point_in_polygon(p(0.95, 0.5), &diamond));
    }

    #[test]
    fn edges_and_vertices_are_inside() {
        let sq = poly(&[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
        assert!(point_in_polygon(p(0.5, 1.0), &sq)); // bottom edge: an object cut off by the frame
        assert!(point_in_polygon(p(0.5, 0.5), &sq)); // top edge
        assert!(point_in_polygon(p(0.0, 0.7), &sq)); // left edge
        assert!(point_in_polygon(p(1.0, 1.0), &sq)); // vertex
        assert!(!point_in_polygon(p(0.5, 0.4999), &sq));
    }

    #[test]
    fn self_intersecting_polygon_is_even_odd() {
        // A bow tie: the two triangles are inside, the region outside both is not.
        let bow = poly(&[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]);
        assert!(point_in_polygon(p(0.1, 0.5), &bow));
        assert!(point_in_polygon(p(0.9, 0.5), &bow));
        assert!(!point_in_polygon(p(0.5, 0.1), &bow));
    }

    #[test]
    fn degenerate_inputs_are_outside() {
        assert!(!point_in_polygon(p(0.5, 0.5), &poly(&[[0.0, 0.0], [1.0, 1.0]])));
        let sq = poly(&[[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]);
        assert!(!point_in_polygon(p(f32::NAN, 0.4), &sq));
    }

    #[test]
    fn reference_point_is_bottom_centre() {
        let frame = FrameSize { width: 200, height: 100 };
        assert_eq!(reference_point([20.0, 10.0, 60.0, 50.0], frame), Some(p(0.2, 0.5)));
        assert_eq!(reference_point([0.0, 0.0, 10.0, 10.0], FrameSize { width: 0, height: 10 }), None);
        assert_eq!(reference_point([f32::NAN, 0.0, 10.0, 10.0], frame), None);
    }

    #[test]
    fn side_sign_in_image_coordinates() {
        // Walking down the image: the right half of the picture is on the walker's left (< 0).
        let (a, b) = (p(0.5, 0.0), p(0.5, 1.0));
        assert!(side(a, b, p(0.8, 0.5)) < 0.0);
        assert!(side(a, b, p(0.2, 0.5)) > 0.0);
        assert_eq!(side(a, b, p(0.5, 0.3)), 0.0);
        // Walking right along the image: the top of the picture is on the walker's left.
        let (a, b) = (p(0.0, 0.5), p(1.0, 0.5));
        assert!(side(a, b, p(0.5, 0.2)) < 0.0);
        assert!(side(a, b, p(0.5, 0.8)) > 0.0);
    }

    #[test]
    fn segment_intersection() {
        let (a, b) = (p(0.5, 0.2), p(0.5, 0.8));
        assert!(segments_intersect(p(0.2, 0.5), p(0.8, 0.5), a, b));
        assert!(!segments_intersect(p(0.2, 0.9), p(0.8, 0.9), a, b)); // passes below the end
        assert!(!segments_intersect(p(0.2, 0.5), p(0.4, 0.5), a, b)); // stops short
        assert!(segments_intersect(p(0.2, 0.8), p(0.8, 0.8), a, b)); // touches the end
        assert!(segments_intersect(p(0.5, 0.5), p(0.8, 0.5), a, b)); // starts on it
        assert!(segments_intersect(p(0.5, 0.7), p(0.5, 0.9), a, b)); // collinear overlap
        assert!(!segments_intersect(p(0.5, 0.85), p(0.5, 0.9), a, b)); // collinear, apart
    }

    #[test]
    fn distance_to_segment_clamps_to_the_ends() {
        let (a, b) = (p(0.0, 0.0), p(1.0, 0.0));
        assert!((distance_to_segment(p(0.5, 0.3), a, b) - 0.3).abs() < 1e-6);
        assert!((distance_to_segment(p(1.3, 0.4), a, b) - 0.5).abs() < 1e-6);
        assert!((distance_to_segment(p(0.3, 0.4), a, a) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn polygon_validation() {
        let ok = poly(&[[0.1, 0.5], [0.6, 0.5], [0.6, 1.0], [0.1, 1.0]]);
        assert_eq!(validate_polygon("zone `driveway`", &ok), Ok(()));
        let err = |points: &[[f32; 2]]| validate_polygon("zone `driveway`", &poly(points)).err().map(|e| e.to_string());
        assert_eq!(
            err(&[[0.1, 0.5], [0.6, 0.5]]).as_deref(),
            Some("zone `driveway`: polygon needs at least 3 points, got 2")
        );
        assert_eq!(
            err(&[[0.1, 0.5], [1.5, 0.5], [0.6, 1.0]]).as_deref(),
            Some(
                "zone `driveway`: point 1 [1.5, 0.5] is outside the frame; coordinates are \
                 normalised, each between 0 and 1"
            )
        );
        assert!(matches!(
            validate_polygon("z", &poly(&[[0.1, f32::NAN], [0.6, 0.5], [0.6, 1.0]])),
            Err(RulesError::NotFinite { index: 0, .. })
        ));
        assert!(matches!(
            validate_polygon("z", &poly(&[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]])),
            Err(RulesError::ZeroArea { .. })
        ));
        assert!(matches!(
            validate_polygon("z", &poly(&[[0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [0.1, 0.1]])),
            Err(RulesError::ZeroArea { .. })
        ));
    }
}
