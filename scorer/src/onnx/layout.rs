//! The one input/output layout refit runs, and the exact reasons a model does not have it.
//!
//! Input: one float tensor (float32 or float64) of shape `[N, F]`, with `N` dynamic and `F` equal
//! to the number of features bound to the model (or dynamic). Outputs, as skl2onnx writes them:
//! a regressor has one float tensor (`variable`, `[N, 1]` or `[N]`); a classifier converted with
//! `options={'zipmap': False}` has `label` (int64 or string, `[N]`) and `probabilities` (float,
//! `[N, C]`). Outputs are recognised by type and shape, not by name. The reasons are shown to API
//! users, so each names the input or output and says what was expected and what was found.

use ort::value::{Outlet, TensorElementType, ValueType};

use crate::model::Task;

/// A model input or output: its name and type. (`ort`'s `Outlet` calls into ONNX Runtime when
/// made, so the checks take these, which tests can make without the library.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Port<'a> {
    name: &'a str,
    dtype: &'a ValueType,
}

impl<'a> Port<'a> {
    pub(crate) fn new(name: &'a str, dtype: &'a ValueType) -> Port<'a> {
        Port { name, dtype }
    }

    pub(crate) fn of(outlets: &'a [Outlet]) -> Vec<Port<'a>> {
        outlets
            .iter()
            .map(|o| Port::new(o.name(), o.dtype()))
            .collect()
    }

    fn name(&self) -> &'a str {
        self.name
    }

    fn dtype(&self) -> &'a ValueType {
        self.dtype
    }
}

/// Element type of a float tensor refit reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float {
    F32,
    F64,
}

/// Element type of a classifier's `label` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelType {
    Int64,
    String,
}

/// A model's checked inputs and outputs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Name of the input tensor.
    pub input: String,
    /// Its element type.
    pub input_type: Float,
    /// Its number of columns, unless dynamic.
    pub width: Option<usize>,
    /// What comes out.
    pub outputs: Outputs,
}

/// A model's checked outputs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outputs {
    /// One value per row.
    Regression { value: String, value_type: Float },
    /// A label per row and a row of class probabilities.
    Classification {
        label: String,
        label_type: LabelType,
        probabilities: String,
        probabilities_type: Float,
        /// Number of classes, unless dynamic.
        classes: Option<usize>,
    },
}

