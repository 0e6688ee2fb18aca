//! Every activation function and derivative in `kiln::activations` against Keras 3 on JAX
//! (golden data: tools/oracle/activations.py), through the free functions and through
//! `Activation` (`from_name`, `scalar`, `derivative`, `apply`); softmax and log-softmax with
//! their vector-Jacobian products; and property tests: softmax rows sum to 1, every
//! elementwise derivative matches a central finite difference away from its kinks.
//!
//! Tolerances. Values: 1e-6 relative (XLA's exp/tanh/erfc and the platform libm differ by
//! an ulp or two) plus 1e-30 absolute, because XLA on CPU flushes denormal results to 0
//! (`exp(-100)` is 0 in Keras, 3.7e-44 in kiln) and no relative tolerance covers that.
//! Derivatives: 1e-5 relative plus `derivative_atol`. Every loosening beyond that comes
//! from rounding in Keras's own formula (kiln uses the exact one, e.g. `alpha exp(x)` for
//! ELU where JAX takes `expm1(x) + 1`), and is sized by it; so does `value_atol` for
//! gelu's tanh form.
//!
//! Beyond rounding, kiln departs from Keras in one documented way: at x = +-inf, where
//! Keras's derivative multiplies inf by 0 and gives nan (silu, swish, mish, gelu,
//! softsign), kiln returns the limit; the golden file lists those entries, with Keras's
//! derivative at +-1e6 as the limit. The golden grid holds no denormal inputs (XLA reads
//! them as 0, a CPU flush mode rather than a definition), and the sign of a zero is not
//! compared (`assert_close` treats -0 == 0).

mod common;
use common::{assert_close, floats, golden};
use kiln::activations as act;
use kiln::Activation;
use proptest::prelude::*;
use serde_json::Value;

/// Values: relative tolerance (an ulp or two of XLA's vs libm's transcendental functions).
const RTOL: f32 = 1e-6;
/// Values: XLA flushes denormals to 0, kiln keeps them; the largest denormal is 1.2e-38.
const ATOL: f32 = 1e-30;
/// Derivatives: 1e-5 relative. Keras's derivatives are products and sums of rounded
/// intermediates (`(1 + t)(1 - t)` from a rounded `t = tanh x`, `s + x s (1 - s)`), so a
/// one-ulp difference in `t` or `s` moves the result by several ulps relative.
const DRTOL: f32 = 1e-5;

/// An elementwise golden case.
struct Case {
    name: String,
    function: String,
    args: Value,
    x: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    /// (index, limit): entries at +-inf where Keras's derivative is nan from inf * 0.
    at_inf: Vec<(usize, f32)>,
}

fn cases() -> Vec<Case> {
    let file = golden("activations");
    file["elementwise"]
        .as_array()
        .expect("`elementwise` list")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("name").to_string(),
            function: c["function"].as_str().expect("function").to_string(),
            args: c["args"].clone(),
            x: floats(&c["x"]),
            y: floats(&c["y"]),
            dy: floats(&c["dy"]),
            at_inf: c["derivative_at_inf"]
                .as_array()
                .expect("derivative_at_inf")
                .iter()
                .map(|e| {
                    let index = e["index"].as_u64().expect("index") as usize;
                    (index, e["limit"].as_f64().expect("limit") as f32)
                })
                .collect(),
        })
        .collect()
}

fn arg(args: &Value, name: &str, default: f32) -> f32 {
    args.get(name)
        .and_then(Value::as_f64)
        .map_or(default, |v| v as f32)
}

/// The `Activation` a case describes: `from_name` for a bare name (Keras's defaults), the
/// variant with the golden arguments otherwise.
fn activation(case: &Case) -> Activation {
    let args = &case.args;
    let has_args = args.as_object().is_some_and(|o| !o.is_empty());
    if !has_args {
        return Activation::from_name(&case.function)
            .unwrap_or_else(|| panic!("{}: `from_name` does not know it", case.name));
    }
    match case.function.as_str() {
        "relu" => Activation::Relu {
            negative_slope: arg(args, "negative_slope", 0.0),
            max_value: args
                .get("max_value")
                .and_then(Value::as_f64)
                .map(|v| v as f32),
            threshold: arg(args, "threshold", 0.0),
        },
        "leaky_relu" => Activation::LeakyRelu {
            negative_slope: arg(args, "negative_slope", 0.2),
        },
        "elu" => Activation::Elu {
            alpha: arg(args, "alpha", 1.0),
        },
        "gelu" => Activation::Gelu {
            approximate: args["approximate"].as_bool().expect("approximate"),
        },
        "thresholded_relu" => Activation::ThresholdedRelu {
            theta: arg(args, "theta", 1.0),
        },
        other => panic!("{}: no variant for `{other}` with arguments", case.name),
    }
}

