//! Writes the `weight_file` target's seed corpus: valid files in every dtype kiln reads,
//! then truncated, byte-flipped and otherwise broken versions of them.
//!
//! `cargo run --release --bin weight_file_seeds [DIR]` (default `seeds/weight_file`).
//! Every seed is also run through `check`, so a seed that already crashes is caught here.

use kiln::Model;
use kiln_fuzz::{check, net_file, outcome_kind, safetensors_file, Net};
use safetensors::tensor::Dtype;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "seeds/weight_file".to_string()),
    );
    std::fs::create_dir_all(&dir).expect("create the seed folder");
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();

    let own = Net::new(1).weights_to_bytes();
    seeds.push(("valid-own-f32".into(), own.clone()));
    for (label, dtype) in [
        ("f32", Dtype::F32),
        ("f64", Dtype::F64),
        ("f16", Dtype::F16),
        ("bf16", Dtype::BF16),
    ] {
        seeds.push((format!("valid-{label}"), net_file(dtype)));
    }

    // Truncations: inside the length prefix, inside the header, right after it, inside the data.
    let header_end = 8 + u64::from_le_bytes(own[..8].try_into().expect("8 bytes")) as usize;
    for (label, len) in [
        ("prefix", 5),
        ("header", header_end / 2),
        ("header-end", header_end),
        ("data", (header_end + own.len()) / 2),
        ("last-byte", own.len() - 1),
    ] {
        seeds.push((format!("truncated-{label}"), own[..len].to_vec()));
    }

    // Byte flips: the length prefix, a header byte, a data byte.
    for (label, at) in [
        ("prefix", 0),
        ("header", header_end / 3),
        ("data", header_end + 3),
    ] {
        let mut bytes = own.clone();
        bytes[at] ^= 0xFF;
        seeds.push((format!("flipped-{label}"), bytes));
    }

    // A NaN in the first F32 value; an F16 infinity; an F64 value too big for f32.
    let mut nan = own.clone();
    nan[header_end..header_end + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    seeds.push(("nan-f32".into(), nan));
    let mut f16_inf = net_file(Dtype::F16);
    let f16_header_end = 8 + u64::from_le_bytes(f16_inf[..8].try_into().expect("8 bytes")) as usize;
    f16_inf[f16_header_end..f16_header_end + 2].copy_from_slice(&[0x00, 0x7C]);
    seeds.push(("inf-f16".into(), f16_inf));
    let mut f64_big = net_file(Dtype::F64);
    let f64_header_end = 8 + u64::from_le_bytes(f64_big[..8].try_into().expect("8 bytes")) as usize;
    f64_big[f64_header_end..f64_header_end + 8].copy_from_slice(&1e300f64.to_le_bytes());
    seeds.push(("overflow-f64".into(), f64_big));

    // Structural mistakes, each a well-formed safetensors file.
    let tensor = |name: &'static str, dtype: Dtype, shape: &[usize]| {
        let n: usize = shape.iter().product();
        (
            name,
            dtype,
            shape.to_vec(),
            vec![0u8; n * dtype.bitsize() / 8],
        )
    };
    let all = |dtype: Dtype| -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
        Net::WEIGHT_NAMES
            .iter()
            .zip(Net::WEIGHT_SHAPES)
            .map(|(name, shape)| tensor(name, dtype, shape))
            .collect()
    };
    let mut missing = all(Dtype::F32);
    missing.pop();
    seeds.push(("missing-weight".into(), safetensors_file(&missing)));
    let mut extra = all(Dtype::F32);
    extra.push(tensor("dense_2/kernel", Dtype::F32, &[2, 2]));
    seeds.push(("extra-weight".into(), safetensors_file(&extra)));
    let mut transposed = all(Dtype::F32);
    transposed[0] = tensor("dense/kernel", Dtype::F32, &[5, 4]);
    seeds.push(("wrong-shape".into(), safetensors_file(&transposed)));
    seeds.push(("int-dtype".into(), safetensors_file(&all(Dtype::I32))));
    seeds.push(("empty-file".into(), safetensors_file(&[])));
    let with_metadata = {
        let views = all(Dtype::F32);
        let views: Vec<_> = views
            .iter()
            .map(|(name, dtype, shape, data)| {
                let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data)
                    .expect("a consistent tensor");
                (name.to_string(), view)
            })
            .collect();
        let metadata = [("format".to_string(), "pt".to_string())].into();
        safetensors::serialize(views, Some(metadata)).expect("serializable")
    };
    seeds.push(("with-metadata".into(), with_metadata));

    for (name, bytes) in &seeds {
        let kind = outcome_kind(&check(bytes));
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write a seed");
        println!("{:>5} bytes  {kind:<40} {}", bytes.len(), path.display());
    }
}
