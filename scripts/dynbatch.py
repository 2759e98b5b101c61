#!/usr/bin/env python3
"""Give a YOLOX export a dynamic batch dimension.

    scripts/dynbatch.py models/yolox_nano.onnx models/yolox_nano_dynbatch.onnx

The export fixes the batch at 1 in three places: dimension 0 of the input `images`, dimension 0
of the output `output`, and the shape constant `[1, 85, -1]` of each of the three Reshape nodes
that flatten a detection head. The edit makes the two dimensions the symbolic `batch` and the
three constants `[0, 85, -1]` (0 copies the batch from the Reshape's input). It also drops the
graph's value_info, the exporter's shape annotations of intermediate tensors, which all say batch
1 and would contradict a larger batch; ONNX Runtime infers those shapes itself. Nothing else
changes: the weights and nodes are copied byte for byte, so a batch of N gives, bit for bit, the
outputs of N batch-1 runs of the original on the CPU provider.

Standard library only (scripts/onnx_proto.py), so that scripts/setup can run it on a fresh
machine; the same input gives the same bytes, so scripts/setup pins the output's sha256.
"""

import hashlib
import struct
import sys

from onnx_proto import (
    DIM_PARAM, DIM_VALUE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NODE, GRAPH_OUTPUT, GRAPH_VALUE_INFO,
    INT64, MODEL_GRAPH, NODE_INPUT, NODE_OP, SHAPE_DIM, TENSOR_DIMS, TENSOR_DTYPE, TENSOR_NAME,
    TENSOR_RAW, VALUE_NAME, Invalid, f_bytes, fields, first, with_dims,
)

INPUT, OUTPUT, BATCH = b"images", b"output", "batch"
FIXED_SHAPE = struct.pack("<3q", 1, 85, -1)
DYNAMIC_SHAPE = struct.pack("<3q", 0, 85, -1)


def batch_dim(name, dims):
    """Dimension 0 (which must be 1) made `batch`; the others as they are."""
    if not dims or first(fields(dims[0][1]), DIM_VALUE) != 1:
        raise Invalid(f"`{name}` does not have a fixed batch of 1 in dimension 0: already dynamic, or not this export")
    return [f_bytes(SHAPE_DIM, f_bytes(DIM_PARAM, BATCH))] + [r for r, _ in dims[1:]]


def dynamic_batch(model_bytes):
    top = fields(model_bytes)
    graph = first(top, MODEL_GRAPH)
    if graph is None:
        raise Invalid("no graph: is this an ONNX model?")
    gf = fields(graph)
    reshape_shapes = set()
    for n, _, v, _ in gf:
        if n == GRAPH_NODE:
            nf = fields(v)
            ins = [x for m, _, x, _ in nf if m == NODE_INPUT]
            if first(nf, NODE_OP) == b"Reshape" and len(ins) == 2:
                reshape_shapes.add(ins[1])
    body, edited, io = bytearray(), 0, set()
    for n, _, v, raw in gf:
        if n == GRAPH_VALUE_INFO:
            continue
        if n in (GRAPH_INPUT, GRAPH_OUTPUT) and first(fields(v), VALUE_NAME) in (INPUT, OUTPUT):
            body += f_bytes(n, with_dims(v, batch_dim))
            io.add(first(fields(v), VALUE_NAME))
            continue
        if n == GRAPH_INITIALIZER:
            tf = fields(v)
            dims = [d for m, _, d, _ in tf if m == TENSOR_DIMS]
            if (first(tf, TENSOR_NAME) in reshape_shapes and first(tf, TENSOR_DTYPE) == INT64
                    and dims == [3] and first(tf, TENSOR_RAW) == FIXED_SHAPE):
                body += f_bytes(GRAPH_INITIALIZER, b"".join(
                    f_bytes(TENSOR_RAW, DYNAMIC_SHAPE) if m == TENSOR_RAW else r for m, _, _, r in tf))
                edited += 1
                continue
        body += raw
    if io != {INPUT, OUTPUT}:
        raise Invalid("no input `images` or output `output`: not a YOLOX export")
    if edited != 3:
        raise Invalid(f"found {edited} Reshape shape constants [1, 85, -1], expected 3 (one per stride): not this YOLOX export")
    return b"".join(f_bytes(MODEL_GRAPH, bytes(body)) if n == MODEL_GRAPH else raw for n, _, _, raw in top)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scripts/dynbatch.py IN.onnx OUT.onnx (e.g. models/yolox_nano.onnx models/yolox_nano_dynbatch.onnx)")
    src, dst = sys.argv[1], sys.argv[2]
    try:
        with open(src, "rb") as f:
            out = dynamic_batch(f.read())
    except (OSError, Invalid) as e:
        sys.exit(f"dynbatch: {src}: {e}")
    with open(dst, "wb") as f:
        f.write(out)
    print(f"dynbatch: {dst} ({hashlib.sha256(out).hexdigest()}): batch dimension `{BATCH}`, 3 Reshape shapes [0, 85, -1]", file=sys.stderr)


if __name__ == "__main__":
    main()
