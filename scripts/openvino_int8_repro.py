#!/usr/bin/env python3
"""OpenVINO's CPU plugin computes wrong results for a QDQ model whose activations are int8 with a
non-zero zero point (the form NNCF's ONNX backend writes) where two such tensors are concatenated
before a convolution. The same grid written as uint8 (zero point + 128) is computed correctly.
docs/models.md, "INT8 on OpenVINO: a reproduction", has the figures.

    python3 -m venv /tmp/ov-repro && /tmp/ov-repro/bin/pip install onnx==1.20.1 \\
        onnxruntime==1.31.1 openvino==2025.4.1 numpy==2.2.6 pillow==11.3.0
    /tmp/ov-repro/bin/python scripts/openvino_int8_repro.py              # 1. and 2.
    /tmp/ov-repro/bin/python scripts/openvino_int8_repro.py --bisect     # and 3.

1. A synthetic 7-node model: Q/DQ(int8) on two inputs -> Concat -> Conv (int8 weights). Needs
   nothing from the repository.
2. YOLOX-Nano's NNCF model (`scripts/quantize --recipe nncf`; its int8 form is rebuilt here from
   the uint8 one) on media/dog.jpg, letterboxed as models/yolox_nano.toml says: the top score
   (objectness x class) on ORT's CPU provider and on OpenVINO, with the OpenVINO options tried.
--time N: fp32, the uint8 form and the int8 form with LP_TRANSFORMS_MODE off, on OpenVINO at
   1 thread, interleaved, N runs each on the image (a ratio, not a benchmark: `lookout bench
   models` is that).
3. --bisect: each convolution's output, as the only output of the graph cut there, OpenVINO
   against ORT (graph optimisations off, so Q/DQ run as written); stops at the first wrong one.
The reference is ORT's CPU provider; "wrong" means a normalised RMS error above 0.05.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRONG = 0.05


def nrmse(got, ref):
    return float(np.sqrt(np.mean((got - ref) ** 2)) / (np.sqrt(np.mean(ref ** 2)) + 1e-12))


def ort_run(model_bytes, feeds, optimise=True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimise:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def ov_run(core, model_bytes, feeds, config=None):
    compiled = core.compile_model(core.read_model(model_bytes, b""), "CPU", config or {})
    return compiled(feeds)[0]


def synthetic(act_type, zero_point, concat=True):
    """x (and y) -> QuantizeLinear -> DequantizeLinear (-> Concat) -> Conv 1x1, per-channel int8
    weights through DequantizeLinear; opset 13, as NNCF writes it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c_in, c_out, hw = 16, 32, 32
    c_conv = 2 * c_in if concat else c_in
    np_type = {"int8": np.int8, "uint8": np.uint8}[act_type]
    init = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(zero_point, np_type), "z"),
        # 7-bit weights: without VNNI, int8 kernels (OpenVINO's and ORT's) may saturate full-range
        # u8 x s8 products; this keeps that rounding out of the comparison.
        numpy_helper.from_array(rng.integers(-63, 64, (c_out, c_conv, 1, 1)).astype(np.int8), "w_q"),
        numpy_helper.from_array((rng.random(c_out) * 0.01 + 0.001).astype(np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(c_out, np.int8), "w_z"),
        numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"),
    ]
    names = ["x", "y"] if concat else ["x"]
    nodes = []
    for n in names:
        nodes += [helper.make_node("QuantizeLinear", [n, "s", "z"], [n + "_q"]),
                  helper.make_node("DequantizeLinear", [n + "_q", "s", "z"], [n + "_dq"])]
    conv_in = "x_dq"
    if concat:
        nodes.append(helper.make_node("Concat", ["x_dq", "y_dq"], ["cat"], axis=1))
        conv_in = "cat"
    nodes += [helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=0),
              helper.make_node("Conv", [conv_in, "w", "b"], ["out"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c_in, hw, hw]) for n in names]
    graph = helper.make_graph(nodes, "qdq_concat_conv", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, c_out, hw, hw])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feeds = {n: (rng.random((1, c_in, hw, hw)) * 10 - 0.5).astype(np.float32) for n in names}
    return model.SerializeToString(), feeds


