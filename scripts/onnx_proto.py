"""ONNX files as protobuf, with the Python standard library only.

Just enough of the wire format for the model edits in scripts/ (uint8_input.py, dynbatch.py,
input_size.py):
split a message into its fields, and write new ones. scripts/setup runs those edits on a fresh
machine, where the `onnx` package is not installed. An edit copies every field it does not change
byte for byte, so it writes the same bytes for the same input, and scripts/setup pins their sha256.
"""

# onnx.proto field numbers and enums used by the edits.
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_VALUE_INFO = 1, 5, 11, 12, 13
VALUE_NAME, VALUE_TYPE = 1, 2
TYPE_TENSOR = 1
TENSOR_TYPE_ELEM, TENSOR_TYPE_SHAPE = 1, 2
SHAPE_DIM = 1
DIM_VALUE, DIM_PARAM = 1, 2
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP, NODE_ATTR = 1, 2, 3, 4, 5
ATTR_NAME, ATTR_I, ATTR_INTS, ATTR_TYPE = 1, 3, 8, 20
ATTR_INT, ATTR_INTS_TYPE = 2, 7
TENSOR_DIMS, TENSOR_DTYPE, TENSOR_NAME, TENSOR_RAW = 1, 2, 8, 9
FLOAT, UINT8, INT64 = 1, 2, 7


class Invalid(Exception):
    """The model (or its manifest) cannot be edited; the message says why and what to do."""


# --- protobuf wire format: just enough to split messages into fields and write new ones --------

def read_varint(buf, i):
    shift = value = 0
    while True:
        if i >= len(buf):
            raise Invalid("truncated protobuf varint: is this an ONNX file?")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf):
    """(field number, wire type, value, raw bytes of the whole field) for each field, in order."""
    out, i = [], 0
    while i < len(buf):
        start = i
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            value, i = read_varint(buf, i)
        elif wt == 1:
            value, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wt == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise Invalid(f"unsupported protobuf wire type {wt}: is this an ONNX file?")
        if i > len(buf):
            raise Invalid("truncated protobuf field: is this an ONNX file?")
        out.append((num, wt, value, buf[start:i]))
    return out


def varint(v):
    if v < 0:
        v += 1 << 64  # int64 two's complement, as protobuf writes it
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def f_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def first(fs, num):
    return next((v for n, _, v, _ in fs if n == num), None)


def with_dims(value_info, edit):
    """The input or output declaration `value_info` with its shape's dimensions replaced by
    `edit(name, dims)`: `dims` is a list of (raw field bytes, dimension message), one per
    dimension, and `edit` returns the new raw dimension fields. Everything else is copied byte
    for byte."""
    vf = fields(value_info)
    name = first(vf, VALUE_NAME).decode()
    out = bytearray()
    for n, _, v, raw in vf:
        if n != VALUE_TYPE:
            out += raw
            continue
        tensor = first(fields(v), TYPE_TENSOR)
        tf = fields(tensor if tensor is not None else b"")
        shape = first(tf, TENSOR_TYPE_SHAPE)
        dims = [(raw_d, d) for m, _, d, raw_d in fields(shape or b"") if m == SHAPE_DIM]
        new_shape = b"".join(edit(name, dims))
        new_tensor = b"".join(f_bytes(TENSOR_TYPE_SHAPE, new_shape) if m == TENSOR_TYPE_SHAPE else r for m, _, _, r in tf)
        out += f_bytes(VALUE_TYPE, f_bytes(TYPE_TENSOR, new_tensor))
    return bytes(out)