impl Layout {
    /// Checks a session's inputs and outputs against the supported layout, for `features` bound
    /// features. Returns the reason for the first mismatch found.
    pub(crate) fn check(
        inputs: &[Port<'_>],
        outputs: &[Port<'_>],
        features: usize,
    ) -> Result<Layout, String> {
        let expected_input = format!("one float tensor of shape [N, {features}]");
        let [input] = inputs else {
            return Err(match inputs {
                [] => format!("the model has no inputs; expected {expected_input}"),
                _ => format!(
                    "the model has {} inputs ({}); expected {expected_input}",
                    inputs.len(),
                    names(inputs)
                ),
            });
        };
        let name = input.name();
        let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
            return Err(format!(
                "input '{name}' is {}; expected {expected_input}",
                describe(input.dtype())
            ));
        };
        let input_type = float(*ty).ok_or_else(|| {
            format!(
                "input '{name}' has element type {}; expected float32 or float64",
                element(*ty)
            )
        })?;
        let &[rows, columns] = &shape[..] else {
            return Err(format!(
                "input '{name}' has shape {}; expected a 2-D tensor [N, {features}] \
                 (rows × bound features)",
                dims(input.dtype())
            ));
        };
        if rows >= 0 {
            return Err(format!(
                "input '{name}' has a fixed number of rows ({rows}, shape {}); expected a \
                 dynamic first dimension, [N, {features}]",
                dims(input.dtype())
            ));
        }
        let width = usize::try_from(columns).ok();
        if let Some(width) = width
            && width != features
        {
            return Err(format!(
                "input '{name}' has {width} columns (shape {}), but {features} features are \
                 bound to the model",
                dims(input.dtype())
            ));
        }
        Ok(Layout {
            input: name.to_owned(),
            input_type,
            width,
            outputs: check_outputs(outputs)?,
        })
    }

    /// The task the outputs imply: regression, or binary/multiclass by the number of classes
    /// (`classes` when the model's probabilities have a dynamic number of columns).
    pub(crate) fn task(&self, classes: usize) -> Task {
        match self.outputs {
            Outputs::Regression { .. } => Task::Regression,
            Outputs::Classification { .. } if classes == 2 => Task::Binary,
            Outputs::Classification { .. } => Task::Multiclass,
        }
    }
}

fn check_outputs(outputs: &[Port<'_>]) -> Result<Outputs, String> {
    for output in outputs {
        if let ValueType::Sequence(inner) = output.dtype()
            && matches!(**inner, ValueType::Map { .. })
        {
            return Err(format!(
                "output '{}' is a sequence of maps ({}, skl2onnx's ZipMap); convert the \
                 classifier with options={{'zipmap': False}} to get a probabilities tensor",
                output.name(),
                describe(output.dtype())
            ));
        }
    }
    for output in outputs {
        if !output.dtype().is_tensor() {
            return Err(format!(
                "output '{}' is {}; expected a tensor",
                output.name(),
                describe(output.dtype())
            ));
        }
    }
    let expected = "a regressor's value (float [N, 1] or [N]) or a classifier's label \
                    (int64 or string [N]) and probabilities (float [N, classes])";
    match outputs {
        [value] => regression(value),
        [a, b] => classification(a, b).ok_or_else(|| {
            format!(
                "the model has outputs '{}' ({}) and '{}' ({}); expected {expected}",
                a.name(),
                describe(a.dtype()),
                b.name(),
                describe(b.dtype())
            )
        })?,
        _ => Err(format!(
            "the model has {} outputs ({}); expected {expected}",
            outputs.len(),
            names(outputs)
        )),
    }
}

fn regression(value: &Port<'_>) -> Result<Outputs, String> {
    let name = value.name();
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        unreachable!("outputs are checked to be tensors");
    };
    if matches!(ty, TensorElementType::Int64 | TensorElementType::String) && one_per_row(shape) {
        return Err(format!(
            "the model's only output is '{name}' ({}), a label without probabilities; a \
             classifier needs label (int64 or string [N]) and probabilities \
             (float [N, classes])",
            describe(value.dtype())
        ));
    }
    let value_type = float(*ty).ok_or_else(|| {
        format!(
            "output '{name}' has element type {}; expected float32 or float64",
            element(*ty)
        )
    })?;
    if !one_per_row(shape) {
        return Err(format!(
            "output '{name}' has shape {}; expected one value per row, [N, 1] or [N]",
            dims(value.dtype())
        ));
    }
    Ok(Outputs::Regression {
        value: name.to_owned(),
        value_type,
    })
}

/// A classifier's outputs, in either order; `Ok(None)` when they are not a label and
/// probabilities.
fn classification(a: &Port<'_>, b: &Port<'_>) -> Option<Result<Outputs, String>> {
    let label_type = |o: &Port<'_>| match o.dtype().tensor_type() {
        Some(TensorElementType::Int64) => Some(LabelType::Int64),
        Some(TensorElementType::String) => Some(LabelType::String),
        _ => None,
    };
    let (label, label_type, probabilities) = match (label_type(a), label_type(b)) {
        (Some(t), None) => (a, t, b),
        (None, Some(t)) => (b, t, a),
        _ => return None,
    };
    let probabilities_type = float(probabilities.dtype().tensor_type()?)?;
    let label_shape = label.dtype().tensor_shape()?;
    if !one_per_row(label_shape) {
        return Some(Err(format!(
            "output '{}' has shape {}; expected one label per row, [N]",
            label.name(),
            dims(label.dtype())
        )));
    }
    let shape = probabilities.dtype().tensor_shape()?;
    let &[_, classes] = &shape[..] else {
        return Some(Err(format!(
            "output '{}' has shape {}; expected class probabilities [N, classes]",
            probabilities.name(),
            dims(probabilities.dtype())
        )));
    };
    let classes = usize::try_from(classes).ok();
    if classes.is_some_and(|c| c < 2) {
        return Some(Err(format!(
            "output '{}' has shape {}; expected at least 2 classes, [N, classes]",
            probabilities.name(),
            dims(probabilities.dtype())
        )));
    }
    Some(Ok(Outputs::Classification {
        label: label.name().to_owned(),
        label_type,
        probabilities: probabilities.name().to_owned(),
        probabilities_type,
        classes,
    }))
}

