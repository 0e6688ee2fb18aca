//! Python's formatting where Keras's output depends on it: `repr` of a float (the CSV log)
//! and `str.format` of a file-name template (`ModelCheckpoint`'s `{epoch:02d}`,
//! `{val_loss:.4f}`).

use alloc::string::{String, ToString};

/// Python's `repr(float(v))`: the shortest digits that read back as `v`, in positional
/// notation for decimal exponents -4 to 15 (with `.0` on whole numbers), scientific with a
/// signed two-digit exponent otherwise (`1e-05`, `1.5e+16`).
pub fn repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = alloc::format!("{v:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let mut s = v.to_string();
        if !s.contains('.') {
            s.push_str(".0");
        }
        s
    } else {
        python_exponent(mantissa, exponent)
    }
}

/// `mantissa` then Python's exponent: `e`, a sign, at least two digits.
fn python_exponent(mantissa: &str, exponent: i32) -> String {
    let sign = if exponent < 0 { '-' } else { '+' };
    alloc::format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
}

/// A value a template field names: Keras passes `epoch` as an int and logs as floats.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    /// An integer (`epoch`, `batch`).
    Int(i64),
    /// A float (a logged value, widened from f32 as Keras's logs are).
    Float(f64),
}

/// Python's `template.format(**values)` for the fields Keras's file names use:
/// `{name}` and `{name:spec}` with spec `[0][width][.precision][d|f|e|%]`, and `{{` / `}}`.
/// An error names the field that is missing or the spec that is not understood.
pub fn format(template: &str, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut field = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => field.push(c),
                        None => return Err(alloc::format!("unclosed field `{{{field}`")),
                    }
                }
                let (name, spec) = field.split_once(':').unwrap_or((&field, ""));
                let value =
                    lookup(name).ok_or_else(|| alloc::format!("no value named `{name}`"))?;
                out.push_str(
                    &format_value(value, spec)
                        .ok_or_else(|| alloc::format!("cannot format `{name}` with `{spec}`"))?,
                );
            }
            '}' => return Err("single `}` in the template".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// One field's value under a format spec.
fn format_value(value: Value, spec: &str) -> Option<String> {
    let zero = spec.starts_with('0');
    let spec = spec.strip_prefix('0').unwrap_or(spec);
    let kind = spec
        .chars()
        .last()
        .filter(|c| c.is_ascii_alphabetic() || *c == '%');
    let spec = match kind {
        Some(k) => &spec[..spec.len() - k.len_utf8()],
        None => spec,
    };
    let (width, precision) = match spec.split_once('.') {
        Some((w, p)) => (w, Some(p.parse::<usize>().ok()?)),
        None => (spec, None),
    };
    let width: usize = if width.is_empty() {
        0
    } else {
        width.parse().ok()?
    };
    let body = match (kind, value) {
        (None, Value::Int(i)) if precision.is_none() => i.to_string(),
        (None, Value::Float(f)) if precision.is_none() => repr(f),
        (Some('d'), Value::Int(i)) => i.to_string(),
        (Some('f'), v) | (None, v) => alloc::format!("{:.*}", precision.unwrap_or(6), as_f64(v)),
        (Some('%'), v) => alloc::format!("{:.*}%", precision.unwrap_or(6), as_f64(v) * 100.0),
        (Some('e'), v) => {
            let s = alloc::format!("{:.*e}", precision.unwrap_or(6), as_f64(v));
            let (m, e) = s.split_once('e')?;
            python_exponent(m, e.parse().ok()?)
        }
        _ => return None,
    };
    Some(pad(body, width, zero))
}

fn as_f64(v: Value) -> f64 {
    match v {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
    }
}

/// Right-aligns `body` to `width` (numbers align right in Python), with zeros after the
/// sign when `zero`.
fn pad(body: String, width: usize, zero: bool) -> String {
    let len = body.chars().count();
    if len >= width {
        return body;
    }
    let fill = width - len;
    if zero {
        let (sign, digits) = match body.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", body.as_str()),
        };
        alloc::format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        alloc::format!("{}{body}", " ".repeat(fill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(repr(0.5), "0.5");
        assert_eq!(repr(3.0), "3.0");
        assert_eq!(repr(f64::from(1e-5f32)), "9.999999747378752e-06");
        assert_eq!(repr(f64::from(1e16f32)), "1.0000000272564224e+16");
        assert_eq!(repr(1e16), "1e+16");
        assert_eq!(repr(0.0001), "0.0001");
        assert_eq!(repr(123456789012345.0), "123456789012345.0");
    }

    #[test]
    fn templates_match_python() {
        let lookup = |name: &str| match name {
            "epoch" => Some(Value::Int(3)),
            "val_loss" => Some(Value::Float(0.123456)),
            _ => None,
        };
        let f = |t: &str| format(t, &lookup);
        assert_eq!(f("w-{epoch:02d}.bin").unwrap(), "w-03.bin");
        assert_eq!(f("{epoch}-{val_loss:.4f}").unwrap(), "3-0.1235");
        assert_eq!(f("{epoch:03d}_{val_loss:.2f}").unwrap(), "003_0.12");
        assert_eq!(f("{val_loss:.2e}").unwrap(), "1.23e-01");
        assert_eq!(f("{{x}}").unwrap(), "{x}");
        assert!(f("{loss}").is_err());
        assert!(f("{val_loss:d}").is_err());
    }
}
