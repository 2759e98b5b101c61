//! Constant-velocity Kalman filter for one box, in seconds. Pure.
//!
//! State `[cx, cy, a, h, vcx, vcy, va, vh]`: box centre, aspect ratio w/h, height, and their
//! rates of change **per second**. The measurement is `[cx, cy, a, h]`. This is ByteTrack's
//! (and DeepSORT's) filter with its per-frame constants re-expressed in time:
//!
//! - ByteTrack's noise is tuned per frame at MOT17's ~30 fps, so one reference frame is
//!   [`REFERENCE_FRAME_SECONDS`] = 1/30 s.
//! - Process noise is a random walk: its variance grows linearly with elapsed time, so a step
//!   of `dt` adds `dt / REFERENCE_FRAME_SECONDS` reference frames' worth of variance. Two
//!   predictions of 1/30 s then add the same uncertainty as one of 2/30 s, and a 5 fps camera's
//!   filter grows exactly as uncertain between frames as a 30 fps one does over the same time.
//! - Velocity noise in px/frame becomes px/s by multiplying by the reference rate (30).
//! - Measurement noise is per measurement, so it does not depend on `dt`.
//!
//! Noise scales with the box height (ByteTrack's `std_weight_position` 1/20 and
//! `std_weight_velocity` 1/160): a 300 px person moves and jitters more pixels than a 30 px one.

// Indexed loops here mirror the matrix algebra they implement; iterator chains over 8×8
// arrays would hide which block of F, P or K each line touches.
#![allow(clippy::needless_range_loop)]

/// Duration of one frame at the rate ByteTrack's noise constants were tuned for (MOT17, 30 fps).
pub const REFERENCE_FRAME_SECONDS: f64 = 1.0 / 30.0;
/// ByteTrack's `_std_weight_position`: position noise as a fraction of the box height.
pub const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
/// ByteTrack's `_std_weight_velocity`: velocity noise (per reference frame) per unit height.
pub const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;
/// Heights below this (pixels) are treated as this in noise terms and clamped in the state:
/// noise proportional to a zero height would make the covariance singular.
pub const MIN_HEIGHT: f64 = 1.0;
/// Aspect ratios are kept within [1/MAX_ASPECT, MAX_ASPECT] so a runaway aspect velocity
/// cannot produce an infinite or zero-width box.
const MAX_ASPECT: f64 = 1e3;
/// Largest coordinate magnitude kept: a box flung this far by velocity is nonsense, and
/// bounding it keeps f32 output finite.
const MAX_COORD: f64 = 1e7;

const FPS_REF: f64 = 1.0 / REFERENCE_FRAME_SECONDS;

/// One box's filter state.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanBox {
    mean: [f64; 8],
    cov: [[f64; 8]; 8],
}

/// `[cx, cy, a, h]` from an x1,y1,x2,y2 box; `None` for non-finite or empty boxes, which
/// carry no usable measurement.
pub fn measure(bbox: [f32; 4]) -> Option<[f64; 4]> {
    let [x1, y1, x2, y2] = bbox.map(f64::from);
    let (w, h) = (x2 - x1, y2 - y1);
    let ok = [x1, y1, x2, y2].iter().all(|v| v.is_finite()) && w > 0.0 && h > 0.0;
    ok.then(|| [(x1 + x2) / 2.0, (y1 + y2) / 2.0, w / h, h])
}

impl KalmanBox {
    /// Start a track at `bbox`, with zero velocity and ByteTrack's initial uncertainty.
    /// `None` when the box is degenerate (see [`measure`]).
    pub fn new(bbox: [f32; 4]) -> Option<KalmanBox> {
        measure(bbox).map(Self::from_measurement)
    }

