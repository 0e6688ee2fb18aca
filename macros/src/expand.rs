//! `expand`: ir -> Rust. Emits the model struct (one field per stateful layer) and its
//! `kiln::Model` impl. Code size grows with the number of layers: each layer is a call into
//! a runtime kernel, never code per weight value. `fallback` emits a stand-in model when
//! checking failed, so user code that names the model shows no follow-on errors.

use crate::ir::Model;
use crate::layers::{Backward, Forward, MaskRule, SliceForward};
use crate::shape::Mode;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};

pub fn expand(model: &Model) -> TokenStream {
    let Model {
        attrs, vis, name, ..
    } = model;
    let name_str = name.to_string();
    let input = &model.input;
    let output = model.output();

    let fields: Vec<(Ident, TokenStream, TokenStream)> = model
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, layer)| {
            let ty = layer.code.state_type()?;
            let init = layer.code.init(&quote!(seed), layer.first_weight);
            Some((format_ident!("l{}", i), ty, init))
        })
        .collect();
    let field_decls = fields.iter().map(|(f, ty, _)| quote!(#f: #ty));
    let field_inits = fields.iter().map(|(f, _, init)| quote!(#f: #init));

    let forward = |mode: Mode| {
        let mut mask_live = false;
        let steps: Vec<TokenStream> = model
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let field = format_ident!("l{}", i);
                let f = Forward {
                    mode,
                    state: quote!(self.#field),
                    mask: mask_live.then(|| quote!(mask)),
                };
                let code = layer.code.forward(&f);
                let ty = layer.output.tensor_type(mode);
                if layer.code.mask_rule() == MaskRule::Consume {
                    mask_live = false;
                }
                if layer.code.mask_rule() == MaskRule::Produce {
                    mask_live = true;
                    // `let _`: one-sample `predict` uses the mask only when a layer reads it.
                    quote_spanned!(layer.span=> let (x, mask): (#ty, _) = #code; let _ = &mask;)
                } else {
                    quote_spanned!(layer.span=> let x: #ty = #code;)
                }
            })
            .collect();
        let mask_out = if mask_live {
            quote!(::core::option::Option::Some(mask.to_vec()))
        } else {
            quote!(::core::option::Option::None)
        };
        (quote!(#(#steps)*), mask_out)
    };
    let (sample_steps, _) = forward(Mode::Sample);
    let (batch_steps, batch_mask) = forward(Mode::Batch);

    let weight_names = crate::ir::weight_names(&model.layers);
    let weight_shapes = model
        .layers
        .iter()
        .flat_map(|l| l.weights.iter().map(|w| w.shape.slice_tokens()));
    let param_count: usize = model
        .layers
        .iter()
        .flat_map(|l| l.weights.iter().map(|w| w.shape.len()))
        .sum();
    let trainable_param_count: usize = model
        .layers
        .iter()
        .flat_map(|l| l.weights.iter().filter(|w| w.trainable()))
        .map(|w| w.shape.len())
        .sum();
    let weight_arms: Vec<(usize, TokenStream)> = model
        .layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            let field = format_ident!("l{}", i);
            (0..l.weights.len()).map(move |w| (l.first_weight + w, quote!(self.#field, #w)))
        })
        .collect();
    let get_arms = weight_arms
        .iter()
        .map(|(index, access)| quote!(#index => ::kiln::__private::Weights::weight(&#access)));
    let set_arms = weight_arms.iter().map(
        |(index, access)| quote!(#index => ::kiln::__private::Weights::weight_mut(&mut #access)),
    );
    let layer_infos = model.layers.iter().map(|l| {
        let (lname, class) = (&l.name, &l.class);
        let shape = l.output.slice_tokens();
        let params: usize = l.weights.iter().map(|w| w.shape.len()).sum();
        quote!(::kiln::LayerInfo { name: #lname, class: #class, output_shape: #shape, params: #params })
    });

    let input_ty = input.tensor_type(Mode::Sample);
    let output_ty = output.tensor_type(Mode::Sample);
    let input_batch_ty = input.tensor_type(Mode::Batch);
    let (input_shape, output_shape) = (input.slice_tokens(), output.slice_tokens());
    let (input_len, output_len) = (input.len(), output.len());

    let input_ids = match model.layers.first().and_then(|l| l.code.input_ids()) {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let trainable = trainable(model);
    let streaming = streaming(model);
    let pretrained = model.baked.as_ref().map(|baked| pretrained(model, baked));
    let stack_bytes = predict_stack_bytes(model);
    let slices = crate::scratch::predict_into(model);
    let (into_body, into_stack) = (&slices.body, slices.stack_bytes);
    let [region_a, region_b] = slices.regions;
    let scratch_len = region_a + region_b;
    let dispatch_sample = dispatched(quote!(self.__predict_sample(x)));
    let dispatch_into = dispatched(quote!(self.__predict_into_body(x, y, scratch)));
    let dispatch_batch = dispatched(quote!(self.__forward_batch_body(xs, pass)));

    quote! {
        #(#attrs)*
        #vis struct #name {
            #(#field_decls,)*
        }

        #trainable

        impl ::kiln::Model for #name {
            type Input = #input_ty;
            type Output = #output_ty;
            const NAME: &'static str = #name_str;
            const INPUT_SHAPE: &'static [usize] = #input_shape;
            const OUTPUT_SHAPE: &'static [usize] = #output_shape;
            const INPUT_LEN: usize = #input_len;
            const OUTPUT_LEN: usize = #output_len;
            const PARAM_COUNT: usize = #param_count;
            const TRAINABLE_PARAM_COUNT: usize = #trainable_param_count;
            const WEIGHT_NAMES: &'static [&'static str] = &[#(#weight_names),*];
            const WEIGHT_SHAPES: &'static [&'static [usize]] = &[#(#weight_shapes),*];
            const LAYERS: &'static [::kiln::LayerInfo] = &[#(#layer_infos),*];
            const INPUT_IDS: ::core::option::Option<usize> = #input_ids;
            const PREDICT_STACK_BYTES: usize = #stack_bytes;
            type Scratch = [f32; #scratch_len];
            const PREDICT_INTO_STACK_BYTES: usize = #into_stack;

            #[inline]
            fn predict_into(&self, x: &Self::Input, y: &mut Self::Output, scratch: &mut Self::Scratch) {
                #dispatch_into
            }

            ::kiln::__private::with_alloc! {
                fn new(seed: u64) -> Self {
                    let _ = seed;
                    Self { #(#field_inits,)* }
                }

                fn __forward_batch(
                    &self,
                    xs: &[f32],
                    pass: &mut ::kiln::__private::Pass,
                ) -> (::kiln::__private::Vec<f32>, ::core::option::Option<::kiln::__private::Vec<bool>>) {
                    #dispatch_batch
                }

                fn __weight_mut(&mut self, index: usize) -> &mut [f32] {
                    match index {
                        #(#set_arms,)*
                        _ => &mut [],
                    }
                }
            }

            #[inline]
            fn predict(&self, x: &Self::Input) -> Self::Output {
                #dispatch_sample
            }

            fn __weight(&self, index: usize) -> &[f32] {
                match index {
                    #(#get_arms,)*
                    _ => &[],
                }
            }
        }

        impl #name {
            /// `predict`'s body, inlined into each instruction set's copy
            /// (`kiln::isa::dispatch`).
            #[doc(hidden)]
            #[inline(always)]
            #[allow(unused_variables, clippy::let_unit_value)]
            fn __predict_sample(&self, x: &<Self as ::kiln::Model>::Input) -> <Self as ::kiln::Model>::Output {
                let mut pass_value = ::core::mem::ManuallyDrop::new(::kiln::__private::Pass::inference());
                let pass: &mut ::kiln::__private::Pass = &mut pass_value;
                let _ = &pass;
                let x: #input_ty = *x;
                #sample_steps
                ::kiln::__private::Pass::release(&mut pass_value);
                x
            }

            /// `predict_into`'s body, inlined into each instruction set's copy.
            #[doc(hidden)]
            #[inline(always)]
            #[allow(unused_variables, clippy::let_unit_value)]
            fn __predict_into_body(&self, x: &<Self as ::kiln::Model>::Input, y: &mut <Self as ::kiln::Model>::Output, scratch: &mut <Self as ::kiln::Model>::Scratch) {
                let pass = &mut ::kiln::__private::Pass::inference();
                let _ = &pass;
                let input: &[f32] = ::kiln::__private::Tensor::values(x);
                let output: &mut [f32] = ::kiln::__private::Tensor::values_mut(y);
                let (region_a, region_b) = scratch.split_at_mut(#region_a);
                #into_body
            }

            ::kiln::__private::with_alloc! {
                /// `__forward_batch`'s body (`predict_batch` on each thread's run of
                /// samples), inlined into each instruction set's copy.
                #[doc(hidden)]
                #[inline(always)]
                fn __forward_batch_body(
                    &self,
                    xs: &[f32],
                    pass: &mut ::kiln::__private::Pass,
                ) -> (::kiln::__private::Vec<f32>, ::core::option::Option<::kiln::__private::Vec<bool>>) {
                    let x: #input_batch_ty = ::kiln::__private::Tensor::from_values(xs);
                    #batch_steps
                    // The output's own storage, not a copy (a batch of conv outputs is MBs).
                    let values: ::kiln::__private::Vec<f32> = x.data.into();
                    (values, #batch_mask)
                }
            }
        }

        #pretrained
        #streaming
    }
}

/// `call`, a method holding a body marked `#[inline(always)]`, compiled once per instruction
/// set and chosen once per process (`kiln::isa::dispatch`): the body's own loops (nalgebra's
/// small products, bias adds, activations and their gradients) run on the CPU's widest
/// vectors rather than the default build's SSE2. A debug build inlines nothing, so there
/// it would only add frames.
fn dispatched(call: TokenStream) -> TokenStream {
    quote! {
        #[cfg(not(debug_assertions))]
        return ::kiln::__private::dispatch(
            #[inline(always)]
            move || #call,
        );
        #[cfg(debug_assertions)]
        #call
    }
}

/// An upper bound on `predict`'s stack. Debug builds keep every layer's input and output in
/// the frame and move them through temporaries (measured: up to about 2.8 times each layer's
/// input plus output bytes, and 1.3 times in release), so the bound is 4 times the sum over
/// layers, plus a fixed allowance for the kernels' own frames. `tests/deploy.rs` runs
/// `predict` on a stack of this size in the debug build.
fn predict_stack_bytes(model: &Model) -> usize {
    const KERNEL_FRAMES: usize = 64 * 1024;
    let bytes = |s: &crate::shape::Shape| s.len().saturating_mul(4);
    let layers: usize = model
        .layers
        .iter()
        .map(|l| bytes(&l.input).saturating_add(bytes(&l.output)))
        .fold(0, usize::saturating_add);
    // Scratch arrays (a recurrent layer's) live once in the frame, not moved.
    let work: usize = model
        .layers
        .iter()
        .map(|l| l.code.work_stack_bytes())
        .fold(0, usize::saturating_add);
    layers
        .saturating_mul(4)
        .saturating_add(work)
        .saturating_add(KERNEL_FRAMES)
}

/// `Name::pretrained()`: the model built, in a `const fn`, around weights that stay in the
/// binary's read-only data. The file (or its converted bytes) is one aligned `static`; each
/// layer gets `&'static [f32]` slices of it.
fn pretrained(model: &Model, baked: &crate::baked::Baked) -> TokenStream {
    let name = &model.name;
    let path = &baked.path;
    let (bytes_len, bytes_expr, tracking) = match &baked.source {
        crate::baked::Source::File(len) => (*len, quote!(*::core::include_bytes!(#path)), quote!()),
        crate::baked::Source::Converted(bytes) => {
            let literal = proc_macro2::Literal::byte_string(bytes);
            // The converted bytes are emitted directly; `include_bytes!` still makes Cargo
            // rebuild when the file changes.
            (
                bytes.len(),
                quote!(*#literal),
                quote!(
                    const _: &[u8] = ::core::include_bytes!(#path);
                ),
            )
        }
    };
    let mut weight = 0;
    let fields = model.layers.iter().enumerate().filter_map(|(i, layer)| {
        layer.code.state_type()?;
        let slices: Vec<TokenStream> = (0..layer.weights.len())
            .map(|_| {
                let (offset, len) = baked.tensors[weight];
                weight += 1;
                quote!(WEIGHTS.f32s(#offset, #len))
            })
            .collect();
        let field = format_ident!("l{}", i);
        let init = layer.code.baked(&slices);
        Some(quote!(#field: #init))
    });
    let fields: Vec<TokenStream> = fields.collect();
    let doc = format!(
        "The model with the weights of `{}`, baked in at compile time: no file I/O and no \
         parsing at run time, the values stay in the binary's read-only data (writing a \
         weight copies it to the heap first).",
        path
    );
    let vis = &model.vis;
    quote! {
        impl #name {
            #[doc = #doc]
            #vis const fn pretrained() -> Self {
                #tracking
                static WEIGHTS: ::kiln::__private::BakedBytes<#bytes_len> =
                    ::kiln::__private::BakedBytes(#bytes_expr);
                Self { #(#fields,)* }
            }
        }
    }
}

/// `impl kiln::Trainable`: the generated training step, or nothing when a layer has no
/// backward pass (then `compile` is a compile error naming the reason).
fn trainable(model: &Model) -> TokenStream {
    // Keras's `fit` carries a stateful layer's state from batch to batch; kiln's training
    // starts every batch from zeros, so it does not pretend (see `Trainable`'s note).
    if model.stateful {
        return TokenStream::new();
    }
    let name = &model.name;
    let n = model.layers.len();
    let var = |i: usize| format_ident!("x{}", i);
    let cache = |i: usize| format_ident!("c{}", i);
    let mut forward = Vec::new();
    // Each `Masking` binds its own variable, so the backward code of the layers after it
    // reads the mask they saw going forward even when a later `Masking` replaces it.
    let mut live_mask: Option<Ident> = None;
    let mut mask_at = Vec::new();
    let mut masks = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let field = format_ident!("l{}", i);
        let f = Forward {
            mode: Mode::Batch,
            state: quote!(self.#field),
            mask: live_mask.as_ref().map(|m| quote!(#m)),
        };
        mask_at.push(live_mask.clone());
        let code = layer.code.forward_train(&f);
        let ty = layer.output.tensor_type(Mode::Batch);
        if layer.code.mask_rule() == MaskRule::Consume {
            live_mask = None;
        }
        let (input, output, c) = (var(i), var(i + 1), cache(i));
        // The input stays alive for the backward pass; a layer that changes `x` in place
        // gets a pooled copy.
        let take_input = if layer.code.borrows_training_input() {
            quote!(let x = &#input;)
        } else {
            quote!(let x = pass.pool.copy_of(&#input);)
        };
        forward.push(if layer.code.mask_rule() == MaskRule::Produce {
            let mask = format_ident!("mask{}", i + 1);
            live_mask = Some(mask.clone());
            masks.push(mask.clone());
            quote_spanned!(layer.span=> let ((#output, #mask), #c): ((#ty, _), _) = { #take_input #code };)
        } else {
            quote_spanned!(layer.span=> let (#output, #c): (#ty, _) = { #take_input #code };)
        });
    }
    let mut backward = Vec::new();
    for (i, layer) in model.layers.iter().enumerate().rev() {
        let field = format_ident!("l{}", i);
        let b = Backward {
            state: quote!(self.#field),
            mask: mask_at[i].as_ref().map(|m| quote!(#m)),
            first_weight: layer.first_weight,
            need_input_grad: i > 0,
            last: i + 1 == n,
        };
        let Some(code) = layer.code.backward(&b) else {
            return TokenStream::new();
        };
        let (input, output, c) = (var(i), var(i + 1), cache(i));
        let bind =
            quote!(let x = &#input; let y = &#output; let cache = #c; let _ = (&x, &y, &cache););
        backward.push(if i > 0 {
            let ty = layer.input.tensor_type(Mode::Batch);
            quote_spanned!(layer.span=> let dy: #ty = { #bind #code };)
        } else {
            quote_spanned!(layer.span=> { #bind #code; })
        });
    }
    let regularizers = model.layers.iter().flat_map(|l| {
        l.weights.iter().map(|w| match &w.regularizer {
            Some(r) => quote!(::core::option::Option::Some(#r)),
            None => quote!(::core::option::Option::None),
        })
    });
    let constraints = model.layers.iter().flat_map(|l| {
        l.weights.iter().map(|w| match &w.constraint {
            Some(c) => quote!(::core::option::Option::Some(#c)),
            None => quote!(::core::option::Option::None),
        })
    });
    let updates = model
        .layers
        .iter()
        .flat_map(|l| l.weights.iter().map(|w| w.update_tokens()));
    let output_activation = match model.layers.last().and_then(|l| l.code.output_activation()) {
        Some(a) => quote!(::core::option::Option::Some(#a)),
        None => quote!(::core::option::Option::None),
    };
    let (x0, last) = (var(0), var(n));
    // The Keras mask at the output, for the loss (Keras weights the loss by it).
    let out_mask = match &live_mask {
        Some(m) => quote!(::core::option::Option::Some(&#m[..])),
        None => quote!(::core::option::Option::None),
    };
    // Every layer's input and output, and every mask, goes back to the pool once the backward
    // pass is done.
    let all_vars: Vec<Ident> = (0..=n).map(var).collect();
    let input_ty = model.input.tensor_type(Mode::Batch);
    let output_ty = model.output().tensor_type(Mode::Batch);
    let dispatch_train = dispatched(quote!(self.__train_pass(xs, pass, head, grads)));
    quote! {
        ::kiln::__private::with_alloc! {
        impl ::kiln::Trainable for #name {
            const REGULARIZERS: &'static [::core::option::Option<::kiln::Regularizer>] = &[#(#regularizers),*];
            const CONSTRAINTS: &'static [::core::option::Option<::kiln::Constraint>] = &[#(#constraints),*];
            const OUTPUT_ACTIVATION: ::core::option::Option<::kiln::Activation> = #output_activation;
            const UPDATES: &'static [::kiln::WeightUpdate] = &[#(#updates),*];

            #[allow(unused_variables, unused_mut, clippy::let_unit_value, clippy::unused_unit)]
            fn __train_batch_with_mask(
                &self,
                xs: &[f32],
                pass: &mut ::kiln::__private::Pass,
                head: &mut dyn FnMut(&[f32], ::core::option::Option<&[bool]>, &mut [f32]) -> bool,
                grads: &mut ::kiln::__private::Gradients,
            ) {
                #dispatch_train
            }
        }

        impl #name {
            /// `__train_batch_with_mask`'s body, inlined into each instruction set's copy
            /// (`kiln::isa::dispatch`).
            #[doc(hidden)]
            #[inline(always)]
            #[allow(unused_variables, unused_mut, clippy::let_unit_value, clippy::unused_unit)]
            fn __train_pass(
                &self,
                xs: &[f32],
                pass: &mut ::kiln::__private::Pass,
                head: &mut dyn FnMut(&[f32], ::core::option::Option<&[bool]>, &mut [f32]) -> bool,
                grads: &mut ::kiln::__private::Gradients,
            ) {
                let #x0: #input_ty = pass.pool.from_values(xs);
                #(#forward)*
                let mut dy: #output_ty = pass.pool.copy_of(&#last);
                let fused = head(
                    ::kiln::__private::Tensor::values(&#last),
                    #out_mask,
                    ::kiln::__private::Tensor::values_mut(&mut dy),
                );
                #(#backward)*
                #(pass.pool.give(#all_vars);)*
                #(pass.pool.give_mask(#masks);)*
            }
        }
        }
    }
}

/// Streaming, for a model whose input is a sequence `(timesteps, features)` and whose
/// layers all have a one-timestep form (`Layer::step`); nothing for any other model.
///
/// - `__stream_step(state, input, output, tail)`: one timestep through every layer, each
///   layer's carried state a range of `state`, the values passed between layers in two
///   stack buffers as wide as the widest timestep. Layers after the last `last_only` one
///   (a recurrent layer without `return_sequences`) run only when `tail` is true.
/// - inherent `new_state`, `predict_sequence` and `predict_chunk` (`kiln::streaming::
///   run_sequence` over `__stream_step`);
/// - `impl kiln::Streaming` when no layer is `last_only`: then every timestep's output is a
///   row of Keras's output for the whole sequence.
fn streaming(model: &Model) -> TokenStream {
    let name = &model.name;
    let vis = &model.vis;
    // A sequence `(timesteps, features)`, or `Embedding`'s ids `(timesteps,)`: one per step.
    let ids = model.layers.first().and_then(|l| l.code.input_ids());
    let rank = model.input.rank();
    if rank != 2 && !(rank == 1 && ids.is_some()) {
        return TokenStream::new();
    }
    let mut mask_live = false;
    let mut codes = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let field = format_ident!("l{}", i);
        let step = crate::layers::Step {
            weights: quote!(self.#field),
            mask: mask_live.then(|| quote!(keep)),
        };
        let Some(code) = layer.code.step(&step) else {
            return TokenStream::new();
        };
        match layer.code.mask_rule() {
            MaskRule::Produce => mask_live = true,
            MaskRule::Consume => mask_live = false,
            _ => {}
        }
        codes.push(code);
    }
    let last_only_at = codes.iter().rposition(|c| c.last_only);
    let features = if rank == 1 { 1 } else { model.input.last() };
    let out_len = model.output().last();
    let width = model
        .layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            [
                if i == 0 { features } else { l.input.last() },
                l.output.last(),
            ]
        })
        .max()
        .unwrap_or(1)
        .max(features);
    // The step's scratch (`StreamState`'s): the largest layer scratch, then the two
    // buffers.
    let layer_scratch = codes.iter().map(|c| c.scratch_len).max().unwrap_or(0);
    let (layer_scratch, width, scratch_len) = crate::layers::step_scratch(layer_scratch, width);
    let buf = |b: usize| if b == 0 { quote!(buf_a) } else { quote!(buf_b) };
    let mut current = 0usize;
    let mut offset = 0usize;
    let mut steps = Vec::new();
    for (i, (layer, code)) in model.layers.iter().zip(&codes).enumerate() {
        let len_in = if i == 0 { features } else { layer.input.last() };
        let len_out = layer.output.last();
        let (start, end) = (offset, offset + code.state_len);
        offset = end;
        let state = quote!(let state: &mut [f32] = &mut state[#start..#end];);
        let here = buf(current);
        let body = match &code.code {
            SliceForward::Same => continue,
            SliceForward::InPlace(c) if layer.code.mask_rule() == MaskRule::Produce => {
                quote_spanned!(layer.span=> let keep: bool = { #state let x: &mut [f32] = &mut #here[..#len_in]; #c };)
            }
            SliceForward::InPlace(c) => {
                quote_spanned!(layer.span=> { #state let x: &mut [f32] = &mut #here[..#len_in]; #c })
            }
            SliceForward::Map(c) => {
                current = 1 - current;
                let there = buf(current);
                let map = quote_spanned!(layer.span=> {
                    #state
                    let x: &[f32] = &#here[..#len_in];
                    let y: &mut [f32] = &mut #there[..#len_out];
                    #c
                });
                // `Embedding(mask_zero = True)`: a map whose code evaluates to `keep`.
                match layer.code.mask_rule() {
                    MaskRule::Produce => quote!(let keep: bool = #map;),
                    _ => map,
                }
            }
        };
        let in_tail = last_only_at.is_some_and(|at| i > at);
        steps.push(if in_tail && layer.code.mask_rule() != MaskRule::Produce {
            quote!(if tail { #body })
        } else {
            body
        });
    }
    let state_len = offset;
    let last_buf = buf(current);
    let ids_tokens = match ids {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let last_only = last_only_at.is_some();
    let state_ty = quote!(::kiln::StreamState<#state_len, #scratch_len>);
    let sizes = StepSizes {
        features,
        out_len,
        last_only,
    };
    let stateful_methods = stateful(model, &state_ty, sizes, &ids_tokens);
    let step_in = quote!(::kiln::__private::Sample<#features, 1>);
    let step_out = quote!(::kiln::__private::Sample<#out_len, 1>);
    let streaming_impl = (!last_only).then(|| {
        quote! {
            impl ::kiln::Streaming for #name {
                type State = #state_ty;
                type StepInput = #step_in;
                type StepOutput = #step_out;

                fn new_state(&self) -> Self::State {
                    ::kiln::StreamState::new()
                }

                #[inline]
                fn step(&self, state: &mut Self::State, x: &Self::StepInput) -> Self::StepOutput {
                    // Compiled once per instruction set, chosen once per process.
                    ::kiln::__private::dispatch(
                        #[inline(always)]
                        move || {
                            let mut y = <#step_out>::zeros();
                            let (state, scratch) = state.values_and_scratch_mut();
                            self.__stream_step(
                                state,
                                scratch,
                                x.as_slice(),
                                y.as_mut_slice(),
                                true,
                            );
                            y
                        },
                    )
                }
            }
        }
    });
    let sequence_doc = if last_only {
        "Runs a whole sequence of any length (`timesteps * features` values, row-major, at \
         least one timestep) one timestep at a time and returns the last recurrent layer's \
         output for it, through the layers after it: Keras's `predict` on that sequence."
    } else {
        "Runs a whole sequence of any length (`timesteps * features` values, row-major, at \
         least one timestep) one timestep at a time and returns every timestep's output \
         (`timesteps * outputs` values): Keras's `predict` on that sequence."
    };
    quote! {
        impl #name {
            /// The streaming state at the start of a sequence (zeros): every recurrent
            /// layer's carried values, for `predict_chunk` (and `kiln::Streaming::step`).
            #vis fn new_state(&self) -> #state_ty {
                ::kiln::StreamState::new()
            }

            #[doc(hidden)]
            #[inline(always)]
            #[allow(unused_variables, unused_mut, clippy::let_unit_value)]
            #vis fn __stream_step(&self, state: &mut [f32], scratch: &mut [f32], input: &[f32], output: &mut [f32], tail: bool) {
                let (scratch, buffers) = scratch.split_at_mut(#layer_scratch);
                let (buf_a, buf_b) = buffers.split_at_mut(#width);
                buf_a[..#features].copy_from_slice(&input[..#features]);
                #(#steps)*
                if tail {
                    output[..#out_len].copy_from_slice(&#last_buf[..#out_len]);
                }
            }

            ::kiln::__private::with_alloc! {
                #[doc = #sequence_doc]
                ///
                /// Errors: a length that is not a positive multiple of `features`, a value
                /// that is NaN or infinite.
                #vis fn predict_sequence(&self, xs: &[f32]) -> ::core::result::Result<::kiln::__private::Vec<f32>, ::kiln::Error> {
                    let mut state = Self::new_state(self);
                    self.predict_chunk(&mut state, xs)
                }

                /// [`Self::predict_sequence`] continuing from `state` and leaving it where
                /// the chunk ends: consecutive chunks give what one call on their
                /// concatenation gives (Keras's `stateful = True` `predict` over
                /// consecutive batches; reset with `kiln::Reset::reset`).
                #vis fn predict_chunk(&self, state: &mut #state_ty, xs: &[f32]) -> ::core::result::Result<::kiln::__private::Vec<f32>, ::kiln::Error> {
                    let (state, scratch) = state.values_and_scratch_mut();
                    ::kiln::streaming::run_sequence(xs, #features, #out_len, #last_only, #ids_tokens, |x, y, tail| {
                        ::kiln::__private::dispatch(
                            #[inline(always)]
                            || self.__stream_step(state, scratch, x, y, tail),
                        )
                    })
                }
            }
        }

        #streaming_impl
        #stateful_methods
    }
}

/// For a model with `stateful = True` layers and a fixed batch size `B`: `new_states` and
/// `predict_stateful`, Keras's calls of a stateful model (`model(x)` with `x` of `B`
/// sequences, each continuing its own state; `model.reset_states()` is
/// `kiln::Reset::reset(&mut states)`), over the same `__stream_step`.
fn stateful(
    model: &Model,
    state_ty: &TokenStream,
    sizes: StepSizes,
    ids: &TokenStream,
) -> TokenStream {
    let (true, Some(batch)) = (model.stateful, model.batch_size) else {
        return TokenStream::new();
    };
    let StepSizes {
        features,
        out_len,
        last_only,
    } = sizes;
    let (vis, name) = (&model.vis, &model.name);
    let fixed = (!model.variable_timesteps).then(|| model.input.0.first().copied().unwrap_or(1));
    let (timesteps, shape) = match fixed {
        Some(t) => (quote!(::core::option::Option::Some(#t)), format!("{t}")),
        None => (
            quote!(::core::option::Option::None),
            "any number of".to_string(),
        ),
    };
    let returns = if last_only {
        "each sequence's output (its last recurrent layer's last timestep, through the layers after it)"
    } else {
        "every timestep's output of each sequence"
    };
    let doc = format!(
        "Keras's call of this stateful model: `xs` holds {batch} sequences (the batch size of \
         the model input), each of {shape} timesteps of {features} values, and sequence `b` \
         continues from `states[b]`, leaving there the state where it ends. Returns \
         {returns}, sequence after sequence. `kiln::Reset::reset(&mut states)` is Keras's \
         `model.reset_states()`.\n\nErrors: a length that is not {batch} such sequences of \
         equal length, a value that is NaN or infinite; the states are then unchanged."
    );
    quote! {
        impl #name {
            /// One state per sample of the model's fixed batch size, at the start of a
            /// sequence (zeros), for `predict_stateful`.
            #vis fn new_states(&self) -> [#state_ty; #batch] {
                [::kiln::StreamState::new(); #batch]
            }

            ::kiln::__private::with_alloc! {
                #[doc = #doc]
                #vis fn predict_stateful(&self, states: &mut [#state_ty; #batch], xs: &[f32]) -> ::core::result::Result<::kiln::__private::Vec<f32>, ::kiln::Error> {
                    ::kiln::streaming::run_stateful(xs, #batch, #timesteps, #features, #out_len, #last_only, #ids, |b, x, y, tail| {
                        ::kiln::__private::dispatch(
                            #[inline(always)]
                            || {
                                let (state, scratch) = states[b].values_and_scratch_mut();
                                self.__stream_step(state, scratch, x, y, tail)
                            },
                        )
                    })
                }
            }
        }
    }
}

/// One timestep's sizes in a streaming model.
#[derive(Clone, Copy)]
struct StepSizes {
    features: usize,
    out_len: usize,
    last_only: bool,
}

/// A stand-in for a model that failed to check: the same name and visibility and a `Model`
/// impl whose methods are never run (the crate does not compile anyway).
pub fn fallback(def: &crate::ast::ModelDef) -> TokenStream {
    let (vis, name) = (&def.vis, &def.name);
    let mut attrs = def.attrs.clone();
    let baked = matches!(
        crate::baked::take_attribute(&mut attrs),
        Ok(Some(_)) | Err(_)
    );
    let pretrained =
        baked.then(|| quote!(impl #name { #vis const fn pretrained() -> Self { Self {} } }));
    let name_str = name.to_string();
    quote! {
        #(#attrs)*
        #vis struct #name {}

        impl ::kiln::Model for #name {
            type Input = ::kiln::__private::Sample<1, 1>;
            type Output = ::kiln::__private::Sample<1, 1>;
            const NAME: &'static str = #name_str;
            const INPUT_SHAPE: &'static [usize] = &[1];
            const OUTPUT_SHAPE: &'static [usize] = &[1];
            const INPUT_LEN: usize = 1;
            const OUTPUT_LEN: usize = 1;
            const PARAM_COUNT: usize = 0;
            const TRAINABLE_PARAM_COUNT: usize = 0;
            const WEIGHT_NAMES: &'static [&'static str] = &[];
            const WEIGHT_SHAPES: &'static [&'static [usize]] = &[];
            const LAYERS: &'static [::kiln::LayerInfo] = &[];
            const PREDICT_STACK_BYTES: usize = 0;
            type Scratch = [f32; 0];
            const PREDICT_INTO_STACK_BYTES: usize = 0;
            fn predict(&self, x: &Self::Input) -> Self::Output { *x }
            fn predict_into(&self, x: &Self::Input, y: &mut Self::Output, _scratch: &mut Self::Scratch) { *y = *x; }
            fn __weight(&self, _index: usize) -> &[f32] { &[] }
            ::kiln::__private::with_alloc! {
                fn new(_seed: u64) -> Self { Self {} }
                fn __forward_batch(
                    &self,
                    xs: &[f32],
                    _pass: &mut ::kiln::__private::Pass,
                ) -> (::kiln::__private::Vec<f32>, ::core::option::Option<::kiln::__private::Vec<bool>>) {
                    (xs.to_vec(), ::core::option::Option::None)
                }
                fn __weight_mut(&mut self, _index: usize) -> &mut [f32] { &mut [] }
            }
        }

        #pretrained
    }
}