fn float(ty: TensorElementType) -> Option<Float> {
    match ty {
        TensorElementType::Float32 => Some(Float::F32),
        TensorElementType::Float64 => Some(Float::F64),
        _ => None,
    }
}

/// An element type by numpy's name (`ort` prints Rust's).
fn element(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float32".to_owned(),
        TensorElementType::Float64 => "float64".to_owned(),
        TensorElementType::Float16 => "float16".to_owned(),
        TensorElementType::Bfloat16 => "bfloat16".to_owned(),
        TensorElementType::Int8 => "int8".to_owned(),
        TensorElementType::Int16 => "int16".to_owned(),
        TensorElementType::Int32 => "int32".to_owned(),
        TensorElementType::Int64 => "int64".to_owned(),
        TensorElementType::Uint8 => "uint8".to_owned(),
        TensorElementType::Uint16 => "uint16".to_owned(),
        TensorElementType::Uint32 => "uint32".to_owned(),
        TensorElementType::Uint64 => "uint64".to_owned(),
        TensorElementType::Bool => "bool".to_owned(),
        TensorElementType::String => "string".to_owned(),
        other => other.to_string(),
    }
}

/// `[N]` or `[N, 1]`.
fn one_per_row(shape: &[i64]) -> bool {
    matches!(shape, [_] | [_, 1])
}