    fn from_measurement(z: [f64; 4]) -> KalmanBox {
        let h = z[3].max(MIN_HEIGHT);
        let (wp, wv) = (STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h * FPS_REF);
        let std = [2.0 * wp, 2.0 * wp, 1e-2, 2.0 * wp, 10.0 * wv, 10.0 * wv, 1e-5 * FPS_REF, 10.0 * wv];
        let mut cov = [[0.0; 8]; 8];
        for i in 0..8 {
            cov[i][i] = std[i] * std[i];
        }
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&z);
        let mut k = KalmanBox { mean, cov };
        k.clamp();
        k
    }

    /// Advance the state by `dt` seconds. Non-finite or negative `dt` is treated as 0.
    pub fn predict(&mut self, dt: f64) {
        let dt = if dt.is_finite() && dt > 0.0 { dt } else { 0.0 };
        if dt == 0.0 {
            return;
        }
        // mean = F mean, with F = [[I, dt I], [0, I]].
        for i in 0..4 {
            self.mean[i] += dt * self.mean[i + 4];
        }
        // cov = F cov Fᵀ: rows then columns, exploiting F's block structure.
        let p = &mut self.cov;
        for i in 0..4 {
            for j in 0..8 {
                p[i][j] += dt * p[i + 4][j];
            }
        }
        for row in p.iter_mut() {
            for j in 0..4 {
                row[j] += dt * row[j + 4];
            }
        }
        // + Q(dt): ByteTrack's per-frame variances times the number of reference frames.
        let h = self.mean[3].max(MIN_HEIGHT);
        let frames = dt / REFERENCE_FRAME_SECONDS;
        let (wp, wv) = (STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h * FPS_REF);
        let std = [wp, wp, 1e-2, wp, wv, wv, 1e-5 * FPS_REF, wv];
        for i in 0..8 {
            p[i][i] += frames * std[i] * std[i];
        }
        self.clamp();
    }

    /// Correct the state with a measured box. A degenerate box is ignored (the prediction
    /// stands); a numerically broken correction restarts the filter at the measurement, since
    /// a fresh track beats a NaN one.
    pub fn update(&mut self, bbox: [f32; 4]) {
        let Some(z) = measure(bbox) else { return };
        let h = self.mean[3].max(MIN_HEIGHT);
        let wp = STD_WEIGHT_POSITION * h;
        let r = [wp * wp, wp * wp, 1e-1 * 1e-1, wp * wp];
        // S = H P Hᵀ + R: the top-left 4×4 block of P plus measurement noise.
        let mut s = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.cov[i][j];
            }
            s[i][i] += r[i];
        }
        let Some(chol) = cholesky4(&s) else {
            *self = Self::from_measurement(z);
            return;
        };
        // Kᵀ = S⁻¹ (H P): solve column by column (P symmetric, so H P = P's first four rows).
        let mut kt = [[0.0; 8]; 4];
        for j in 0..8 {
            let col = chol_solve4(&chol, [self.cov[0][j], self.cov[1][j], self.cov[2][j], self.cov[3][j]]);
            for i in 0..4 {
                kt[i][j] = col[i];
            }
        }
        let innovation = [z[0] - self.mean[0], z[1] - self.mean[1], z[2] - self.mean[2], z[3] - self.mean[3]];
        let mut new = self.clone();
        for j in 0..8 {
            new.mean[j] += (0..4).map(|i| kt[i][j] * innovation[i]).sum::<f64>();
        }
        // P -= K S Kᵀ = K (H P); then re-symmetrise against rounding drift.
        for a in 0..8 {
            for b in 0..8 {
                new.cov[a][b] -= (0..4).map(|i| kt[i][a] * self.cov[i][b]).sum::<f64>();
            }
        }
        for a in 0..8 {
            for b in 0..a {
                let v = 0.5 * (new.cov[a][b] + new.cov[b][a]);
                new.cov[a][b] = v;
                new.cov[b][a] = v;
            }
        }
        let finite = new.mean.iter().chain(new.cov.iter().flatten()).all(|v| v.is_finite());
        if finite {
            *self = new;
            self.clamp();
        } else {
            *self = Self::from_measurement(z);
        }
    }

    /// ByteTrack zeroes the height velocity of tracks it is not observing, so a lost box keeps
    /// its size instead of shrinking or inflating for the whole gap.
    pub fn freeze_height(&mut self) {
        self.mean[7] = 0.0;
    }

    /// The state as an x1,y1,x2,y2 box. Always finite.
    pub fn bbox(&self) -> [f32; 4] {
        let [cx, cy, a, h] = [self.mean[0], self.mean[1], self.mean[2], self.mean[3]];
        let w = a * h;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0].map(|v| v as f32)
    }

    /// Velocity of the box centre, pixels per second.
    pub fn velocity(&self) -> [f32; 2] {
        [self.mean[4] as f32, self.mean[5] as f32]
    }

    /// Keep the state inside the range where boxes are meaningful and f32-representable.
    /// A non-finite component (only possible from absurd inputs) is zeroed.
    fn clamp(&mut self) {
        for v in self.mean.iter_mut() {
            if !v.is_finite() {
                *v = 0.0;
            }
            *v = v.clamp(-MAX_COORD, MAX_COORD);
        }
        self.mean[2] = self.mean[2].clamp(1.0 / MAX_ASPECT, MAX_ASPECT);
        self.mean[3] = self.mean[3].clamp(MIN_HEIGHT, MAX_COORD);
    }
}

