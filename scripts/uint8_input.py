#!/usr/bin/env python3
"""Wrap a model described by a Lookout manifest with a uint8 image input.

    scripts/uint8_input.py --manifest models/yolox_nano.toml [--onnx models/yolox_nano_dynbatch.onnx] [--out NAME]

The new model takes the frame as Lookout's letterbox writes it: uint8, NHWC ([N, height, width,
3], the batch dimension as the original has it), RGB. In front of the original network the graph
does what the host did before: Cast to float, Transpose to NCHW, a Gather that reorders the
channels when the model wants BGR, and `x * (scale / std) + (-mean / std)` (Mul and Add, left out
where they are the identity). So on a GPU the host uploads 1 byte per channel instead of 4 and the
conversion runs on the device, with the same arithmetic as the host's f32 path.

Writes models/<NAME>.onnx and models/<NAME>.toml (NAME defaults to the ONNX file's stem +
"_uint8"): the source manifest with `file`, `sha256`, `input.name` ("<name>_uint8"),
`input.dtype = "uint8"` and `input.channel_order = "rgb"`, without scale, mean, std (now inside
the graph) and without fp16_variant.

Standard library only, so that scripts/setup can run it on a fresh machine: the ONNX file is a
protobuf, and the edit touches three of its repeated fields (graph.node, graph.input,
graph.initializer); every other byte is copied as it is. The output is the same bytes for the same
input, so scripts/setup can pin its sha256.
"""

import argparse
import hashlib
import os
import struct
import sys
import tomllib

from onnx_proto import (  # scripts/onnx_proto.py: the protobuf reading and writing, shared
    ATTR_I, ATTR_INT, ATTR_INTS, ATTR_INTS_TYPE, ATTR_NAME, ATTR_TYPE, DIM_PARAM, DIM_VALUE, FLOAT,
    GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NODE, INT64, MODEL_GRAPH, NODE_ATTR, NODE_INPUT, NODE_NAME,
    NODE_OP, NODE_OUTPUT, SHAPE_DIM, TENSOR_DIMS, TENSOR_DTYPE, TENSOR_NAME, TENSOR_RAW,
    TENSOR_TYPE_ELEM, TENSOR_TYPE_SHAPE, TYPE_TENSOR, UINT8, VALUE_NAME, VALUE_TYPE, Invalid,
    f_bytes, f_varint, fields, first,
)


# --- the edit ----------------------------------------------------------------------------------

def input_dims(value_info):
    """An input's declared dims as (value or None, param or None), and its element type."""
    t = first(fields(value_info), VALUE_TYPE)
    tensor = first(fields(t), TYPE_TENSOR) if t is not None else None
    if tensor is None:
        raise Invalid("the image input is not a tensor")
    tf = fields(tensor)
    elem = first(tf, TENSOR_TYPE_ELEM)
    shape = first(tf, TENSOR_TYPE_SHAPE)
    dims = []
    for n, _, d, _ in fields(shape or b""):
        if n == SHAPE_DIM:
            df = fields(d)
            dims.append((first(df, DIM_VALUE), (first(df, DIM_PARAM) or b"").decode() or None))
    return elem, dims


def value_info(name, elem, dims):
    shape = b"".join(
        f_bytes(SHAPE_DIM, f_varint(DIM_VALUE, v) if v is not None else f_bytes(DIM_PARAM, p or "batch"))
        for v, p in dims
    )
    tensor = f_varint(TENSOR_TYPE_ELEM, elem) + f_bytes(TENSOR_TYPE_SHAPE, shape)
    return f_bytes(VALUE_NAME, name) + f_bytes(VALUE_TYPE, f_bytes(TYPE_TENSOR, tensor))


def node(op, inputs, output, name, attrs=b""):
    return (b"".join(f_bytes(NODE_INPUT, i) for i in inputs) + f_bytes(NODE_OUTPUT, output)
            + f_bytes(NODE_NAME, name) + f_bytes(NODE_OP, op) + attrs)


