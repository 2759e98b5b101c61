//! A model variant (INT8, fp16, a smaller input) is checked against the fp32 model it was made
//! from before it runs: a runtime can get a quantized graph silently wrong (OpenVINO's CPU
//! plugin on NNCF's INT8 YOLOX-Nano returns top scores of 0.03-0.1 where fp32 gives 0.88,
//! docs/models.md), and a detector that sees nothing looks like a quiet street.
//!
//! The check runs the variant, on the provider it was loaded on, and its source, on the CPU
//! provider, over the check images (the sample images beside the models), and counts how many
//! of the source's detections the variant finds: same label, IoU >= [`MATCH_IOU`], both sides
//! at the source's score threshold. Below the variant's `min_recall` it is refused;
//! [`super::Detector::load`] then runs the source instead, or fails, as its options say.
//!
//! [`tally`] and [`verdict`] are the pure core; [`check`] reads the images and runs the two.

use std::path::{Path, PathBuf};

use super::compare::compare;
use super::{Detection, Detector, DetectorOptions, ProviderSpec};
use crate::stats::VariantCheck;

/// The IoU at which a variant's box counts as the source's (as `lookout bench models`).
pub const MATCH_IOU: f32 = 0.5;

/// Why a variant does not run.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// It was checked and found too few of the source's detections.
    Disagrees(VariantCheck),
    /// It could not be checked (no check images, the source would not load): never run unchecked.
    Unchecked(String),
}

/// (the source's detections, how many of them the variant found), over all images; each
/// side's detections below `min_score` left out.
pub fn tally(source: &[Vec<Detection>], variant: &[Vec<Detection>], min_score: f32) -> (usize, usize) {
    let keep = |d: &[Detection]| -> Vec<Detection> { d.iter().filter(|x| x.score >= min_score).cloned().collect() };
    source.iter().zip(variant).fold((0, 0), |(wanted, found), (s, v)| {
        let (s, v) = (keep(s), keep(v));
        (wanted + s.len(), found + compare(&s, &v, MATCH_IOU).matched())
    })
}

/// The check's figures and outcome. With nothing to find (the source saw nothing on any image),
/// the check proves nothing and the variant is refused.
pub fn verdict(names: (&str, &str), provider: &str, images: usize, counts: (usize, usize), min: f64) -> VariantCheck {
    let (wanted, found) = counts;
    let recall = if wanted == 0 { 0.0 } else { found as f64 / wanted as f64 };
    VariantCheck {
        variant: names.0.to_string(),
        source: names.1.to_string(),
        provider: provider.to_string(),
        images,
        source_detections: wanted,
        found,
        recall,
        min_recall: min,
        accepted: wanted > 0 && recall >= min,
    }
}

/// The `.jpg`, `.jpeg` and `.png` files in `dir`, sorted by name.
pub fn check_images(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read the check images in {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(format!("no check images (.jpg, .png) in {}", dir.display()));
    }
    Ok(found)
}

/// Check `variant` (loaded on `provider`) against the fp32 manifest `source` on the CPU provider.
pub fn check(variant: &mut Detector, source: &Path, opts: &DetectorOptions) -> Result<VariantCheck, Refusal> {
    let unchecked = |why: String| Refusal::Unchecked(why);
    let paths = check_images(&variant.model().check_images).map_err(unchecked)?;
    let images: Vec<image::RgbImage> = paths
        .iter()
        .map(|p| image::open(p).map(|i| i.to_rgb8()).map_err(|e| format!("check image {}: {e}", p.display())))
        .collect::<Result<_, _>>()
        .map_err(unchecked)?;
    let source_opts = DetectorOptions {
        model: source.to_path_buf(),
        providers: vec![ProviderSpec::cpu()],
        fallback: false,
        score_threshold: None,
        nms_iou: None,
        max_batch: 1,
        check_variant: false,
        ..opts.clone()
    };
    let mut reference = Detector::load(&source_opts)
        .map_err(|e| unchecked(format!("the source model {} did not load: {e}", source.display())))?;
    let min_score = reference.score_threshold();
    let run = |d: &mut Detector| -> Result<Vec<Vec<Detection>>, Refusal> {
        images
            .iter()
            .map(|img| {
                d.detect_image(img).map(|(dets, _)| dets).map_err(|e| unchecked(format!("a check run failed: {e}")))
            })
            .collect()
    };
    let want = run(&mut reference)?;
    let got = run(variant)?;
    let names = (variant.model().name.clone(), reference.model().name.clone());
    let check = verdict(
        (&names.0, &names.1),
        &variant.provider_spec().label(),
        images.len(),
        tally(&want, &got, min_score),
        variant.model().min_recall,
    );
    if check.accepted { Ok(check) } else { Err(Refusal::Disagrees(check)) }
}

/// One line for logs and `lookout check --probe`.
pub fn describe(c: &VariantCheck) -> String {
    format!(
        "{} on {} found {} of {}'s {} detections on {} check images (recall {:.2}, min_recall {:.2}): {}",
        c.variant,
        c.provider,
        c.found,
        c.source,
        c.source_detections,
        c.images,
        c.recall,
        c.min_recall,
        if c.accepted { "accepted" } else { "refused" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &'static str, score: f32, x: f32) -> Detection {
        Detection { class: 0, label, score, bbox: [x, 0.0, x + 10.0, 10.0] }
    }

    #[test]
    fn recall_counts_the_sources_detections_found_over_every_image() {
        let source = vec![vec![det("car", 0.9, 0.0), det("person", 0.8, 50.0)], vec![det("dog", 0.7, 0.0)]];
        // The car found, the person under the threshold, the dog found with a shifted box.
        let variant = vec![vec![det("car", 0.85, 1.0), det("person", 0.2, 50.0)], vec![det("dog", 0.6, 2.0)]];
        assert_eq!(tally(&source, &variant, 0.3), (3, 2));
        let c = verdict(("v", "s"), "openvino:CPU", 2, (3, 2), 0.9);
        assert!(!c.accepted && (c.recall - 2.0 / 3.0).abs() < 1e-9, "{c:?}");
        assert!(
            describe(&c)
                .contains("found 2 of s's 3 detections on 2 check images (recall 0.67, min_recall 0.90): refused")
        );
        // The source's own weak detections are left out too: they are not the variant's to find.
        let weak = vec![vec![det("car", 0.9, 0.0), det("cat", 0.1, 80.0)]];
        assert_eq!(tally(&weak, &[vec![det("car", 0.9, 0.0)]], 0.3), (1, 1));
    }

    #[test]
    fn the_threshold_is_inclusive_and_nothing_to_find_is_refused() {
        assert!(verdict(("v", "s"), "cpu", 4, (10, 9), 0.9).accepted);
        assert!(!verdict(("v", "s"), "cpu", 4, (10, 8), 0.9).accepted);
        assert!(!verdict(("v", "s"), "cpu", 4, (0, 0), 0.9).accepted);
    }

    #[test]
    fn check_images_lists_pictures_only_and_says_when_there_are_none() {
        let dir = std::env::temp_dir().join(format!("lookout-variant-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(check_images(&dir).unwrap_err().contains("no check images"));
        for f in ["b.png", "a.JPG", "notes.txt"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let found: Vec<String> =
            check_images(&dir).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(found, ["a.JPG", "b.png"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(check_images(&dir).unwrap_err().contains("cannot read the check images"));
    }
}
