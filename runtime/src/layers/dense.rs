//! Keras's `Dense`: `output = activation(input · kernel + bias)` on the last axis. The
//! kernel here computes the affine part; the model applies the activation after it.

use super::Weights;
use crate::gemm::gemm;
#[cfg(feature = "alloc")]
use crate::gemm::transpose;
use crate::gemm::{affine_vector, Strided};
#[cfg(feature = "alloc")]
use crate::initializers::{weight_rng, Initializer};
use crate::param::{matrix, Param};
#[cfg(feature = "alloc")]
use crate::pool::Pool;
#[cfg(feature = "alloc")]
use crate::tensor::Batch;
use nalgebra::allocator::Allocator;
use nalgebra::{Const, DefaultAllocator, Dim, Matrix, OMatrix, SMatrix, SVector, Storage};

/// A densely connected layer from `I` to `U` units.
///
/// `y = x · kernel + bias` on the last axis of an input of any rank (the activation is
/// applied by the generated code, which knows it at compile time).
///
/// # Shapes
/// `(..., I)` -> `(..., U)`.
///
/// # Weights
/// - `kernel`: Keras shape `(I, U)`, row-major. kiln stores it as the `U x I` matrix `Wᵀ`
///   in column-major order, which is the same memory, so loading is a copy.
/// - `bias`: `(U,)`, present when `use_bias` (the default).
///
/// Both live on the heap ([`Dense::new`]), so a `Dense(4096)` on a 4096-wide input fits any
/// thread's stack, or in the binary's read-only data ([`Dense::baked`]).
///
/// # Example
/// ```
/// use kiln_runtime::layers::{Dense, Weights};
/// use kiln_runtime::{Initializer, Sample, Tensor};
///
/// // Keras: Dense(2) on 3 inputs, kernel [[1, 2], [3, 4], [5, 6]], bias [0.5, -0.5].
/// let mut dense = Dense::<3, 2>::new(true, Initializer::Zeros, Initializer::Zeros, 0, 0);
/// dense.weight_mut(0).copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// dense.weight_mut(1).copy_from_slice(&[0.5, -0.5]);
/// let y = dense.forward(&Sample::<3, 1>::from_values(&[1.0, 0.0, 1.0]));
/// assert_eq!(y.values(), &[6.5, 7.5]);
/// ```
#[derive(Debug, Clone)]
pub struct Dense<const I: usize, const U: usize> {
    /// `kernelᵀ`: row `u` holds the weights into unit `u`.
    pub kernel: Param<SMatrix<f32, U, I>>,
    /// One value per unit; `None` when the layer has no bias (`use_bias = False`).
    pub bias: Option<Param<SVector<f32, U>>>,
}

impl<const I: usize, const U: usize> Dense<I, U> {
    /// Keras weight shapes: kernel `(I, U)`, bias `(U,)`.
    pub const KERNEL_SHAPE: [usize; 2] = [I, U];
    /// See [`Dense::KERNEL_SHAPE`].
    pub const BIAS_SHAPE: [usize; 1] = [U];

    /// A layer initialised from `seed`; the kernel draws from stream `first_weight`, the
    /// bias from the next one (see [`weight_rng`]).
    #[cfg(feature = "alloc")]
    pub fn new(
        use_bias: bool,
        kernel_initializer: Initializer,
        bias_initializer: Initializer,
        seed: u64,
        first_weight: usize,
    ) -> Self {
        let mut kernel = Param::<SMatrix<f32, U, I>>::zeroed();
        kernel_initializer.fill(
            kernel.make_mut().as_mut_slice(),
            &Self::KERNEL_SHAPE,
            &mut weight_rng(seed, first_weight),
        );
        let bias = use_bias.then(|| {
            let mut bias = Param::<SVector<f32, U>>::zeroed();
            bias_initializer.fill(
                bias.make_mut().as_mut_slice(),
                &Self::BIAS_SHAPE,
                &mut weight_rng(seed, first_weight + 1),
            );
            bias
        });
        Dense { kernel, bias }
    }

