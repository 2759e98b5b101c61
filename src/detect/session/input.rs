//! The input side of a run: the buffer the letterbox writes into (allocated once, for the
//! largest batch), how it reaches the session (a tensor view per run, or ORT's IoBinding over
//! pinned memory on cuda/tensorrt), and the run itself.
//!
//! f32 NCHW for a float model, u8 NHWC for a uint8 model (`input.dtype = "uint8"`: the
//! letterbox copies pixels and the graph casts and normalises, so a GPU gets a quarter of the
//! bytes).

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session, SessionOutputs};
use ort::value::{Shape, Tensor, TensorRef, TensorRefMut};

use super::ScaledFrame;
use crate::detect::DetectError;
use crate::detect::letterbox::{Geometry, Letterbox, Normalize, fill_packed_u8, fill_planar};
use crate::detect::manifest::InputType;
use crate::detect::provider::{ProviderKind, ProviderSpec};

/// Why the input could not be bound with IoBinding. Binding is only a faster way to the same
/// run, so this is a warning and the plain path runs instead.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("no pinned (CudaPinned) allocator for this session: {0}")]
    NoPinnedAllocator(#[source] ort::Error),
    #[error("{0}")]
    Ort(#[from] ort::Error),
}

/// The input buffer, sized for the largest batch and allocated once.
pub(super) enum HostInput {
    F32(Vec<f32>),
    U8(Vec<u8>),
    /// Allocated by ORT for IoBinding: pinned on cuda/tensorrt, host-accessible either way.
    BoundF32(Tensor<f32>),
    BoundU8(Tensor<u8>),
}

/// The input buffer as the letterbox writes it.
enum HostSlice<'a> {
    F32(&'a mut [f32]),
    U8(&'a mut [u8]),
}

impl HostInput {
    pub(super) fn plain(t: InputType, len: usize) -> HostInput {
        match t {
            InputType::Float32 => HostInput::F32(vec![0.0; len]),
            InputType::Uint8 => HostInput::U8(vec![0; len]),
        }
    }

    fn host_mut(&mut self) -> Result<HostSlice<'_>, DetectError> {
        let host = |e: ort::Error| DetectError::Run(format!("the bound input buffer is not host memory: {e}"));
        Ok(match self {
            HostInput::F32(v) => HostSlice::F32(v),
            HostInput::U8(v) => HostSlice::U8(v),
            HostInput::BoundF32(t) => HostSlice::F32(t.try_extract_tensor_mut::<f32>().map_err(host)?.1),
            HostInput::BoundU8(t) => HostSlice::U8(t.try_extract_tensor_mut::<u8>().map_err(host)?.1),
        })
    }

    /// Write `frames`, letterboxed, into the first `frames.len()` slots of the buffer, as the
    /// input type wants them: normalised planes for f32, the pixels as they are for u8.
    pub(super) fn fill(
        &mut self,
        frames: &[ScaledFrame<'_>],
        g: Geometry,
        norm: &Normalize,
    ) -> Result<(), DetectError> {
        let plane = 3 * (g.width * g.height) as usize;
        match self.host_mut()? {
            HostSlice::F32(buf) => {
                for (f, slot) in frames.iter().zip(buf.chunks_exact_mut(plane)) {
                    let lb = Letterbox::place(f.src_width, f.src_height, g);
                    fill_planar(f.rgb, f.width, f.height, f.stride, &lb, norm, slot);
                }
            }
            HostSlice::U8(buf) => {
                // A uint8 manifest has no host normalisation, so the normalised pad is the raw
                // one, a whole pixel value (checked when the manifest was read).
                let pad = norm.pad[0].round().clamp(0.0, 255.0) as u8;
                for (f, slot) in frames.iter().zip(buf.chunks_exact_mut(plane)) {
                    let lb = Letterbox::place(f.src_width, f.src_height, g);
                    fill_packed_u8(f.rgb, f.width, f.height, f.stride, &lb, norm.bgr, pad, slot);
                }
            }
        }
        Ok(())
    }
}

/// The ORT shape of `n` frames of input, NCHW for f32 and NHWC for u8.
fn input_shape(t: InputType, n: usize, g: Geometry) -> [usize; 4] {
    let (w, h) = (g.width as usize, g.height as usize);
    match t {
        InputType::Float32 => [n, 3, h, w],
        InputType::Uint8 => [n, h, w, 3],
    }
}

/// One run on the first `n` frames of `input`: through the binding when there is one (the
/// input re-bound at this batch's shape, which is when ORT copies it to the device), else as a
/// tensor view passed to the run. A free function so that the outputs borrow only the session
/// and the binding, not the whole detector.
pub(super) fn run_session<'s>(
    session: &'s mut Session,
    input: &mut HostInput,
    binding: Option<&'s mut Bound>,
    input_name: &str,
    run_options: &'s RunOptions,
    n: usize,
    g: Geometry,
) -> Result<SessionOutputs<'s>, DetectError> {
    let run = |e: ort::Error| DetectError::Run(e.to_string());
    let t = match input {
        HostInput::F32(_) | HostInput::BoundF32(_) => InputType::Float32,
        HostInput::U8(_) | HostInput::BoundU8(_) => InputType::Uint8,
    };
    let shape = input_shape(t, n, g);
    let len: usize = shape.iter().product();
    // The unsafe view below relies on this; the plain path's slicing would panic without it.
    let capacity = match input {
        HostInput::F32(v) => v.len(),
        HostInput::U8(v) => v.len(),
        HostInput::BoundF32(t) => t.shape().iter().product::<i64>() as usize,
        HostInput::BoundU8(t) => t.shape().iter().product::<i64>() as usize,
    };
    if len > capacity {
        return Err(DetectError::Run(format!(
            "a batch of {n} frames does not fit the input buffer ({capacity} values)"
        )));
    }
    if let Some(bound) = binding {
        // ORT keeps the outputs it allocated for a bound output and refuses a run whose output
        // shape differs: bind them afresh when the batch size changes.
        if bound.batch != n {
            bound.binding.clear_outputs();
            for name in &bound.outputs {
                bound.binding.bind_output_to_device(name.as_str(), &bound.output_memory).map_err(run)?;
            }
            bound.batch = n;
        }
        let binding = &mut bound.binding;
        let view_shape = Shape::new(shape.iter().map(|&d| d as i64));
        // ort rc.15 copies a borrowed input that is already on the session's device before it
        // binds it, and that copy deadlocks (its identity session binds a borrowed input again
        // under the same lock). Pinned memory is another device than a CUDA session's, so it is
        // bound as a view; plain CPU memory (the `Always` path off the GPU) is copied into an
        // owned tensor here, the copy ort meant to make.
        let on_cpu = |info: &MemoryInfo| info.allocation_device() == AllocationDevice::CPU;
        match input {
            HostInput::BoundF32(tensor) if on_cpu(tensor.memory_info()) => {
                let owned =
                    Tensor::from_array((shape, tensor.try_extract_tensor::<f32>().map_err(run)?.1[..len].to_vec()))
                        .map_err(run)?;
                binding.bind_input(input_name, &owned).map_err(run)?;
            }
            HostInput::BoundU8(tensor) if on_cpu(tensor.memory_info()) => {
                let owned =
                    Tensor::from_array((shape, tensor.try_extract_tensor::<u8>().map_err(run)?.1[..len].to_vec()))
                        .map_err(run)?;
                binding.bind_input(input_name, &owned).map_err(run)?;
            }
            HostInput::BoundF32(tensor) => {
                let data = tensor.data_ptr_mut();
                let info = tensor.memory_info().clone();
                // SAFETY: the view covers the first `len` of the tensor's `max_batch` frames
                // (checked against its capacity above), in the memory the tensor owns and
                // describes with `info`. The binding may hold the view until the next bind; it
                // is declared before the buffer in `Detector`, so it is dropped first.
                let view = unsafe { TensorRefMut::<f32>::from_raw(info, data, view_shape) }.map_err(run)?;
                binding.bind_input(input_name, &view).map_err(run)?;
            }
            HostInput::BoundU8(tensor) => {
                let data = tensor.data_ptr_mut();
                let info = tensor.memory_info().clone();
                // SAFETY: as above.
                let view = unsafe { TensorRefMut::<u8>::from_raw(info, data, view_shape) }.map_err(run)?;
                binding.bind_input(input_name, &view).map_err(run)?;
            }
            HostInput::F32(_) | HostInput::U8(_) => {
                return Err(DetectError::Run("an input binding without a bound buffer".into()));
            }
        }
        return session.run_binding_with_options(&bound.binding, run_options).map_err(run);
    }
    match input.host_mut()? {
        HostSlice::F32(buf) => {
            let tensor = TensorRef::from_array_view((shape, &buf[..len])).map_err(run)?;
            session.run_with_options(ort::inputs![input_name => tensor], run_options).map_err(run)
        }
        HostSlice::U8(buf) => {
            let tensor = TensorRef::from_array_view((shape, &buf[..len])).map_err(run)?;
            session.run_with_options(ort::inputs![input_name => tensor], run_options).map_err(run)
        }
    }
}

