//! Data that streams: the [`Dataset`] trait that [`super::Trainer::fit_dataset`] trains on,
//! one batch at a time, and [`batches`], a dataset from a closure that makes each epoch's
//! iterator of batches.

use super::fit::Source;
use crate::error::Error;
use alloc::string::ToString;
use alloc::vec::Vec;

/// Batches that `fit_dataset` asks for one at a time, so the data never has to fit in
/// memory (Keras's `PyDataset` / generator input).
///
/// ```
/// use kiln_runtime::{Dataset, Error};
///
/// /// Counts 0, 1, 2, ... as `x` and twice that as `y`, in batches of 4, 3 per epoch.
/// struct Counting { next: usize }
///
/// impl Dataset for Counting {
///     fn steps_per_epoch(&self) -> Option<usize> { Some(3) }
///     fn start_epoch(&mut self, _epoch: usize) -> Result<(), Error> {
///         self.next = 0;
///         Ok(())
///     }
///     fn next_batch(&mut self, x: &mut Vec<f32>, y: &mut Vec<f32>, _w: &mut Vec<f32>)
///         -> Result<bool, Error> {
///         if self.next == 12 { return Ok(false); }
///         for i in self.next..self.next + 4 {
///             x.push(i as f32);
///             y.push(2.0 * i as f32);
///         }
///         self.next += 4;
///         Ok(true)
///     }
/// }
/// ```
pub trait Dataset {
    /// Batches per epoch when known: `fit` then stops each epoch after that many (Keras's
    /// `steps_per_epoch`) and the progress bar shows the count. `FitOptions::steps_per_epoch`
    /// overrides it. Default unknown: an epoch ends when [`Dataset::next_batch`] says so.
    fn steps_per_epoch(&self) -> Option<usize> {
        None
    }

    /// Called before each epoch (`epoch` from `initial_epoch`): rewind a file, reshuffle.
    /// Default: nothing.
    fn start_epoch(&mut self, epoch: usize) -> Result<(), Error> {
        let _ = epoch;
        Ok(())
    }

    /// Writes the next batch into the empty buffers: the samples' inputs into `x`, their
    /// labels into `y`, and optionally one weight per sample into `sample_weight` (left
    /// empty: unweighted). Returns `false`, writing nothing, when the epoch's data is used
    /// up. The buffers keep their capacity from call to call, so a dataset that fills them
    /// in place allocates nothing per step.
    fn next_batch(
        &mut self,
        x: &mut Vec<f32>,
        y: &mut Vec<f32>,
        sample_weight: &mut Vec<f32>,
    ) -> Result<bool, Error>;
}

/// A [`Dataset`] from `make(epoch)`, which returns that epoch's iterator of
/// `Result<(x, y), E>` batches (reading a file from the start, say); an `Err` ends `fit`
/// with [`Error::Dataset`] holding its message. Build it with [`batches`].
pub struct Batches<F, I> {
    make: F,
    current: Option<I>,
    steps: Option<usize>,
}

/// A [`Dataset`] from a closure making each epoch's iterator of batches (a model needs
/// the facade's `kiln::model!`, so this example is compiled and run in the facade's
/// tests, `tests/fit_data.rs`):
///
/// ```ignore
/// use kiln::{batches, Adam, FitOptions, Loss, Model};
///
/// kiln::model! { Net = Sequential([Input(shape = (1,)), Dense(1)]); }
///
/// // Each epoch reads the "file" from the start: here, 5 batches of 8 made on the fly.
/// let mut data = batches(|_epoch| {
///     (0..5).map(|b| {
///         let x: Vec<f32> = (0..8).map(|i| (b * 8 + i) as f32 / 40.0).collect();
///         let y = x.iter().map(|v| 3.0 * v + 1.0).collect();
///         Ok::<_, std::io::Error>((x, y))
///     })
/// })
/// .with_steps_per_epoch(5);
/// let mut trainer = Net::new(1).compile(Adam::default(), Loss::MeanSquaredError);
/// let options = FitOptions { epochs: 3, verbose: false, ..FitOptions::default() };
/// let history = trainer.fit_dataset(&mut data, &options, &mut [])?;
/// assert_eq!(history.get("loss").map(|l| l.len()), Some(3));
/// # Ok::<(), kiln::Error>(())
/// ```
pub fn batches<F, I, E>(make: F) -> Batches<F, I>
where
    F: FnMut(usize) -> I,
    I: Iterator<Item = Result<(Vec<f32>, Vec<f32>), E>>,
    E: core::fmt::Display,
{
    Batches {
        make,
        current: None,
        steps: None,
    }
}

impl<F, I> Batches<F, I> {
    /// Declares the batches per epoch (for the progress bar; `fit` stops after them).
    pub fn with_steps_per_epoch(mut self, steps: usize) -> Self {
        self.steps = Some(steps);
        self
    }
}

impl<F, I, E> Dataset for Batches<F, I>
where
    F: FnMut(usize) -> I,
    I: Iterator<Item = Result<(Vec<f32>, Vec<f32>), E>>,
    E: core::fmt::Display,
{
    fn steps_per_epoch(&self) -> Option<usize> {
        self.steps
    }

    fn start_epoch(&mut self, epoch: usize) -> Result<(), Error> {
        self.current = Some((self.make)(epoch));
        Ok(())
    }

    fn next_batch(
        &mut self,
        x: &mut Vec<f32>,
        y: &mut Vec<f32>,
        _sample_weight: &mut Vec<f32>,
    ) -> Result<bool, Error> {
        match self.current.as_mut().and_then(Iterator::next) {
            None => Ok(false),
            Some(Ok((bx, by))) => {
                x.extend_from_slice(&bx);
                y.extend_from_slice(&by);
                Ok(true)
            }
            Some(Err(e)) => Err(Error::Dataset {
                message: e.to_string(),
            }),
        }
    }
}

/// A dataset as `fit`'s source of batches.
pub(super) struct DatasetSource<'d> {
    pub dataset: &'d mut dyn Dataset,
}

impl Source for DatasetSource<'_> {
    fn steps(&self) -> Option<usize> {
        self.dataset.steps_per_epoch()
    }

    fn start_epoch(&mut self, epoch: usize) -> Result<(), Error> {
        self.dataset.start_epoch(epoch)
    }

    fn next(
        &mut self,
        x: &mut Vec<f32>,
        y: &mut Vec<f32>,
        w: &mut Vec<f32>,
    ) -> Result<bool, Error> {
        self.dataset.next_batch(x, y, w)
    }

    fn unchecked(&self) -> bool {
        true
    }
}