    /// A layer whose weights stay in static memory (a model's `pretrained()`): the kernel's
    /// `I * U` values in Keras's layout and, when it has one, the bias.
    pub const fn baked(kernel: &'static [f32], bias: Option<&'static [f32]>) -> Self {
        Dense {
            kernel: Param::baked(matrix::<U, I>(kernel)),
            bias: match bias {
                Some(bias) => Some(Param::baked(matrix::<U, 1>(bias))),
                None => None,
            },
        }
    }

    /// The layer on one sample or a batch: `x` has `I` rows, one column per position.
    ///
    /// Always inlined: for small layers a call, and `y` going through memory, cost as much
    /// as the arithmetic (see BENCHMARKS.md). Which product runs is decided at compile time
    /// from the shapes: a layer of fewer than [`DISPATCH_MIN`] multiply-adds per column
    /// (`I * U`), or one sample of a layer of at most [`INLINE_SAMPLE_MAX`], runs the
    /// inlined product `small_affine`, column by column (a batch gets the bits of its
    /// samples alone), vectorised for the instruction set of the code it is inlined into
    /// (the generated `predict` is compiled per instruction set, `crate::isa::dispatch`); a
    /// larger one runs [`Dense::forward_slices`] on kiln's kernels for the CPU's best
    /// instruction set (chosen once per process, `crate::isa`).
    #[inline(always)]
    pub fn forward<C: Dim, S: Storage<f32, Const<I>, C>>(
        &self,
        x: &Matrix<f32, Const<I>, C, S>,
    ) -> OMatrix<f32, Const<U>, C>
    where
        DefaultAllocator: Allocator<Const<U>, C>,
    {
        // Through a reference: the matrix is `Copy`, and a by-value product would copy it.
        let kernel: &SMatrix<f32, U, I> = &self.kernel;
        let one_column = C::try_to_usize() == Some(1);
        if I * U < DISPATCH_MIN
            || (one_column && I * U <= INLINE_SAMPLE_MAX)
            || !x.data.is_contiguous()
        {
            // Column by column, so a sample of a batch, or a position of a sequence, gets
            // the same bits as the sample or position alone.
            let bias = self.bias.as_ref().map(|b| &b.data.0[0]);
            let mut y = OMatrix::<f32, Const<U>, C>::zeros_generic(Const::<U>, x.shape_generic().1);
            for (mut y, x) in y.column_iter_mut().zip(x.column_iter()) {
                let column = small_affine(&kernel.data.0, |j| x[j], bias);
                y.copy_from_slice(&column);
            }
            return y;
        }
        let mut y = OMatrix::<f32, Const<U>, C>::zeros_generic(Const::<U>, x.shape_generic().1);
        // SAFETY: the storage is contiguous (checked above), so its `I * ncols` values are
        // one slice in column-major order.
        let xs = unsafe { x.data.as_slice_unchecked() };
        self.forward_slices(xs, y.as_mut_slice());
        y
    }
}

/// `x · kernel + bias` for one column of a small layer, written out so that it is inlined
/// wherever it is used and vectorised for the instruction set of the code around it (the
/// generated `predict` runs on the CPU's best one, `crate::isa::dispatch`). The arithmetic
/// of nalgebra's static product: the columns of `Wᵀ` (`cols[j]`, input `j`'s weights)
/// scaled and summed in input order from `x₀ · cols[0]`, then the bias added.
#[inline(always)]
fn small_affine<const I: usize, const U: usize>(
    cols: &[[f32; U]; I],
    x: impl Fn(usize) -> f32,
    bias: Option<&[f32; U]>,
) -> [f32; U] {
    let mut y = [0.0f32; U];
    if let Some(first) = cols.first() {
        let x0 = x(0);
        for (y, w) in y.iter_mut().zip(first) {
            *y = w * x0;
        }
    }
    for (j, col) in cols.iter().enumerate().skip(1) {
        let xj = x(j);
        for (y, w) in y.iter_mut().zip(col) {
            *y += w * xj;
        }
    }
    if let Some(bias) = bias {
        for (y, b) in y.iter_mut().zip(bias) {
            *y += b;
        }
    }
    y
}