/// Cholesky factor (lower) of a symmetric positive definite 4×4; `None` if not SPD.
fn cholesky4(s: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum = s[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if !(sum > 0.0 && sum.is_finite()) {
                    return None;
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solve `L Lᵀ x = b` for a Cholesky factor `L`.
fn chol_solve4(l: &[[f64; 4]; 4], b: [f64; 4]) -> [f64; 4] {
    let mut y = [0.0; 4];
    for i in 0..4 {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        x[i] = (y[i] - (i + 1..4).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40×80 box whose centre is at (x, y).
    fn at(x: f64, y: f64) -> [f32; 4] {
        [(x - 20.0) as f32, (y - 40.0) as f32, (x + 20.0) as f32, (y + 40.0) as f32]
    }

    /// Track a box moving at (vx, vy) px/s for `seconds` at `fps`; returns the filter.
    fn run(fps: f64, seconds: f64, vx: f64, vy: f64) -> KalmanBox {
        let dt = 1.0 / fps;
        let mut k = KalmanBox::new(at(100.0, 200.0)).unwrap();
        let frames = (seconds * fps).round() as usize;
        for n in 1..=frames {
            let t = n as f64 * dt;
            k.predict(dt);
            k.update(at(100.0 + vx * t, 200.0 + vy * t));
        }
        k
    }

    #[test]
    fn predicts_constant_velocity() {
        let mut k = run(10.0, 3.0, 50.0, -20.0);
        let v = k.velocity();
        assert!((v[0] - 50.0).abs() < 1.0 && (v[1] + 20.0).abs() < 1.0, "{v:?}");
        // Half a second ahead, unobserved.
        k.predict(0.5);
        let want = at(100.0 + 50.0 * 3.5, 200.0 - 20.0 * 3.5);
        let got = k.bbox();
        for i in 0..4 {
            assert!((got[i] - want[i]).abs() < 1.0, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn velocity_is_per_second_whatever_the_rate() {
        for (vx, vy) in [(60.0, 0.0), (-150.0, 40.0)] {
            let slow = run(5.0, 4.0, vx, vy).velocity();
            let fast = run(25.0, 4.0, vx, vy).velocity();
            for i in 0..2 {
                assert!((slow[i] - fast[i]).abs() < 2.0, "5 fps {slow:?} vs 25 fps {fast:?}");
            }
            assert!((fast[0] - vx as f32).abs() < 2.0 && (fast[1] - vy as f32).abs() < 2.0);
        }
    }

    #[test]
    fn split_predictions_add_up() {
        // Random-walk noise: two half steps leave the same mean and covariance as one full one.
        let mut a = run(10.0, 1.0, 30.0, 10.0);
        let mut b = a.clone();
        a.predict(0.2);
        b.predict(0.1);
        b.predict(0.1);
        for i in 0..8 {
            assert!((a.mean[i] - b.mean[i]).abs() < 1e-9);
        }
        // Cross terms differ by the dt² part of the noise integration; variances of positions
        // agree to well within the noise itself.
        assert!((a.cov[0][0] - b.cov[0][0]).abs() / a.cov[0][0] < 0.05);
    }

    #[test]
    fn degenerate_and_absurd_inputs_stay_finite() {
        assert!(KalmanBox::new([0.0, 0.0, 0.0, 10.0]).is_none());
        assert!(KalmanBox::new([0.0, 0.0, 10.0, f32::NAN]).is_none());
        assert!(KalmanBox::new([5.0, 5.0, 0.0, 0.0]).is_none());
        let mut k = KalmanBox::new(at(0.0, 0.0)).unwrap();
        k.update([0.0, 0.0, 10.0, 0.0]); // zero height: ignored
        k.update([f32::INFINITY, 0.0, 10.0, 10.0]);
        k.predict(f64::NAN);
        k.predict(-1.0);
        k.update([0.0, 0.0, 1e-6, 1e-6]); // tiny box
        k.update([-3e38, -3e38, 3e38, 3e38]); // huge box
        k.predict(1e12);
        k.update([0.0, 0.0, 10.0, 10.0]);
        assert!(k.bbox().iter().all(|v| v.is_finite()), "{:?}", k.bbox());
        assert!(k.velocity().iter().all(|v| v.is_finite()));
    }
}
