//! `#[weights = "file.safetensors"]` on a model: [`take_attribute`] finds it among the
//! model's attributes, [`read`] reads the file at compile time and checks it against the
//! model's weights (every tensor present, none extra, Keras shapes, a readable dtype, finite
//! values), giving a [`Baked`] that `expand` turns into `pretrained()`.
//!
//! The file reaches the binary through `include_bytes!` (which also makes rebuilds follow
//! it) and each weight is a slice of it: no token per value, no parsing at run time. A file
//! whose tensors cannot be read in place (not F32, or not 4-byte aligned) is converted here
//! and emitted as one byte-string literal instead.

use proc_macro2::Span;
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::PathBuf;
use syn::{Attribute, Error, Expr, ExprLit, Lit, Meta};

/// The `#[weights = "..."]` attribute of a model.
pub struct WeightsAttribute {
    /// The path as written.
    pub path: String,
    /// The string literal, where errors about the file point.
    pub span: Span,
}

/// A model's baked weights, checked.
pub struct Baked {
    /// The file's absolute path, for `include_bytes!`.
    pub path: String,
    /// The bytes the weights are sliced from.
    pub source: Source,
    /// Per weight, in the model's order: byte offset into the source and value count.
    pub tensors: Vec<(usize, usize)>,
}

/// Where `pretrained()` reads the values.
pub enum Source {
    /// The file itself (`include_bytes!`), this many bytes long.
    File(usize),
    /// These bytes (the file's tensors converted to little-endian f32), emitted as a literal.
    Converted(Vec<u8>),
}

/// Removes `#[weights = "..."]` from `attrs` (it is kiln's, not an attribute of the struct).
pub fn take_attribute(attrs: &mut Vec<Attribute>) -> Result<Option<WeightsAttribute>, Error> {
    let (mut found, rest): (Vec<Attribute>, Vec<Attribute>) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("weights"));
    *attrs = rest;
    if found.len() > 1 {
        return Err(Error::new_spanned(
            &found[1],
            "a model takes one `#[weights = \"...\"]` attribute",
        ));
    }
    let Some(attr) = found.pop() else {
        return Ok(None);
    };
    match &attr.meta {
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(Some(WeightsAttribute {
                path: s.value(),
                span: s.span(),
            })),
            other => Err(Error::new_spanned(
                other,
                "expected a path in a string: `#[weights = \"weights.safetensors\"]`",
            )),
        },
        _ => Err(Error::new_spanned(
            &attr,
            "expected `#[weights = \"path/to/file.safetensors\"]` (relative to the crate's Cargo.toml)",
        )),
    }
}

/// Reads and checks the file named by `attr` against the model's weights (`(name, shape)`
/// in the model's order).
pub fn read(attr: &WeightsAttribute, weights: &[(String, Vec<usize>)]) -> Result<Baked, Error> {
    let err = |message: String| Error::new(attr.span, message);
    let path = resolve(&attr.path);
    let shown = attr.path.as_str();
    let values: u64 = weights
        .iter()
        .map(|(_, shape)| shape.iter().map(|&d| d as u64).product::<u64>())
        .sum();
    let bytes = read_bounded(&path, values).map_err(|e| {
        err(format!(
            "cannot read weight file `{shown}`: {e}\n  note: the path is relative to the directory of the crate's Cargo.toml"
        ))
    })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| err(format!("`{shown}` is not a valid safetensors file: {e}")))?;
    let expected: Vec<&str> = weights.iter().map(|(n, _)| n.as_str()).collect();
    let mut problems = Vec::new();
    let mut located = Vec::new();
    for (name, shape) in weights {
        let Ok(tensor) = file.tensor(name) else {
            problems.push(format!(
                "`{shown}` has no tensor `{name}`; the model's weights are: {}",
                expected.join(", ")
            ));
            continue;
        };
        if tensor.shape() != shape.as_slice() {
            problems.push(format!(
                "weight `{name}` has shape {}, but `{shown}` holds shape {}",
                tuple(shape),
                tuple(tensor.shape())
            ));
            continue;
        }
        let Some(values) = to_f32(tensor.dtype(), tensor.data()) else {
            problems.push(format!(
                "weight `{name}` in `{shown}` is stored as {:?}; kiln reads F32, F16, BF16 and F64",
                tensor.dtype()
            ));
            continue;
        };
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            problems.push(format!(
                "weight `{name}` in `{shown}` has value {v} at index {i}; expected finite numbers"
            ));
            continue;
        }
        // The tensor's offset in the whole file: the 8-byte length, the header, its offset.
        let offset = tensor.data().as_ptr() as usize - bytes.as_ptr() as usize;
        let in_place = tensor.dtype() == Dtype::F32 && offset.is_multiple_of(4);
        located.push((offset, values, in_place));
    }
    let mut extra: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !expected.contains(n))
        .collect();
    extra.sort();
    for name in extra {
        problems.push(format!(
            "`{shown}` holds a tensor `{name}` that the model has no weight for; the model's weights are: {}",
            expected.join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(err)
            .reduce(|mut all, e| {
                all.combine(e);
                all
            })
            .unwrap_or_else(|| err(String::new())));
    }
    let path = path.display().to_string();
    if located.iter().all(|(_, _, in_place)| *in_place) {
        let tensors = located
            .iter()
            .map(|(offset, values, _)| (*offset, values.len()))
            .collect();
        return Ok(Baked {
            path,
            source: Source::File(bytes.len()),
            tensors,
        });
    }
    let mut converted = Vec::new();
    let mut tensors = Vec::new();
    for (_, values, _) in &located {
        tensors.push((converted.len(), values.len()));
        for v in values {
            converted.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(Baked {
        path,
        source: Source::Converted(converted),
        tensors,
    })
}

/// The file at `path`, if it is a regular file no larger than a safetensors file holding
/// `values` numbers can be (the length prefix, safetensors's largest header, 8 bytes a
/// value): a device (`/dev/zero`), a FIFO or a huge file would hang the compiler or exhaust
/// its memory.
fn read_bounded(path: &std::path::Path, values: u64) -> std::io::Result<Vec<u8>> {
    const MAX_HEADER: u64 = 100_000_000;
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let limit = values.saturating_mul(8).saturating_add(8 + MAX_HEADER);
    if metadata.len() > limit {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than a safetensors file of this model's {values} weight values can hold ({limit})",
            metadata.len()
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path)?, limit.saturating_add(1)),
        &mut bytes,
    )?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other("the file grew while it was read"));
    }
    Ok(bytes)
}