def attr_int(name, v):
    return f_bytes(NODE_ATTR, f_bytes(ATTR_NAME, name) + f_varint(ATTR_I, v) + f_varint(ATTR_TYPE, ATTR_INT))


def attr_ints(name, vs):
    body = f_bytes(ATTR_NAME, name) + b"".join(f_varint(ATTR_INTS, v) for v in vs) + f_varint(ATTR_TYPE, ATTR_INTS_TYPE)
    return f_bytes(NODE_ATTR, body)


def initializer(name, dtype, dims, raw):
    return (b"".join(f_varint(TENSOR_DIMS, d) for d in dims) + f_varint(TENSOR_DTYPE, dtype)
            + f_bytes(TENSOR_NAME, name) + f_bytes(TENSOR_RAW, raw))


def plan(bgr, scale, mean, std):
    """The per-plane multiply and add the host's f32 path applies (src/detect/letterbox.rs,
    Normalize::new), in float32, and whether each step is needed."""
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
    mul = [f32(f32(scale) / f32(s)) for s in std]
    add = [f32(-f32(m) / f32(s)) for m, s in zip(mean, std)]
    return {"gather": bgr, "mul": mul if any(m != 1.0 for m in mul) else None, "add": add if any(a != 0.0 for a in add) else None}


def wrap(model_bytes, input_name, width, height, steps):
    """The model with a uint8 NHWC RGB input named `<input_name>_uint8` feeding the original
    input through Cast, Transpose and the needed normalisation steps."""
    top = fields(model_bytes)
    graph = first(top, MODEL_GRAPH)
    if graph is None:
        raise Invalid("no graph: is this an ONNX model?")
    gf = fields(graph)
    original = None
    for n, _, v, _ in gf:
        if n == GRAPH_INPUT and first(fields(v), VALUE_NAME) == input_name.encode():
            original = v
    if original is None:
        names = [first(fields(v), VALUE_NAME).decode() for n, _, v, _ in gf if n == GRAPH_INPUT][:3]
        raise Invalid(f"the model has no input `{input_name}` (its inputs: {', '.join(names)}); fix input.name in the manifest")
    elem, dims = input_dims(original)
    if elem != FLOAT:
        raise Invalid(f"input `{input_name}` has ONNX element type {elem}, not float (1): it is not a float model to wrap")
    want = [(3, None), (height, None), (width, None)]
    if len(dims) != 4 or [d[0] for d in dims[1:]] != [w[0] for w in want]:
        raise Invalid(f"input `{input_name}` has dims {dims}; expected [N, 3, {height}, {width}] as the manifest says")
    new_name = f"{input_name}_uint8"
    new_input = value_info(new_name, UINT8, [dims[0], (height, None), (width, None), (3, None)])

    p = f"lookout_uint8_{input_name}"
    chain = [("Cast", attr_int("to", FLOAT)), ("Transpose", attr_ints("perm", [0, 3, 1, 2]))]
    inits = []
    if steps["gather"]:
        chain.append(("Gather", attr_int("axis", 1)))
        inits.append(initializer(f"{p}/bgr_order", INT64, [3], struct.pack("<3q", 2, 1, 0)))
    if steps["mul"]:
        chain.append(("Mul", b""))
        inits.append(initializer(f"{p}/mul", FLOAT, [1, 3, 1, 1], struct.pack("<3f", *steps["mul"])))
    if steps["add"]:
        chain.append(("Add", b""))
        inits.append(initializer(f"{p}/add", FLOAT, [1, 3, 1, 1], struct.pack("<3f", *steps["add"])))
    nodes, prev = [], new_name
    consts = {"Gather": f"{p}/bgr_order", "Mul": f"{p}/mul", "Add": f"{p}/add"}
    for k, (op, attrs) in enumerate(chain):
        out = input_name if k == len(chain) - 1 else f"{p}/{op.lower()}_out"
        ins = [prev] + ([consts[op]] if op in consts else [])
        nodes.append(node(op, ins, out, f"{p}/{op}", attrs))
        prev = out

    # Nodes must stay in topological order: the new ones go before the first original node.
    body, placed = bytearray(), False
    for n, _, v, raw in gf:
        if n == GRAPH_NODE and not placed:
            body += b"".join(f_bytes(GRAPH_NODE, x) for x in nodes)
            placed = True
        if n == GRAPH_INPUT and v is original:
            body += f_bytes(GRAPH_INPUT, new_input)
            continue
        body += raw
    if not placed:
        raise Invalid("the graph has no nodes")
    body += b"".join(f_bytes(GRAPH_INITIALIZER, x) for x in inits)
    out = bytearray()
    for n, _, _, raw in top:
        out += f_bytes(MODEL_GRAPH, bytes(body)) if n == MODEL_GRAPH else raw
    return bytes(out), new_name