/// The fewest multiply-adds per column (`I * U`) for which [`Dense::forward`]
/// leaves nalgebra's inlined static product for kiln's run-time-dispatched kernels. Below
/// it, the call and `y` going through memory cost more than the wider vectors save
/// (measured in `benches/dense.rs`, group `dispatch threshold`, and BENCHMARKS.md,
/// "Performance (issue 11)").
pub const DISPATCH_MIN: usize = 2048;

/// The most multiply-adds (`I * U`) for which [`Dense::forward`] of one sample stays
/// inlined: the generated `predict` is compiled for the CPU's best instruction set
/// (`crate::isa::dispatch`), so the inlined product is as wide as the dispatched kernel, and
/// keeps `y` in registers without a call. Above it (W3's first layers), the dispatched
/// kernel's cache-line-aligned reads win (BENCHMARKS.md, "Performance (issue 11)").
pub const INLINE_SAMPLE_MAX: usize = 16384;

/// The most outputs for which [`Dense::forward_slices`] (`predict_into`) sums one vector
/// in the inlined product: its local array of `U` values (1 KiB) is what `predict_into`'s
/// stack bound allows for a kernel's frame, and more outputs than registers hold go
/// through memory either way.
pub const INLINE_SLICE_UNITS_MAX: usize = 256;

impl<const I: usize, const U: usize> Dense<I, U> {
    /// The layer on row-major slices holding whole `I`-vectors (`x`) and `U`-vectors (`y`,
    /// overwritten): `predict_into`'s form, and [`Dense::forward`]'s for all but small
    /// layers. One vector ([`affine_vector`]: `x · kernel` is rounded before the bias is
    /// added, as in nalgebra's product) or one product on kiln's GEMM kernels, both on the
    /// CPU's best instruction set; one vector of a layer of at most [`INLINE_SAMPLE_MAX`]
    /// multiply-adds and [`INLINE_SLICE_UNITS_MAX`] outputs runs `small_affine` inlined, as
    /// [`Dense::forward`] does (a call costs more than the arithmetic there: W1's
    /// `predict_into` took 4.5× its `predict`).
    #[inline(always)]
    pub fn forward_slices(&self, x: &[f32], y: &mut [f32]) {
        let n = x.len() / I.max(1);
        if n == 1 && I * U <= INLINE_SAMPLE_MAX && U <= INLINE_SLICE_UNITS_MAX {
            let (x, bias) = (&x[..I], self.bias.as_ref().map(|b| &b.data.0[0]));
            // Summed in a local array the compiler keeps in registers (in `y` itself, a
            // slice it cannot prove apart from `x`, every step went through memory: W2's
            // `predict_into` took 3.4× as long).
            let column = small_affine(&self.kernel.data.0, |j| x[j], bias);
            y[..U].copy_from_slice(&column);
            return;
        }
        if n == 1 {
            let bias = self.bias.as_ref().map(|b| b.as_slice());
            affine_vector(&x[..I], self.kernel.as_slice(), bias, &mut y[..U]);
            return;
        }
        gemm(
            1.0,
            self.kernel.as_slice(),
            Strided::column_major(U, I),
            &x[..n * I],
            Strided::column_major(I, n),
            0.0,
            &mut y[..n * U],
            Strided::column_major(U, n),
        );
        if let Some(bias) = &self.bias {
            for column in y[..n * U].chunks_exact_mut(U) {
                for (v, b) in column.iter_mut().zip(bias.as_slice()) {
                    *v += b;
                }
            }
        }
    }
}