type Scalar = Box<dyn Fn(f32) -> f32>;

/// The free functions of `kiln::activations` for a case: (value, derivative).
fn functions(case: &Case) -> (Scalar, Scalar) {
    fn pair(f: fn(f32) -> f32, d: fn(f32) -> f32) -> (Scalar, Scalar) {
        (Box::new(f), Box::new(d))
    }
    let args = case.args.clone();
    let has_args = args.as_object().is_some_and(|o| !o.is_empty());
    match case.function.as_str() {
        "linear" => pair(act::linear, act::linear_derivative),
        "sigmoid" => pair(act::sigmoid, act::sigmoid_derivative),
        "hard_sigmoid" => pair(act::hard_sigmoid, act::hard_sigmoid_derivative),
        "hard_sigmoid_keras2" => pair(
            act::hard_sigmoid_keras2,
            act::hard_sigmoid_keras2_derivative,
        ),
        "softplus" => pair(act::softplus, act::softplus_derivative),
        "softsign" => pair(act::softsign, act::softsign_derivative),
        "tanh" => pair(act::tanh, act::tanh_derivative),
        "relu" if !has_args => pair(act::relu, act::relu_derivative),
        "relu" => {
            let (s, m, t) = (
                arg(&args, "negative_slope", 0.0),
                args.get("max_value")
                    .and_then(Value::as_f64)
                    .map(|v| v as f32),
                arg(&args, "threshold", 0.0),
            );
            (
                Box::new(move |x| act::relu_with(x, s, m, t)),
                Box::new(move |x| act::relu_with_derivative(x, s, m, t)),
            )
        }
        "relu6" => pair(act::relu6, act::relu6_derivative),
        "leaky_relu" => {
            let s = arg(&args, "negative_slope", 0.2);
            (
                Box::new(move |x| act::leaky_relu(x, s)),
                Box::new(move |x| act::leaky_relu_derivative(x, s)),
            )
        }
        "elu" => {
            let a = arg(&args, "alpha", 1.0);
            (
                Box::new(move |x| act::elu(x, a)),
                Box::new(move |x| act::elu_derivative(x, a)),
            )
        }
        "selu" => pair(act::selu, act::selu_derivative),
        "gelu" => {
            let approximate = args
                .get("approximate")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (
                Box::new(move |x| act::gelu(x, approximate)),
                Box::new(move |x| act::gelu_derivative(x, approximate)),
            )
        }
        "exponential" => pair(act::exponential, act::exponential_derivative),
        "silu" | "swish" => pair(act::silu, act::silu_derivative),
        "hard_silu" | "hard_swish" => pair(act::hard_silu, act::hard_silu_derivative),
        "mish" => pair(act::mish, act::mish_derivative),
        "thresholded_relu" => {
            let theta = arg(&args, "theta", 1.0);
            (
                Box::new(move |x| act::thresholded_relu(x, theta)),
                Box::new(move |x| act::thresholded_relu_derivative(x, theta)),
            )
        }
        other => panic!("{}: no kiln function for `{other}`", case.name),
    }
}

/// Absolute slack for the value at `x`, beyond `RTOL` and `ATOL`, and why.
fn value_atol(case: &Case, x: f32) -> f32 {
    match case.function.as_str() {
        // Keras computes gelu's tanh form as x/2 (1 + tanh z): for z << 0 the sum keeps
        // only an ulp of 1 (6e-8) absolute, times x/2; kiln uses x sigmoid(2z), which does
        // not cancel (at x = -4.4 Keras is off by 2%).
        "gelu" if is_approximate(case) => f32::EPSILON * x.abs(),
        _ => 0.0,
    }
}