# --- the manifest ------------------------------------------------------------------------------

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def manifest_text(m, onnx_name, sha, new_input, source):
    top = {k: v for k, v in m.items() if not isinstance(v, dict) and k != "fp16_variant"}
    top["file"], top["sha256"] = onnx_name, sha
    inp = {k: v for k, v in m["input"].items() if k not in ("scale", "mean", "std")}
    inp.update(name=new_input, dtype="uint8", channel_order="rgb")
    lines = [f"# Generated by scripts/uint8_input.py from {source}; regenerate rather than edit.",
             "# uint8 NHWC RGB input: the graph casts, transposes, orders the channels and normalises."]
    lines += [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for table, values in (("input", inp), ("output", m.get("output", {}))):
        lines += ["", f"[{table}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True, help="the source model's manifest (its recipe)")
    ap.add_argument("--onnx", help="wrap this ONNX file instead of the manifest's (the same network, e.g. with a dynamic batch)")
    ap.add_argument("--out", help="output name in the manifest's folder (default: <onnx stem>_uint8)")
    a = ap.parse_args()
    try:
        with open(a.manifest, "rb") as f:
            m = tomllib.load(f)
        folder = os.path.dirname(a.manifest)
        src = a.onnx or os.path.join(folder, m["file"])
        inp = m["input"]
        if inp.get("dtype", "float32") != "float32":
            raise Invalid(f"{a.manifest}: input.dtype is already {inp['dtype']}")
        pad = inp.get("pad_value", 114)
        if pad != int(pad):
            raise Invalid(f"{a.manifest}: input.pad_value {pad} is not a whole pixel value; a uint8 canvas cannot hold it")
        steps = plan(inp["channel_order"] == "bgr", inp.get("scale", 1.0), inp.get("mean", [0.0] * 3), inp.get("std", [1.0] * 3))
        with open(src, "rb") as f:
            data = f.read()
        wrapped, new_input = wrap(data, inp["name"], inp["width"], inp["height"], steps)
    except (OSError, KeyError, tomllib.TOMLDecodeError, Invalid) as e:
        sys.exit(f"uint8_input: {e}")
    name = a.out or os.path.splitext(os.path.basename(src))[0] + "_uint8"
    onnx_path, toml_path = os.path.join(folder, name + ".onnx"), os.path.join(folder, name + ".toml")
    with open(onnx_path, "wb") as f:
        f.write(wrapped)
    sha = hashlib.sha256(wrapped).hexdigest()
    with open(toml_path, "w") as f:
        f.write(manifest_text(m, name + ".onnx", sha, new_input, f"{os.path.basename(a.manifest)} and {os.path.basename(src)}"))
    done = [s for s in ("gather", "mul", "add") if steps[s]]
    print(f"uint8_input: {onnx_path} ({sha}) and {toml_path}: Cast, Transpose{''.join(', ' + s.capitalize() for s in done)}", file=sys.stderr)


if __name__ == "__main__":
    main()