def top_score(out):
    o = out[0]
    return float((o[:, 4] * o[:, 5:].max(1)).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models/yolox_nano_int8_nncf.onnx"))
    ap.add_argument("--fp32", default=os.path.join(ROOT, "models/yolox_nano.onnx"))
    ap.add_argument("--manifest", default=os.path.join(ROOT, "models/yolox_nano.toml"))
    ap.add_argument("--image", default=os.path.join(ROOT, "media/dog.jpg"))
    ap.add_argument("--bisect", action="store_true")
    ap.add_argument("--time", type=int, metavar="N", help="also time N runs of each form on OpenVINO, 1 thread")
    a = ap.parse_args()

    import onnx
    import openvino as ov
    import onnxruntime as ort

    core = ov.Core()
    print(f"openvino {ov.__version__}, onnxruntime {ort.__version__}, CPU {core.get_property('CPU', 'FULL_DEVICE_NAME')}")

    print("\n1. synthetic Q/DQ -> Concat -> Conv (nrmse of OpenVINO against ORT; > 0.05 is wrong)")
    for act, zp, concat in [("int8", -116, True), ("uint8", 12, True), ("int8", 0, True), ("int8", -116, False)]:
        m, feeds = synthetic(act, zp, concat)
        e = nrmse(ov_run(core, m, feeds), ort_run(m, feeds, optimise=False))
        shape = "Concat -> Conv" if concat else "Conv, no Concat"
        print(f"   {act:5s} activations, zero point {zp:4d}, {shape:15s}: nrmse {e:.4f} {'WRONG' if e > WRONG else 'ok'}")

    if not os.path.exists(a.model):
        sys.exit(f"\n{a.model} is missing: run `scripts/quantize --recipe nncf` for parts 2 and 3")
    import tomllib
    from PIL import Image
    from model_tools import preprocess
    from nncf_quantize import set_activation_type

    with open(a.manifest, "rb") as f:
        inp = tomllib.load(f)["input"]
    x = {inp["name"]: preprocess(np.asarray(Image.open(a.image).convert("RGB")), inp)}
    forms = {}
    for act in ("int8", "uint8"):
        m = onnx.load(a.model)
        set_activation_type(m, act)
        forms[act] = m.SerializeToString()

    print(f"\n2. {os.path.relpath(a.model, ROOT)} on {os.path.relpath(a.image, ROOT)}: top score")
    with open(a.fp32, "rb") as f:
        fp32 = f.read()
    print(f"   fp32        ORT CPU {top_score(ort_run(fp32, x)):.4f}   OpenVINO {top_score(ov_run(core, fp32, x)):.4f}")
    for act, m in forms.items():
        print(f"   {act:5s} acts  ORT CPU {top_score(ort_run(m, x)):.4f}   OpenVINO {top_score(ov_run(core, m, x)):.4f}")
    print("   int8 activations on OpenVINO, with options:")
    for cfg in [{"INFERENCE_PRECISION_HINT": "f32"}, {"INFERENCE_PRECISION_HINT": "bf16"},
                {"EXECUTION_MODE_HINT": "ACCURACY"}, {"CPU_DENORMALS_OPTIMIZATION": True},
                {"ENABLE_CPU_PINNING": False}, {"INFERENCE_NUM_THREADS": 1},
                {"SNIPPETS_MODE": "DISABLE"}, {"LP_TRANSFORMS_MODE": False}]:
        try:
            print(f"     {str(cfg):40s} {top_score(ov_run(core, forms['int8'], x, cfg)):.4f}")
        except Exception as e:  # an option this OpenVINO does not know
            print(f"     {str(cfg):40s} refused: {str(e).splitlines()[0][:80]}")

    if a.time:
        import time

        runs = [("fp32", fp32, {}), ("uint8 activations", forms["uint8"], {}),
                ("int8 activations, LP_TRANSFORMS_MODE off", forms["int8"], {"LP_TRANSFORMS_MODE": False})]
        reqs = [core.compile_model(core.read_model(m, b""), "CPU", {"INFERENCE_NUM_THREADS": 1, **cfg}).create_infer_request()
                for _, m, cfg in runs]
        ms = [[] for _ in runs]
        for _ in range(a.time):
            for r, t in zip(reqs, ms):
                t0 = time.perf_counter()
                r.infer(list(x.values()))
                t.append((time.perf_counter() - t0) * 1e3)
        base = np.median(ms[0])
        print(f"\n   OpenVINO, 1 thread, median of {a.time} runs:")
        for (name, _, _), t in zip(runs, ms):
            print(f"     {name:42s} {np.median(t):6.2f} ms  {base / np.median(t):.2f}x fp32")

    if a.bisect:
        from onnx.utils import Extractor

        print("\n3. int8 activations: each convolution's output, OpenVINO against ORT (nrmse)")
        m = onnx.load_from_string(forms["int8"])
        ex = Extractor(m)
        prev = None
        for node in m.graph.node:
            if node.op_type != "Conv":
                continue
            sub = ex.extract_model([inp["name"]], [node.output[0]]).SerializeToString()
            e = nrmse(ov_run(core, sub, x), ort_run(sub, x, optimise=False))
            print(f"   {node.name:10s} nrmse {e:.4f}")
            if e > WRONG:
                producers = {o: n for n in m.graph.node for o in n.output}
                feeder = producers.get(node.input[0])
                print(f"   first wrong: {node.name} (after {prev}); its input comes from {feeder.op_type} {feeder.name}"
                      f" of {[producers[i].op_type for i in feeder.input if i in producers]}")
                break
            prev = node.name


if __name__ == "__main__":
    main()