#[cfg(feature = "alloc")]
impl<const I: usize, const U: usize> Dense<I, U> {
    /// Training: adds this batch's weight gradients, given the layer input `x` (`I x N`) and
    /// `dz`, the loss gradient with respect to the affine output (`U x N`):
    /// kernel `+= dz · xᵀ` (stored like the kernel, so Keras's layout), bias `+= Σ dz`.
    pub fn accumulate_gradients(
        &self,
        x: &Batch<I>,
        dz: &Batch<U>,
        grad_kernel: &mut [f32],
        grad_bias: Option<&mut [f32]>,
    ) {
        self.weight_gradients(x, dz, grad_kernel, grad_bias, true);
    }

    /// [`Dense::accumulate_gradients`] into buffers whose values are overwritten rather than
    /// added to (kernel `= dz · xᵀ`, bias `= Σ dz`): no zeroing before, no read of the old
    /// values in the product (`Gradients::pair_to_overwrite`).
    pub fn write_gradients(
        &self,
        x: &Batch<I>,
        dz: &Batch<U>,
        grad_kernel: &mut [f32],
        grad_bias: Option<&mut [f32]>,
    ) {
        self.weight_gradients(x, dz, grad_kernel, grad_bias, false);
    }

    fn weight_gradients(
        &self,
        x: &Batch<I>,
        dz: &Batch<U>,
        grad_kernel: &mut [f32],
        grad_bias: Option<&mut [f32]>,
        add: bool,
    ) {
        let n = x.ncols();
        // dz (U x n) · xᵀ (n x I, x read through swapped strides), into the U x I gradient.
        gemm(
            1.0,
            dz.as_slice(),
            Strided::column_major(U, n),
            x.as_slice(),
            Strided::column_major(I, n).t(),
            if add { 1.0 } else { 0.0 },
            grad_kernel,
            Strided::column_major(U, I),
        );
        if let Some(grad_bias) = grad_bias {
            let grad_bias = &mut grad_bias[..U];
            if !add {
                grad_bias.fill(0.0);
            }
            // Summed from zero in batch order either way: the same bits.
            for column in dz.as_slice().chunks_exact(U) {
                for (g, d) in grad_bias.iter_mut().zip(column) {
                    *g += d;
                }
            }
        }
    }

    /// Training: `x · kernel + bias` into `out` (`U x N`, e.g. from the step's pool), the
    /// batch forward pass without allocating.
    pub fn forward_into(&self, x: &Batch<I>, out: &mut Batch<U>) {
        let n = x.ncols();
        gemm(
            1.0,
            self.kernel.as_slice(),
            Strided::column_major(U, I),
            x.as_slice(),
            Strided::column_major(I, n),
            0.0,
            out.as_mut_slice(),
            Strided::column_major(U, n),
        );
        if let Some(bias) = &self.bias {
            // The bias as a slice: nalgebra's element iterator checks for a column end at
            // every step, which kept this loop scalar (13% of a digits `fit` epoch).
            for column in out.as_mut_slice().chunks_exact_mut(U) {
                for (v, b) in column.iter_mut().zip(bias.as_slice()) {
                    *v += b;
                }
            }
        }
    }

    /// Training: the loss gradient with respect to the input, `kernel · dz` (`I x N`).
    pub fn input_gradient(&self, dz: &Batch<U>) -> Batch<I> {
        let mut dx = Batch::<I>::zeros(dz.ncols());
        self.input_gradient_into(dz, &mut dx, &mut Pool::default());
        dx
    }