fn names(outlets: &[Port<'_>]) -> String {
    let names: Vec<String> = outlets.iter().map(|o| format!("'{}'", o.name())).collect();
    names.join(", ")
}

/// A type as users read it: `float32 [N, 5]`, `sequence of map<int64, float32>`.
fn describe(dtype: &ValueType) -> String {
    match dtype {
        ValueType::Tensor { ty, .. } => format!("{} {}", element(*ty), dims(dtype)),
        ValueType::Sequence(inner) => format!("sequence of {}", describe(inner)),
        ValueType::Map { key, value } => format!("map<{}, {}>", element(*key), element(*value)),
        ValueType::Optional(inner) => format!("optional {}", describe(inner)),
    }
}

/// A tensor's shape with dynamic dimensions shown as `N`, or their symbol when the model names one
/// (skl2onnx leaves them unnamed).
fn dims(dtype: &ValueType) -> String {
    let ValueType::Tensor {
        shape,
        dimension_symbols,
        ..
    } = dtype
    else {
        return String::new();
    };
    let dims: Vec<String> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| match dimension_symbols.get(i) {
            _ if d >= 0 => d.to_string(),
            Some(symbol) if !symbol.is_empty() => symbol.clone(),
            _ => "N".to_owned(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use ort::value::{Shape, SymbolicDimensions};

    use super::*;

    fn tensor(ty: TensorElementType, shape: &[i64]) -> ValueType {
        ValueType::Tensor {
            ty,
            shape: Shape::new(shape.iter().copied()),
            dimension_symbols: SymbolicDimensions::empty(shape.len()),
        }
    }

    const F32: TensorElementType = TensorElementType::Float32;
    const I64: TensorElementType = TensorElementType::Int64;

    fn check(
        inputs: &[(&str, ValueType)],
        outputs: &[(&str, ValueType)],
    ) -> Result<Layout, String> {
        let inputs: Vec<Port<'_>> = inputs.iter().map(|(n, t)| Port::new(n, t)).collect();
        let outputs: Vec<Port<'_>> = outputs.iter().map(|(n, t)| Port::new(n, t)).collect();
        Layout::check(&inputs, &outputs, 5)
    }

    fn x() -> (&'static str, ValueType) {
        ("X", tensor(F32, &[-1, 5]))
    }

    fn classifier() -> Vec<(&'static str, ValueType)> {
        vec![
            ("label", tensor(I64, &[-1])),
            ("probabilities", tensor(F32, &[-1, 3])),
        ]
    }

    #[test]
    fn skl2onnx_layouts_are_accepted_in_either_output_order() {
        let layout = check(&[x()], &classifier()).unwrap();
        assert_eq!(layout.input, "X");
        assert_eq!(layout.input_type, Float::F32);
        assert_eq!(layout.width, Some(5));
        let mut swapped = classifier();
        swapped.reverse();
        assert_eq!(check(&[x()], &swapped).unwrap(), layout);
        assert_eq!(layout.task(3), Task::Multiclass);

        let input = ("X", tensor(TensorElementType::Float64, &[-1, -1]));
        let layout = check(&[input], &[("variable", tensor(F32, &[-1, 1]))]).unwrap();
        assert_eq!(layout.width, None);
        assert_eq!(layout.task(0), Task::Regression);
        assert!(check(&[x()], &[("y", tensor(F32, &[-1]))]).is_ok());
    }

    #[test]
    fn input_shapes_are_checked() {
        let regressor = [("variable", tensor(F32, &[-1, 1]))];
        assert_eq!(
            check(&[("X", tensor(F32, &[-1, 5, 2]))], &regressor).unwrap_err(),
            "input 'X' has shape [N, 5, 2]; expected a 2-D tensor [N, 5] (rows × bound features)"
        );
        assert_eq!(
            check(&[("X", tensor(F32, &[1, 5]))], &regressor).unwrap_err(),
            "input 'X' has a fixed number of rows (1, shape [1, 5]); expected a dynamic first \
             dimension, [N, 5]"
        );
        let named = ValueType::Tensor {
            ty: F32,
            shape: Shape::new([-1, 3]),
            dimension_symbols: SymbolicDimensions::new(["batch".to_owned(), String::new()]),
        };
        assert_eq!(
            check(&[("input", named)], &regressor).unwrap_err(),
            "input 'input' has 3 columns (shape [batch, 3]), but 5 features are bound to the model"
        );
        let sequence = ValueType::Sequence(Box::new(tensor(F32, &[-1])));
        assert_eq!(
            check(&[("X", sequence)], &regressor).unwrap_err(),
            "input 'X' is sequence of float32 [N]; expected one float tensor of shape [N, 5]"
        );
        assert_eq!(
            check(&[], &regressor).unwrap_err(),
            "the model has no inputs; expected one float tensor of shape [N, 5]"
        );
    }

    #[test]
    fn output_layouts_are_checked() {
        assert_eq!(
            check(&[x()], &[("label", tensor(I64, &[-1]))]).unwrap_err(),
            "the model's only output is 'label' (int64 [N]), a label without probabilities; a \
             classifier needs label (int64 or string [N]) and probabilities (float [N, classes])"
        );
        assert_eq!(
            check(&[x()], &[("y", tensor(TensorElementType::Int32, &[-1, 1]))]).unwrap_err(),
            "output 'y' has element type int32; expected float32 or float64"
        );
        let mut three = classifier();
        three.push(("extra", tensor(F32, &[-1])));
        assert_eq!(
            check(&[x()], &three).unwrap_err(),
            "the model has 3 outputs ('label', 'probabilities', 'extra'); expected a regressor's \
             value (float [N, 1] or [N]) or a classifier's label (int64 or string [N]) and \
             probabilities (float [N, classes])"
        );
        assert_eq!(
            check(
                &[x()],
                &[("a", tensor(F32, &[-1])), ("b", tensor(F32, &[-1]))]
            )
            .unwrap_err(),
            "the model has outputs 'a' (float32 [N]) and 'b' (float32 [N]); expected a \
             regressor's value (float [N, 1] or [N]) or a classifier's label (int64 or string \
             [N]) and probabilities (float [N, classes])"
        );
        let one_class = [
            ("label", tensor(I64, &[-1])),
            ("probabilities", tensor(F32, &[-1, 1])),
        ];
        assert_eq!(
            check(&[x()], &one_class).unwrap_err(),
            "output 'probabilities' has shape [N, 1]; expected at least 2 classes, [N, classes]"
        );
        let flat = [
            ("label", tensor(I64, &[-1])),
            ("probabilities", tensor(F32, &[-1])),
        ];
        assert_eq!(
            check(&[x()], &flat).unwrap_err(),
            "output 'probabilities' has shape [N]; expected class probabilities [N, classes]"
        );
        let map = ValueType::Map {
            key: TensorElementType::String,
            value: F32,
        };
        assert_eq!(
            check(
                &[x()],
                &[
                    ("label", tensor(TensorElementType::String, &[-1])),
                    ("map", map)
                ]
            )
            .unwrap_err(),
            "output 'map' is map<string, float32>; expected a tensor"
        );
    }
}
