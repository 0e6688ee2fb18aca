//! `predict_into`'s forward pass: [`predict_into`] lays every tensor in memory the caller
//! lends — the typed input and output, and a scratch buffer of two regions that the
//! layers' outputs alternate between — so that no tensor lives on the stack and a model
//! whose activations are megabytes runs on a small thread stack, with or without a heap.
//!
//! Layers run through [`SliceForward`]: in place where they can (activations, masks), as a
//! map from one region to the other (Dense, convolutions), or not at all when their output
//! is their input's values (Reshape, Flatten). A layer without a slice form is run on stack
//! copies of its input and output, which the stack bound below accounts for.

use crate::ir::Model;
use crate::layers::{Forward, MaskRule, SliceForward};
use crate::shape::Mode;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

/// The body of `predict_into` and what it needs.
pub struct SlicePass {
    pub body: TokenStream,
    /// Values in each of the two scratch regions.
    pub regions: [usize; 2],
    /// An upper bound on the stack the body uses, in bytes.
    pub stack_bytes: usize,
}

/// Where a tensor's values are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Input,
    Region(usize),
    Output,
}

impl Place {
    fn slice(self, len: usize) -> TokenStream {
        match self {
            Place::Input => quote!(&input[..#len]),
            Place::Region(0) => quote!(&region_a[..#len]),
            Place::Region(_) => quote!(&region_b[..#len]),
            Place::Output => quote!(&output[..#len]),
        }
    }

    fn slice_mut(self, len: usize) -> TokenStream {
        match self {
            // The input is never written: callers copy it to a region first.
            Place::Input | Place::Region(0) => quote!(&mut region_a[..#len]),
            Place::Region(_) => quote!(&mut region_b[..#len]),
            Place::Output => quote!(&mut output[..#len]),
        }
    }

    /// The region a layer reading from `self` writes to.
    fn other_region(self) -> Place {
        match self {
            Place::Region(0) => Place::Region(1),
            _ => Place::Region(0),
        }
    }
}

/// Generates `predict_into`'s body for `model`: `input: &[f32]`, `output: &mut [f32]`,
/// `region_a`, `region_b` (`&mut [f32]`) and `pass` are in scope.
pub fn predict_into(model: &Model) -> SlicePass {
    // Stack for the kernels' own frames, as `predict`'s bound allows.
    const KERNEL_FRAMES: usize = 64 * 1024;
    let mut regions = [0usize; 2];
    let mut stack_bytes = KERNEL_FRAMES;
    let mut steps = Vec::new();
    let mut place = Place::Input;
    let mut mask_live = false;
    let count = model.layers.len();
    for (i, layer) in model.layers.iter().enumerate() {
        let last = i + 1 == count;
        let (len_in, len_out) = (layer.input.len(), layer.output.len());
        let destination = if last {
            Place::Output
        } else {
            place.other_region()
        };
        let f = Forward {
            mode: Mode::Sample,
            state: {
                let field = format_ident!("l{}", i);
                quote!(self.#field)
            },
            mask: mask_live.then(|| quote!(mask)),
        };
        let produces = layer.code.mask_rule() == MaskRule::Produce;
        let copy = |from: Place, to: Place| {
            let (src, dst) = (from.slice(len_in), to.slice_mut(len_in));
            quote!((#dst).copy_from_slice(#src);)
        };
        let (code, written) = match layer.code.forward_slices(&f) {
            Some(SliceForward::Same) if last => (copy(place, Place::Output), Place::Output),
            Some(SliceForward::Same) => (quote!(), place),
            Some(SliceForward::InPlace(code)) => {
                let (prepare, target) = match place {
                    Place::Region(_) if !last => (quote!(), place),
                    _ => (copy(place, destination), destination),
                };
                let x = target.slice_mut(len_out);
                let run = quote!({ let x: &mut [f32] = #x; #code });
                let run = if produces {
                    quote!(let mask = #run; let _ = &mask;)
                } else {
                    quote!(#run;)
                };
                (quote!(#prepare #run), target)
            }
            Some(SliceForward::Map(code)) => {
                let (x, y) = (place.slice(len_in), destination.slice_mut(len_out));
                (
                    quote!({ let x: &[f32] = #x; let y: &mut [f32] = #y; #code; }),
                    destination,
                )
            }
            None => {
                // On stack copies: this layer's stack is its input and output, several times
                // over in a debug build (as `predict`'s bound counts them).
                stack_bytes = stack_bytes.saturating_add((len_in + len_out).saturating_mul(16));
                let forward = layer.code.forward(&f);
                let (ty_in, ty_out) = (
                    layer.input.tensor_type(Mode::Sample),
                    layer.output.tensor_type(Mode::Sample),
                );
                let (x, y) = (place.slice(len_in), destination.slice_mut(len_out));
                let bind = if produces {
                    quote!(let (y, mask): (#ty_out, _) = { let x = x; #forward }; let _ = &mask;)
                } else {
                    quote!(let y: #ty_out = { let x = x; #forward };)
                };
                (
                    quote!(
                        let x: #ty_in = ::kiln::__private::Tensor::from_values(#x);
                        #bind
                        (#y).copy_from_slice(::kiln::__private::Tensor::values(&y));
                    ),
                    destination,
                )
            }
        };
        if let Place::Region(r) = written {
            regions[r] = regions[r].max(len_out);
        }
        if let (Place::Region(r), Place::Input) = (written, place) {
            regions[r] = regions[r].max(len_in);
        }
        stack_bytes = stack_bytes.saturating_add(layer.code.work_stack_bytes());
        if produces {
            mask_live = true;
            // The mask lives on the stack: one bool per position.
            stack_bytes = stack_bytes.saturating_add(layer.output.positions());
        } else if layer.code.mask_rule() == MaskRule::Consume {
            // As in `predict`: the layers after an RNN without `return_sequences` or a
            // GlobalAveragePooling1D get no mask (a Softmax would apply the stale one).
            mask_live = false;
        }
        place = written;
        steps.push(quote_spanned!(layer.span=> #code));
    }
    SlicePass {
        body: quote!(#(#steps)*),
        regions,
        stack_bytes,
    }
}