    /// [`Dense::input_gradient`] into `dx` (`I x N`), without allocating once `pool` holds
    /// a buffer of the kernel's size.
    ///
    /// The product reads the stored `kernelᵀ` (`U x I`) transposed. From a batch of 8 on,
    /// the kernel is first transposed into a pooled buffer so the product runs on the
    /// outer-product kernel (the dot-product form spends about as long summing lanes as
    /// multiplying when `U` is 64); the transpose costs about one shuffle per 4 weights.
    pub fn input_gradient_into(&self, dz: &Batch<U>, dx: &mut Batch<I>, pool: &mut Pool) {
        let n = dz.ncols();
        if n >= 8 {
            let mut kernel = pool.take_vec_to_overwrite(U * I);
            transpose(self.kernel.as_slice(), U, I, &mut kernel);
            gemm(
                1.0,
                &kernel,
                Strided::column_major(I, U),
                dz.as_slice(),
                Strided::column_major(U, n),
                0.0,
                dx.as_mut_slice(),
                Strided::column_major(I, n),
            );
            pool.give_vec(kernel);
            return;
        }
        gemm(
            1.0,
            self.kernel.as_slice(),
            Strided::column_major(U, I).t(),
            dz.as_slice(),
            Strided::column_major(U, n),
            0.0,
            dx.as_mut_slice(),
            Strided::column_major(I, n),
        );
    }
}