/// `path` relative to the crate being compiled (its `CARGO_MANIFEST_DIR`), unless absolute.
fn resolve(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        return path;
    }
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) => PathBuf::from(dir).join(path),
        None => path,
    }
}

/// Little-endian tensor data as f32, for the dtypes kiln reads.
fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// A shape as Python prints a tuple: `(3,)`, `(3, 4)`.
fn tuple(dims: &[usize]) -> String {
    crate::shape::Shape(dims.to_vec()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> PathBuf {
        let views = tensors.iter().map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).expect("valid view");
            (name.to_string(), view)
        });
        let bytes = safetensors::serialize(views, None).expect("serializes");
        // One file per call: tests run in parallel.
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("kiln-baked-{}-{n}.safetensors", std::process::id()));
        std::fs::write(&path, bytes).expect("temp file");
        path
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn attr(path: &std::path::Path) -> WeightsAttribute {
        WeightsAttribute {
            path: path.display().to_string(),
            span: Span::call_site(),
        }
    }

    fn weights() -> Vec<(String, Vec<usize>)> {
        vec![
            ("dense/kernel".into(), vec![2, 3]),
            ("dense/bias".into(), vec![3]),
        ]
    }

    #[test]
    fn f32_files_are_read_in_place() {
        let path = file(&[
            ("dense/kernel", Dtype::F32, vec![2, 3], f32_bytes(&[1.0; 6])),
            ("dense/bias", Dtype::F32, vec![3], f32_bytes(&[2.0; 3])),
        ]);
        let baked = read(&attr(&path), &weights()).map_err(|e| e.to_string());
        let baked = baked.expect("a matching file");
        assert!(matches!(baked.source, Source::File(_)));
        let bytes = std::fs::read(&path).expect("file");
        let (offset, len) = baked.tensors[1];
        assert_eq!(len, 3);
        assert_eq!(&bytes[offset..offset + 12], f32_bytes(&[2.0; 3]).as_slice());
    }

    #[test]
    fn other_dtypes_are_converted() {
        let half: Vec<u8> = [1.5f32; 6]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let path = file(&[
            ("dense/kernel", Dtype::F16, vec![2, 3], half),
            ("dense/bias", Dtype::F32, vec![3], f32_bytes(&[2.0; 3])),
        ]);
        let baked = read(&attr(&path), &weights()).map_err(|e| e.to_string());
        let Source::Converted(bytes) = baked.expect("converted").source else {
            panic!("an F16 tensor cannot be read in place");
        };
        assert_eq!(&bytes[..4], &1.5f32.to_le_bytes());
        assert_eq!(bytes.len(), 9 * 4);
    }

    #[test]
    fn every_problem_is_reported() {
        let path = file(&[
            ("dense/kernel", Dtype::F32, vec![3, 2], f32_bytes(&[1.0; 6])),
            ("dense/extra", Dtype::F32, vec![1], f32_bytes(&[f32::NAN])),
        ]);
        let message = match read(&attr(&path), &weights()) {
            Ok(_) => String::from("accepted"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        };
        assert!(
            message.contains("`dense/kernel` has shape (2, 3), but"),
            "{message}"
        );
        assert!(message.contains("no tensor `dense/bias`"), "{message}");
        assert!(
            message.contains("a tensor `dense/extra` that the model has no weight for"),
            "{message}"
        );
    }

    #[test]
    fn unreadable_files_are_errors() {
        let missing = read(
            &attr(std::path::Path::new("/nonexistent/w.safetensors")),
            &weights(),
        );
        assert!(missing.is_err());
        let path = std::env::temp_dir().join(format!("kiln-garbage-{}", std::process::id()));
        std::fs::write(&path, b"not a safetensors file").expect("temp file");
        let garbage = read(&attr(&path), &weights()).map(|_| ());
        let message = garbage.map_err(|e| e.to_string()).unwrap_err();
        assert!(
            message.contains("is not a valid safetensors file"),
            "{message}"
        );
    }
}
