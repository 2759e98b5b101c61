#!/usr/bin/env python3
"""INT8 (QDQ) variant of a model manifest's model with NNCF post-training quantization, the
recipe that keeps most of YOLOX-Nano's detections (docs/performance.md, "NNCF: an INT8 variant
that keeps its accuracy"). Run through `scripts/quantize --recipe nncf`, which sets up its venv
(.lookout/venv-nncf, pinned in scripts/nncf.requirements.txt) and the calibration frames.

    nncf_quantize.py --manifest models/yolox_nano.toml --frames DIR [IMAGES...]

The recipe: opset raised to 13 (per-channel DequantizeLinear needs `axis`); preset MIXED
(symmetric int8 weights per channel, asymmetric activations, per channel at the depthwise
convolutions' inputs); the nodes after the last convolutions kept in float (the decode head: one
8-bit scale would not hold box offsets and 0..1 scores); fast bias correction (full bias
correction fails inside NNCF on this graph: docs/performance.md); calibration on the same inputs
as scripts/quantize's default recipe, pre-processed as the manifest says; then NNCF's int8
activations rewritten as uint8, which OpenVINO computes right. Writes
models/<name>_int8_nncf.onnx and models/<name>_int8_nncf.toml.
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_tools import calibration_files, head_nodes, load_manifest, preprocess, sha256  # noqa: E402


def set_activation_type(model, act_type):
    """Write the activations' Q/DQ zero points as uint8 (NNCF's int8 zero point z becomes z + 128)
    or back as int8 (as NNCF wrote them): the same grid and the same values either way (ORT's CPU provider gives the
    same detections), but OpenVINO 2025.4 and 2026.4 compute wrong results from the int8 form
    (docs/models.md, "INT8 on OpenVINO: a reproduction"). Weights stay symmetric int8. Returns how
    many zero points changed."""
    from onnx import numpy_helper

    src, dst, shift = (np.int8, np.uint8, 128) if act_type == "uint8" else (np.uint8, np.int8, -128)
    g = model.graph
    init = {i.name: i for i in g.initializer}
    weight_zps = {n.input[2] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in init and len(n.input) > 2}
    changed = set()
    for n in g.node:
        if n.op_type != "QuantizeLinear" or n.input[0] in init or len(n.input) < 3 or n.input[2] in changed:
            continue
        z = numpy_helper.to_array(init[n.input[2]])
        # NNCF's own uint8 quantizers (of non-negative tensors, zero point 0) stay as they are.
        if z.dtype != src or (src == np.uint8 and not z.any()):
            continue
        if n.input[2] in weight_zps:
            sys.exit(f"nncf_quantize: zero point {n.input[2]} is shared by an activation and a weight")
        init[n.input[2]].CopyFrom(numpy_helper.from_array((z.astype(np.int16) + shift).astype(dst), n.input[2]))
        changed.add(n.input[2])
    # The quantized tensors' recorded types would now contradict the Q/DQ nodes.
    q_out = {n.output[0] for n in g.node if n.op_type == "QuantizeLinear"}
    keep = [v for v in g.value_info if v.name not in q_out]
    del g.value_info[:]
    g.value_info.extend(keep)
    return len(changed)


def manifest_text(src_manifest, dst_name, digest, recipe):
    """The keys in a fixed order, the values from the fp32 source; `recipe`: the header's comment
    lines."""
    import tomllib

    with open(src_manifest, "rb") as f:
        m = tomllib.load(f)

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    def table(name):
        return [f"[{name}]"] + [f"{k} = {val(v)}" for k, v in m[name].items()]

    src_rel = os.path.basename(src_manifest)
    lines = [
        *recipe,
        f"# An INT8 variant of {src_rel} for accelerator providers (OpenVINO, TensorRT, QNN): it runs",
        "# at about half fp32's speed on ORT's CPU provider (docs/performance.md, \"NNCF: an INT8",
        "# variant that keeps its accuracy\").",
        f'file = "{dst_name}"',
        f'sha256 = "{digest}"',
        f"family = {val(m['family'])}",
        'precision = "int8"',
        f'variant_of = "{src_rel}"',
        "min_recall = 0.9",
        f"labels = {val(m['labels'])}",
        f"score_threshold = {val(m['score_threshold'])}",
        f"nms_iou = {val(m['nms_iou'])}",
        "",
        *table("input"),
        "",
        *table("output"),
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default="models/yolox_nano.toml")
    ap.add_argument("--frames", required=True, help="folder of PNG frames from the clips")
    ap.add_argument("--frame-step", type=int, default=10, help="use every Nth frame (as scripts/quantize)")
    ap.add_argument("--frame-offset", type=int, default=2, help="first frame used (as scripts/quantize)")
    ap.add_argument("--work", default=".lookout/quantize")
    ap.add_argument("--suffix", default="int8_nncf")
    ap.add_argument("--int8-activations", action="store_true",
                    help="keep NNCF's int8 activations (the form OpenVINO gets wrong; for scripts/openvino_int8_repro.py)")
    ap.add_argument("images", nargs="*", help="still images to calibrate on too")
    a = ap.parse_args()

    import onnx
    from onnx import version_converter
    import nncf
    import onnxruntime as ort

    manifest, src = load_manifest(a.manifest)
    inp = manifest["input"]
    files = calibration_files(a, "nncf_quantize")  # the same inputs as scripts/quantize
    print(f"nncf_quantize: {len(files)} calibration images, {inp['width']}x{inp['height']} {inp['resize']}", file=sys.stderr)

    model = onnx.load(src)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        model = version_converter.convert_version(model, 13)
        print(f"nncf_quantize: opset {opset} -> 13 (per-channel weights)", file=sys.stderr)
    stem = os.path.splitext(os.path.basename(a.manifest))[0]
    os.makedirs(a.work, exist_ok=True)
    up = os.path.join(a.work, f"{stem}_opset13.onnx")
    onnx.save(model, up)
    head = head_nodes(up)
    print(f"nncf_quantize: keeping {len(head)} head nodes in float", file=sys.stderr)

    def transform(f):
        return {inp["name"]: preprocess(np.asarray(Image.open(f).convert("RGB")), inp)}

    quantized = nncf.quantize(
        model,
        nncf.Dataset(files, transform),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(files),
        fast_bias_correction=True,
        ignored_scope=nncf.IgnoredScope(names=head),
    )
    if not a.int8_activations:
        n = set_activation_type(quantized, "uint8")
        print(f"nncf_quantize: {n} activation zero points int8 -> uint8 (+128)", file=sys.stderr)
    out_dir = os.path.dirname(a.manifest)
    dst_name = f"{stem}_{a.suffix}.onnx"
    dst = os.path.join(out_dir, dst_name)
    onnx.save(quantized, dst)
    toml = os.path.join(out_dir, f"{stem}_{a.suffix}.toml")
    recipe = [f"# Generated by scripts/quantize --recipe nncf; regenerate rather than edit. nncf {nncf.__version__},",
              f"# onnx {onnx.__version__}, onnxruntime {ort.__version__}: opset 13, preset MIXED, fast bias correction, head in",
              f"# float, {'int8' if a.int8_activations else 'uint8'} activations, {len(files)} calibration images."]
    with open(toml, "w") as f:
        f.write(manifest_text(a.manifest, dst_name, sha256(dst), recipe))
    print(f"nncf_quantize: wrote {dst} and {toml}", file=sys.stderr)


if __name__ == "__main__":
    main()