impl<const I: usize, const U: usize> Weights for Dense<I, U> {
    fn weight(&self, index: usize) -> &[f32] {
        match (index, &self.bias) {
            (0, _) => self.kernel.as_slice(),
            (_, Some(bias)) => bias.as_slice(),
            (_, None) => &[],
        }
    }
    #[cfg(feature = "alloc")]
    fn weight_mut(&mut self, index: usize) -> &mut [f32] {
        match (index, &mut self.bias) {
            (0, _) => self.kernel.make_mut().as_mut_slice(),
            (_, Some(bias)) => bias.make_mut().as_mut_slice(),
            (_, None) => &mut [],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Batch, Sample, Tensor};

    fn layer() -> Dense<3, 2> {
        let mut d = Dense::<3, 2>::new(true, Initializer::Zeros, Initializer::Zeros, 0, 0);
        // Keras kernel (3, 2) row-major: [[1, 2], [3, 4], [5, 6]]
        d.weight_mut(0)
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        d.weight_mut(1).copy_from_slice(&[0.5, -0.5]);
        d
    }

    #[test]
    fn kernel_memory_is_keras_layout() {
        let y = layer().forward(&Sample::<3, 1>::from_values(&[1.0, 1.0, 1.0]));
        // x · K = [1+3+5, 2+4+6] + bias
        assert_eq!(y.values(), &[9.5, 11.5]);
    }

    #[test]
    fn rank_two_and_batches_use_the_last_axis() {
        let d = layer();
        let x = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let per_row = d.forward(&Sample::<3, 2>::from_values(&x));
        assert_eq!(per_row.values(), &[1.5, 1.5, 5.5, 5.5]);
        let batch = d.forward(&Batch::<3>::from_values(&x));
        assert_eq!(batch.values(), per_row.values());
    }

    /// A layer with values in [-1, 1) (a 64-bit LCG) and, when `use_bias`, a bias.
    fn filled<const I: usize, const U: usize>(use_bias: bool, seed: u64) -> Dense<I, U> {
        let mut d = Dense::<I, U>::new(use_bias, Initializer::Zeros, Initializer::Zeros, 0, 0);
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        d.weight_mut(0).iter_mut().for_each(|w| *w = next());
        d.weight_mut(1).iter_mut().for_each(|w| *w = next());
        d
    }

    /// `x · kernel + bias` for every column of `x` (`I` rows, column-major) in f64.
    fn reference<const I: usize, const U: usize>(d: &Dense<I, U>, x: &[f32]) -> Vec<f64> {
        let (kernel, bias) = (d.weight(0), d.bias.as_ref().map(|b| b.as_slice()));
        x.chunks_exact(I)
            .flat_map(|x| {
                (0..U).map(move |u| {
                    let sum: f64 = (0..I)
                        .map(|i| f64::from(x[i]) * f64::from(kernel[i * U + u]))
                        .sum();
                    sum + bias.map_or(0.0, |b| f64::from(b[u]))
                })
            })
            .collect()
    }

    fn assert_near(what: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what} ({:?}): output {j} = {g}, f64 reference {w}",
                crate::isa::isa()
            );
        }
    }

    /// Every route `forward` can take — the inlined product below `DISPATCH_MIN` (and for
    /// one sample up to `INLINE_SAMPLE_MAX`), the one-vector kernel and the GEMM above
    /// them, batches of 0, 1 and many — and
    /// `forward_slices` (what `predict_into` runs) agree with an f64 reference, with and
    /// without a bias, on this process's instruction set (`KILN_ISA` picks another).
    #[test]
    fn every_route_matches_an_f64_reference() {
        fn check<const I: usize, const U: usize>(use_bias: bool) {
            let d = filled::<I, U>(use_bias, (I * 31 + U) as u64);
            let x: Vec<f32> = filled::<7, 1>(false, I as u64).weight(0).to_vec();
            let x: Vec<f32> = (0..I * 5)
                .map(|i| x[i % 7] * (1.0 + i as f32 / 97.0))
                .collect();
            let what = format!("Dense<{I}, {U}> bias {use_bias}");
            let one = d.forward(&Sample::<I, 1>::from_values(&x[..I]));
            assert_near(
                &format!("{what}, one sample"),
                one.values(),
                &reference(&d, &x[..I]),
            );
            let three = d.forward(&Sample::<I, 3>::from_values(&x[..3 * I]));
            assert_near(
                &format!("{what}, rank 2"),
                three.values(),
                &reference(&d, &x[..3 * I]),
            );
            for n in [0, 1, 5] {
                let batch = d.forward(&Batch::<I>::from_values(&x[..n * I]));
                let want = reference(&d, &x[..n * I]);
                assert_near(&format!("{what}, batch {n}"), batch.values(), &want);
                let mut y = vec![f32::NAN; n * U];
                d.forward_slices(&x[..n * I], &mut y);
                assert_near(&format!("{what}, slices {n}"), &y, &want);
            }
        }
        check::<3, 2>(true); // inlined, column by column
        check::<8, 16>(false);
        check::<32, 32>(true);
        check::<64, 64>(true); // dispatched from one column on
        check::<64, 64>(false);
        check::<100, 37>(true); // vector tails
        check::<37, 130>(false); // more outputs than one block of the one-vector kernel
        check::<300, 1>(true); // one output: a dot product
        check::<128, 136>(false); // one sample dispatched (above `INLINE_SAMPLE_MAX`)
        check::<8, 300>(true); // slices of one sample dispatched (above `INLINE_SLICE_UNITS_MAX`)
    }

    /// Both ways of computing `kernel · dz` (dot products below a batch of 8, a transposed
    /// kernel on the outer-product kernel from 8 on) agree with nalgebra's product.
    #[test]
    fn input_gradient_is_the_kernel_times_dz_at_every_batch_size() {
        let mut dense = Dense::<37, 21>::new(false, Initializer::Zeros, Initializer::Zeros, 0, 0);
        for (i, w) in dense.weight_mut(0).iter_mut().enumerate() {
            *w = ((i * 7) % 23) as f32 * 0.1 - 1.0;
        }
        for n in [1, 3, 7, 8, 9, 32] {
            let dz = Batch::<21>::from_values(
                &(0..21 * n)
                    .map(|i| ((i * 5) % 11) as f32 * 0.2 - 1.0)
                    .collect::<Vec<_>>(),
            );
            let dx = dense.input_gradient(&dz);
            let expected = dense.kernel.transpose() * &dz;
            for (got, want) in dx.as_slice().iter().zip(expected.as_slice()) {
                assert!((got - want).abs() <= 1e-4, "n = {n}: {got} vs {want}");
            }
        }
    }
}
