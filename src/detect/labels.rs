//! The 80 COCO class names, in the order YOLOX and NanoDet emit them.

pub const COCO: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Index of a label name, if the model knows it.
pub fn index_of(label: &str) -> Option<usize> {
    COCO.iter().position(|l| *l == label)
}

/// Label names of a model loaded at run time (a manifest's `labels`), made `&'static` so a
/// [`super::Detection`] stays cheap to copy. Each distinct name is leaked once and reused, so
/// loading models again (a reload) costs nothing more.
pub fn intern(name: &str) -> &'static str {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    if let Some(l) = COCO.iter().find(|l| **l == name) {
        return l;
    }
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    // A poisoned lock only means another thread panicked mid-insert; the set is still valid.
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = names.get(name) {
        return l;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A model's class names, by class index: what `class` in a [`super::Detection`] means.
/// The default is COCO's 80, which YOLOX and NanoDet emit.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelTable(std::sync::Arc<[&'static str]>);

impl Default for LabelTable {
    fn default() -> LabelTable {
        LabelTable(COCO.to_vec().into())
    }
}

impl LabelTable {
    pub fn new(names: &[String]) -> LabelTable {
        LabelTable(names.iter().map(|n| intern(n)).collect::<Vec<_>>().into())
    }

    /// The name of class `class`, or "unknown" for an index the model does not have.
    pub fn name(&self, class: usize) -> &'static str {
        self.0.get(class).copied().unwrap_or("unknown")
    }

    pub fn index_of(&self, label: &str) -> Option<usize> {
        self.0.iter().position(|l| *l == label)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[&'static str] {
        &self.0
    }

    /// A few names for error messages: "person, bicycle, car, …".
    pub fn examples(&self) -> String {
        let mut s = self.0.iter().take(4).copied().collect::<Vec<_>>().join(", ");
        if self.0.len() > 4 {
            s.push_str(", …");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_reuses_one_copy() {
        let a = intern("forklift");
        let b = intern(&String::from("forklift"));
        assert!(std::ptr::eq(a, b), "one leaked copy per distinct name");
        assert_eq!(intern("person"), "person");
    }

    #[test]
    fn a_table_names_classes_and_unknown_indices() {
        let t = LabelTable::new(&["forklift".into(), "pallet".into()]);
        assert_eq!(t.name(1), "pallet");
        assert_eq!(t.name(7), "unknown");
        assert_eq!(t.index_of("forklift"), Some(0));
        assert_eq!(LabelTable::default().len(), 80);
    }
}
