//! Where a source frame goes in a model's input: the input's size and placement ([`Geometry`])
//! and the fit of one frame into it ([`Letterbox`]). Pure. The source scales each frame to this
//! fit in the decoder, and the detector maps its boxes back with it, so it sits here, below both.

/// How a frame is placed in the model input. Models are trained with one of these; the
/// manifest's `input.resize` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Aspect kept, pasted at the top-left of the canvas (YOLOX).
    TopLeft,
    /// Aspect kept, centred (Ultralytics, most YOLO exports).
    Center,
    /// Resized to the input size, aspect not kept (NanoDet's demo).
    Stretch,
}

/// The model input's size and how frames are placed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub placement: Placement,
}

impl Geometry {
    /// A square input with YOLOX's top-left placement.
    pub fn square(size: u32) -> Geometry {
        Geometry { width: size, height: size, placement: Placement::TopLeft }
    }
}

/// How a source frame of `src_w` x `src_h` fits into a model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Source pixels to model pixels, per axis (equal unless stretched).
    pub scale_x: f32,
    pub scale_y: f32,
    /// The resized image's size, and where its top-left corner sits on the canvas.
    pub scaled_w: u32,
    pub scaled_h: u32,
    pub offset_x: u32,
    pub offset_y: u32,
    /// The canvas (model input) size.
    pub width: u32,
    pub height: u32,
}

impl Letterbox {
    /// YOLOX's recipe on a square input: `r = min(S/h, S/w)`, resized to `(int(w*r), int(h*r))`,
    /// at the top-left.
    pub fn fit(src_w: u32, src_h: u32, size: u32) -> Letterbox {
        Letterbox::place(src_w, src_h, Geometry::square(size))
    }

    /// Place a source frame in `g`. At least one pixel, so that a degenerate 1 x 5000 strip
    /// still produces an input.
    pub fn place(src_w: u32, src_h: u32, g: Geometry) -> Letterbox {
        let (sw, sh) = (src_w.max(1) as f32, src_h.max(1) as f32);
        let (gw, gh) = (g.width.max(1), g.height.max(1));
        if g.placement == Placement::Stretch {
            return Letterbox {
                scale_x: gw as f32 / sw,
                scale_y: gh as f32 / sh,
                scaled_w: gw,
                scaled_h: gh,
                offset_x: 0,
                offset_y: 0,
                width: gw,
                height: gh,
            };
        }
        let scale = (gh as f32 / sh).min(gw as f32 / sw);
        let scaled_w = ((sw * scale) as u32).clamp(1, gw);
        let scaled_h = ((sh * scale) as u32).clamp(1, gh);
        let (offset_x, offset_y) = match g.placement {
            Placement::Center => ((gw - scaled_w) / 2, (gh - scaled_h) / 2),
            _ => (0, 0),
        };
        Letterbox { scale_x: scale, scale_y: scale, scaled_w, scaled_h, offset_x, offset_y, width: gw, height: gh }
    }

    /// Map a box from model-input pixels back to source pixels, clipped to the source frame.
    pub fn unmap(&self, b: [f32; 4], src_w: u32, src_h: u32) -> [f32; 4] {
        let (w, h) = (src_w as f32, src_h as f32);
        let (ox, oy) = (self.offset_x as f32, self.offset_y as f32);
        [
            ((b[0] - ox) / self.scale_x).clamp(0.0, w),
            ((b[1] - oy) / self.scale_y).clamp(0.0, h),
            ((b[2] - ox) / self.scale_x).clamp(0.0, w),
            ((b[3] - oy) / self.scale_y).clamp(0.0, h),
        ]
    }
}
