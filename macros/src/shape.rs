//! [`Shape`]: a per-sample tensor shape (no batch dimension), its arithmetic, its Keras-style
//! `Display`, and the Rust types that hold a tensor of that shape.

use proc_macro2::TokenStream;
use quote::quote;
use std::fmt;

/// A per-sample shape such as `(10, 64)`; every dimension is at least 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

/// Whether generated code handles one sample (stack, fixed size) or a batch (heap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sample,
    Batch,
}

/// The largest number of values one sample may hold. Larger tensors would not fit the stack
/// of a `predict` call (and usually mean a typo in a dimension).
pub const MAX_ELEMENTS: usize = 1 << 24;

impl Shape {
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of values, `None` on overflow.
    pub fn elements(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d))
    }

    /// Values per sample; shapes are only built by the checker after `elements` succeeded.
    pub fn len(&self) -> usize {
        self.elements().unwrap_or(usize::MAX)
    }

    /// The last axis: the rows of the matrix that holds the tensor.
    pub fn last(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// Product of all axes but the last: the columns of one sample's matrix.
    pub fn positions(&self) -> usize {
        self.len() / self.last().max(1)
    }

    /// The same shape with the last axis replaced.
    pub fn with_last(&self, last: usize) -> Shape {
        let mut dims = self.0.clone();
        if let Some(d) = dims.last_mut() {
            *d = last;
        }
        Shape(dims)
    }

    /// The Rust type of a tensor of this shape in `mode` (see `kiln_runtime::tensor`).
    pub fn tensor_type(&self, mode: Mode) -> TokenStream {
        let rows = self.last();
        match mode {
            Mode::Sample => {
                let cols = self.positions();
                quote!(::kiln::__private::Sample<#rows, #cols>)
            }
            Mode::Batch => quote!(::kiln::__private::Batch<#rows>),
        }
    }

    /// `&[d0, d1, ...]` as a constant expression.
    pub fn slice_tokens(&self) -> TokenStream {
        let dims = &self.0;
        quote!(&[#(#dims),*])
    }
}

/// A tuple of (possibly negative) integers as Python writes it: `(3, 4)`, `(-1,)`.
pub fn tuple_text(dims: &[i128]) -> String {
    let items: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    match items.as_slice() {
        [one] => format!("({one},)"),
        _ => format!("({})", items.join(", ")),
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_python() {
        assert_eq!(Shape(vec![64]).to_string(), "(64,)");
        assert_eq!(Shape(vec![3, 4]).to_string(), "(3, 4)");
    }

    #[test]
    fn matrix_view_puts_the_last_axis_in_rows() {
        let s = Shape(vec![4, 5, 3]);
        assert_eq!((s.last(), s.positions(), s.len()), (3, 20, 60));
        assert_eq!(Shape(vec![7]).positions(), 1);
        assert_eq!(s.with_last(8), Shape(vec![4, 5, 8]));
    }

    #[test]
    fn overflow_is_detected() {
        assert_eq!(Shape(vec![usize::MAX, 2]).elements(), None);
    }
}
