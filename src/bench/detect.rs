//! `lookout bench detect [IMAGE...]`: per image, `lookout detect`'s pre-processing, inference
//! and post-processing, against a bare `session.run` loop on the same input.

use std::path::PathBuf;
use std::time::Instant;

use super::{BenchError, bare_median, median, ms, read_image, some_images};
use crate::detect::{Detector, DetectorOptions};

pub fn detect(opts: &DetectorOptions, iterations: usize, images: &[PathBuf]) -> Result<(), BenchError> {
    let mut det = Detector::load(opts)?;
    let images = some_images(images)?;
    println!(
        "lookout bench detect: {} iterations per image, provider {}, model {}",
        iterations,
        det.provider(),
        opts.model.display()
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}",
        "image", "pre ms", "infer ms", "post ms", "total ms", "bare ms", "ratio"
    );
    for path in &images {
        let img = read_image(path)?;
        // Warm up, then interleave the two loops so both see the same machine load.
        for _ in 0..3 {
            let _ = det.detect_image(&img);
        }
        let (mut pre, mut inf, mut post, mut total, mut bare) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..iterations {
            let s = Instant::now();
            let (_, t) =
                det.detect_image(&img).map_err(|source| BenchError::Inference { path: path.clone(), source })?;
            total.push(s.elapsed());
            pre.push(t.pre);
            inf.push(t.infer);
            post.push(t.post);
            bare.push(bare_median(&mut det, 1)?);
        }
        let (total, bare) = (median(total), median(bare));
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        println!(
            "{:<20} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>6.2}x",
            name,
            ms(median(pre)),
            ms(median(inf)),
            ms(median(post)),
            ms(total),
            ms(bare),
            total.as_secs_f64() / bare.as_secs_f64().max(1e-9)
        );
    }
    println!("ratio = lookout detect total / bare session.run on the same input (1.00x = no overhead)");
    Ok(())
}