/// Absolute slack for the derivative at `x`, beyond `DRTOL` and `ATOL`, and why. Each is
/// the rounding error of Keras's own derivative formula, which kiln does not copy.
fn derivative_atol(case: &Case, x: f32) -> f32 {
    const EPS: f32 = f32::EPSILON;
    match case.function.as_str() {
        // Keras gets softplus' as exp(x - softplus(x)): softplus(x) is rounded to an ulp
        // of x (1e-6 at x = 15), which moves the derivative by that much in absolute
        // terms; kiln uses sigmoid(x) directly.
        "softplus" => 2.0 * EPS * x.abs().max(1.0),
        // Keras differentiates x / (|x| + 1) by the quotient rule,
        // 1/(|x|+1) - |x|/(|x|+1)^2, which cancels for large |x|: its error is an ulp of
        // 1/(|x|+1) (at 1e4, 1e-4 of the true 1e-8). Kiln uses 1/(|x|+1)^2.
        "softsign" => 2.0 * EPS / (x.abs() + 1.0),
        // JAX differentiates expm1 as expm1(x) + 1, which cancels for x << 0 (0 at x = -20
        // instead of 2e-9): half an ulp of 1, times alpha (and scale, for selu).
        "elu" | "selu" => EPS,
        // Derivatives from saturating outputs (1 - s, (1 + t)(1 - t)): a one-ulp difference
        // in s or t near +-1 (6e-8) is all that is left of them.
        "sigmoid" | "silu" | "swish" | "mish" => EPS,
        // The same, but XLA's tanh is a few ulps off near +-1 (at x = 5.18 Keras's tanh'
        // is 0.2% below the true 1.2767e-4, kiln's is within 1e-6).
        "tanh" => 4.0 * EPS,
        // Keras's tanh form: the ulp-of-1 error of its 1 + tanh z (see `value_atol`), times
        // the formula's sensitivity to it, 1/2 + |x| z'(x) with z' < 1 + 0.134 x^2.
        "gelu" if is_approximate(case) => 2.0 * EPS * (0.5 + x.abs() * (1.0 + 0.134 * x * x)),
        _ => 0.0,
    }
}

fn is_approximate(case: &Case) -> bool {
    case.args
        .get("approximate")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The derivative at +-inf: Keras's value at +-1e6 stands in for the limit, which it
/// reaches there to within 1e-9 (softsign' is 1e-12 at 1e6, 0 at inf).
const LIMIT_ATOL: f32 = 1e-9;

fn check_values(case: &Case, what: &str, actual: &[f32], failures: &mut Vec<String>) {
    for ((&x, &a), &e) in case.x.iter().zip(actual).zip(&case.y) {
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= ATOL + value_atol(case, x) + RTOL * e.abs()
        };
        if !ok {
            failures.push(format!("{what} at x = {x:e}: kiln {a:e}, Keras {e:e}"));
        }
    }
}

fn check_derivatives(case: &Case, what: &str, actual: &[f32], failures: &mut Vec<String>) {
    for (i, ((&x, &a), &e)) in case.x.iter().zip(actual).zip(&case.dy).enumerate() {
        let (e, atol, note) = match case.at_inf.iter().find(|(j, _)| *j == i) {
            // Keras: nan (inf * 0); kiln: the limit, which Keras reaches at +-1e6.
            Some(&(_, limit)) => (limit, LIMIT_ATOL, " (limit; Keras gives nan here)"),
            None => (e, ATOL + derivative_atol(case, x), ""),
        };
        let ok = if e.is_nan() {
            a.is_nan()
        } else if e.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + DRTOL * e.abs()
        };
        if !ok {
            failures.push(format!(
                "{what} at x = {x:e}: kiln {a:e}, Keras {e:e}{note}"
            ));
        }
    }
}