/// An IoBinding with its outputs bound to host memory, for runs of `batch` frames.
pub(super) struct Bound {
    binding: IoBinding,
    outputs: Vec<String>,
    output_memory: MemoryInfo<'static>,
    batch: usize,
}

/// The input buffer for IoBinding, allocated once for `max_batch` frames (pinned host memory on
/// cuda/tensorrt, so the copy to the device is one DMA transfer; ORT's CPU allocator elsewhere),
/// and a binding whose outputs go to CPU memory, kept across runs of the same batch size. The
/// input is bound per run, since a batch's size sets its shape.
pub(super) fn bound_input(
    session: &Session,
    spec: &ProviderSpec,
    t: InputType,
    max_batch: usize,
    g: Geometry,
    outputs: &[String],
) -> Result<(HostInput, Bound), BindingError> {
    let allocator = match spec.kind {
        ProviderKind::Cuda | ProviderKind::TensorRt => {
            let info = MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                spec.device_id.unwrap_or(0),
                AllocatorType::Device,
                MemoryType::CPUInput,
            )?;
            Allocator::new(session, info).map_err(BindingError::NoPinnedAllocator)?
        }
        _ => Allocator::default(),
    };
    let shape = input_shape(t, max_batch, g);
    let elements: usize = shape.iter().product();
    // ORT hands the memory over uninitialised: zero it before anything reads it.
    let input = match t {
        InputType::Float32 => {
            let mut tensor = Tensor::<f32>::new(&allocator, shape)?;
            // SAFETY: the tensor owns `elements` f32s of host-accessible memory (CPU or pinned)
            // at this pointer; all-zero bytes are 0.0.
            unsafe { std::ptr::write_bytes(tensor.data_ptr_mut().cast::<f32>(), 0, elements) };
            HostInput::BoundF32(tensor)
        }
        InputType::Uint8 => {
            let mut tensor = Tensor::<u8>::new(&allocator, shape)?;
            // SAFETY: as above, `elements` bytes.
            unsafe { std::ptr::write_bytes(tensor.data_ptr_mut().cast::<u8>(), 0, elements) };
            HostInput::BoundU8(tensor)
        }
    };
    let binding = session.create_binding()?;
    let output_memory = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)?;
    // Batch 0: the outputs are bound before the first run, at its size.
    Ok((input, Bound { binding, outputs: outputs.to_vec(), output_memory, batch: 0 }))
}
