//! A hand-made tiny ONNX model (an Identity op) for plumbing tests: the protobuf is written
//! by hand so no Python or extra crate is needed. Never used as a test of detection.

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    // Wire type 0 (varint) in the low three bits.
    varint(u64::from(field) << 3, out);
    varint(v, out);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field as u64) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// ValueInfoProto { name, type: TypeProto { tensor_type: { elem_type: FLOAT, shape } } }
fn value_info(name: &str, dims: &[u64]) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = Vec::new();
        field_varint(1, d, &mut dim); // dim_value
        field_bytes(1, &dim, &mut shape); // dim
    }
    let mut tensor = Vec::new();
    field_varint(1, 1, &mut tensor); // elem_type FLOAT
    field_bytes(2, &shape, &mut tensor);
    let mut ty = Vec::new();
    field_bytes(1, &tensor, &mut ty); // tensor_type
    let mut vi = Vec::new();
    field_bytes(1, name.as_bytes(), &mut vi);
    field_bytes(2, &ty, &mut vi);
    vi
}

/// An ONNX model whose single output is its input, of shape `dims`.
pub fn identity_model(dims: &[u64]) -> Vec<u8> {
    let mut node = Vec::new();
    field_bytes(1, b"images", &mut node); // input
    field_bytes(2, b"output", &mut node); // output
    field_bytes(4, b"Identity", &mut node); // op_type
    let mut graph = Vec::new();
    field_bytes(1, &node, &mut graph);
    field_bytes(2, b"tiny", &mut graph);
    field_bytes(11, &value_info("images", dims), &mut graph);
    field_bytes(12, &value_info("output", dims), &mut graph);
    let mut opset = Vec::new();
    field_bytes(1, b"", &mut opset);
    field_varint(2, 11, &mut opset);
    let mut model = Vec::new();
    field_varint(1, 7, &mut model); // ir_version
    field_bytes(7, &graph, &mut model);
    field_bytes(8, &opset, &mut model);
    model
}