#[test]
fn elementwise_values_and_derivatives_match_keras() {
    let mut failures = Vec::new();
    for case in cases() {
        let (f, d) = functions(&case);
        let a = activation(&case);
        assert!(a.is_elementwise(), "{}", case.name);
        let name = &case.name;

        let free: Vec<f32> = case.x.iter().map(|&x| f(x)).collect();
        check_values(&case, &format!("{name} (free fn)"), &free, &mut failures);
        let scalar: Vec<f32> = case.x.iter().map(|&x| a.scalar(x)).collect();
        check_values(&case, &format!("{name} (scalar)"), &scalar, &mut failures);
        let mut applied = case.x.clone();
        a.apply(&mut applied, 7);
        check_values(&case, &format!("{name} (apply)"), &applied, &mut failures);

        let free: Vec<f32> = case.x.iter().map(|&x| d(x)).collect();
        check_derivatives(&case, &format!("{name}' (free fn)"), &free, &mut failures);
        let method: Vec<f32> = case
            .x
            .iter()
            .map(|&x| {
                a.derivative(x)
                    .unwrap_or_else(|| panic!("{name}: no derivative"))
            })
            .collect();
        check_derivatives(
            &case,
            &format!("{name}' (derivative)"),
            &method,
            &mut failures,
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The golden file covers every name `from_name` accepts, so a new activation cannot go
/// untested.
#[test]
fn every_activation_name_has_golden_data() {
    let covered: Vec<String> = cases()
        .into_iter()
        .filter(|c| c.args.as_object().is_none_or(|o| o.is_empty()))
        .map(|c| c.function)
        .collect();
    for name in Activation::NAMES {
        let softmax_like = matches!(*name, "softmax" | "log_softmax");
        assert!(
            softmax_like || covered.iter().any(|c| c == name),
            "no golden case for `{name}` (add it to tools/oracle/activations.py)"
        );
        assert_eq!(
            Activation::from_name(name).map(|a| a.is_elementwise()),
            Some(!softmax_like),
            "`{name}`"
        );
    }
}

/// A softmax golden case: `rows` rows of `axis_len` values.
struct SoftmaxCase {
    axis_len: usize,
    x: Vec<f32>,
    softmax: Vec<f32>,
    log_softmax: Vec<f32>,
    cotangent: Vec<f32>,
    softmax_vjp: Vec<f32>,
    log_softmax_vjp: Vec<f32>,
}

fn softmax_cases() -> Vec<SoftmaxCase> {
    let file = golden("activations");
    file["softmax"]
        .as_array()
        .expect("`softmax` list")
        .iter()
        .map(|c| SoftmaxCase {
            axis_len: c["axis_len"].as_u64().expect("axis_len") as usize,
            x: floats(&c["x"]),
            softmax: floats(&c["softmax"]),
            log_softmax: floats(&c["log_softmax"]),
            cotangent: floats(&c["cotangent"]),
            softmax_vjp: floats(&c["softmax_vjp"]),
            log_softmax_vjp: floats(&c["log_softmax_vjp"]),
        })
        .collect()
}

#[test]
fn softmax_and_log_softmax_match_keras() {
    for case in softmax_cases() {
        let n = case.axis_len;
        let what = |f: &str| format!("{f} over rows of {n} ({:?}..)", &case.x[..n]);

        let mut y = case.x.clone();
        act::softmax_in_place(&mut y, n);
        assert_close(&what("softmax_in_place"), &y, &case.softmax, RTOL, ATOL);
        let mut y = case.x.clone();
        Activation::Softmax.apply(&mut y, n);
        assert_close(&what("Softmax.apply"), &y, &case.softmax, RTOL, ATOL);

        // log-softmax is x - max - log(sum): its absolute error is an ulp of the largest
        // term (the 1e4 logits), not of the result.
        let scale = case
            .x
            .iter()
            .filter(|v| v.is_finite())
            .fold(1.0_f32, |m, v| m.max(v.abs()));
        let log_atol = 2.0 * f32::EPSILON * scale;
        let mut y = case.x.clone();
        act::log_softmax_in_place(&mut y, n);
        assert_close(
            &what("log_softmax_in_place"),
            &y,
            &case.log_softmax,
            RTOL,
            log_atol,
        );
        let mut y = case.x.clone();
        Activation::LogSoftmax.apply(&mut y, n);
        assert_close(
            &what("LogSoftmax.apply"),
            &y,
            &case.log_softmax,
            RTOL,
            log_atol,
        );

        if n == 1 {
            // `scalar` is the activation of a row of one.
            let s: Vec<f32> = case
                .x
                .iter()
                .map(|&x| Activation::Softmax.scalar(x))
                .collect();
            assert_close(&what("Softmax.scalar"), &s, &case.softmax, RTOL, ATOL);
            let s: Vec<f32> = case
                .x
                .iter()
                .map(|&x| Activation::LogSoftmax.scalar(x))
                .collect();
            assert_close(
                &what("LogSoftmax.scalar"),
                &s,
                &case.log_softmax,
                RTOL,
                ATOL,
            );
        }
        assert_eq!(Activation::Softmax.derivative(0.5), None);
        assert_eq!(Activation::LogSoftmax.derivative(0.5), None);

        // The backward passes take kiln's own forward output, as a training step would.
        // Their sums cancel (dy - <y, dy>), so errors are absolute, on the scale of the
        // cotangent (entries of about 1).
        let vjp_atol = 1e-6;
        let mut soft = case.x.clone();
        act::softmax_in_place(&mut soft, n);
        let mut log = case.x.clone();
        act::log_softmax_in_place(&mut log, n);
        let mut dx = vec![0.0; n];
        for (r, dy) in case.cotangent.chunks(n).enumerate() {
            let row = r * n..(r + 1) * n;
            act::softmax_vjp(&soft[row.clone()], dy, &mut dx);
            assert_close(
                &what(&format!("softmax_vjp row {r}")),
                &dx,
                &case.softmax_vjp[row.clone()],
                RTOL,
                vjp_atol,
            );
            act::log_softmax_vjp(&log[row.clone()], dy, &mut dx);
            assert_close(
                &what(&format!("log_softmax_vjp row {r}")),
                &dx,
                &case.log_softmax_vjp[row],
                RTOL,
                vjp_atol,
            );
        }
    }
}

/// Every elementwise activation, with the points where it is not differentiable.
fn elementwise_with_kinks() -> Vec<(String, Activation, Vec<f32>)> {
    let mut all: Vec<Activation> = Activation::NAMES
        .iter()
        .filter_map(|n| Activation::from_name(n))
        .filter(Activation::is_elementwise)
        .collect();
    all.extend([
        Activation::LeakyRelu {
            negative_slope: 0.1,
        },
        Activation::Elu { alpha: 0.5 },
        Activation::Gelu { approximate: true },
        Activation::ThresholdedRelu { theta: 1.0 },
        Activation::Relu {
            negative_slope: 0.1,
            max_value: None,
            threshold: 0.0,
        },
        Activation::Relu {
            negative_slope: 0.0,
            max_value: Some(5.0),
            threshold: 0.0,
        },
        Activation::Relu {
            negative_slope: 0.3,
            max_value: None,
            threshold: 0.5,
        },
        Activation::Relu {
            negative_slope: 0.1,
            max_value: Some(5.0),
            threshold: -1.0,
        },
        Activation::Relu {
            negative_slope: 0.2,
            max_value: Some(6.0),
            threshold: 0.0,
        },
    ]);
    all.into_iter()
        .map(|a| {
            let kinks = match a {
                Activation::Relu {
                    max_value,
                    threshold,
                    ..
                } => {
                    let mut k = vec![0.0, threshold];
                    k.extend(max_value);
                    k
                }
                Activation::Relu6 => vec![0.0, 6.0],
                Activation::HardSigmoid | Activation::HardSilu => vec![-3.0, 3.0],
                Activation::HardSigmoidKeras2 => vec![-2.5, 2.5],
                Activation::LeakyRelu { .. } | Activation::Elu { .. } | Activation::Selu => {
                    vec![0.0]
                }
                Activation::ThresholdedRelu { theta } => vec![theta],
                _ => vec![],
            };
            (format!("{a:?}"), a, kinks)
        })
        .collect()
}

proptest! {
    #[test]
    fn softmax_rows_sum_to_one(
        row in prop::collection::vec(-1e4_f32..1e4, 1..40),
        shift in -1e3_f32..1e3,
    ) {
        let n = row.len();
        let x: Vec<f32> = row.iter().map(|v| v + shift).collect();
        let mut y = x.clone();
        act::softmax_in_place(&mut y, n);
        let sum: f64 = y.iter().map(|&v| f64::from(v)).sum();
        prop_assert!((sum - 1.0).abs() <= 4.0 * f64::from(f32::EPSILON) * n as f64, "sum {sum}");
        prop_assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
        // log-softmax is the log of the same distribution.
        let mut log = x;
        act::log_softmax_in_place(&mut log, n);
        let sum: f64 = log.iter().map(|&v| f64::from(v).exp()).sum();
        prop_assert!((sum - 1.0).abs() <= 1e-5 * n as f64, "sum of exp(log_softmax) {sum}");
    }

    #[test]
    fn derivatives_match_finite_differences(x in -20.0_f32..20.0) {
        for (name, a, kinks) in elementwise_with_kinks() {
            // Central difference of the f32 function, taken in f64 over the step that
            // the f32 arguments actually span.
            let h = 1e-3 * (1.0 + x.abs());
            if kinks.iter().any(|k| (x - k).abs() < 4.0 * h) {
                continue;
            }
            let (xp, xm) = (x + h, x - h);
            let (fp, fm) = (f64::from(a.scalar(xp)), f64::from(a.scalar(xm)));
            let fd = (fp - fm) / f64::from(xp - xm);
            let d = f64::from(a.derivative(x).expect("elementwise"));
            // Truncation error (1e-3 relative covers h^2 f''' / 6 here) plus f32 rounding
            // of the two values, divided by the step.
            let rounding = 4.0 * f64::from(f32::EPSILON) * fp.abs().max(fm.abs()) / f64::from(xp - xm);
            let tol = 1e-3 * d.abs() + rounding + 1e-6;
            prop_assert!((fd - d).abs() <= tol, "{name} at {x}: derivative {d}, finite difference {fd}");
        }
    }
}
