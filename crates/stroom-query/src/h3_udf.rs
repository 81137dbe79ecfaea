//! H3 functions for SQL, as stateless DataFusion scalar UDFs, vectorised over
//! Arrow arrays. Every function returns NULL for invalid input (an invalid
//! cell index, a resolution outside 0..=15, out-of-range coordinates, a
//! parent resolution finer than the cell's) instead of failing the query.
//!
//! Cells are accepted as UInt64 or Int64 (the Delta `long` on disk; negative
//! values are invalid) and returned as UInt64.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use h3o::{CellIndex, LatLng, Resolution};

/// The kinds of argument an H3 function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Arg {
    Cell,
    Float,
    Int,
    Text,
}

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    LatLngToCell,
    CellToParent,
    CellToString,
    StringToCell,
    IsValid,
    GetResolution,
    GridDistance,
    CellToLat,
    CellToLng,
    RangeMin,
    RangeMax,
}

impl Kind {
    const ALL: [Self; 11] = [
        Self::LatLngToCell,
        Self::CellToParent,
        Self::CellToString,
        Self::StringToCell,
        Self::IsValid,
        Self::GetResolution,
        Self::GridDistance,
        Self::CellToLat,
        Self::CellToLng,
        Self::RangeMin,
        Self::RangeMax,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::LatLngToCell => "h3_latlng_to_cell",
            Self::CellToParent => "h3_cell_to_parent",
            Self::CellToString => "h3_cell_to_string",
            Self::StringToCell => "h3_string_to_cell",
            Self::IsValid => "h3_is_valid",
            Self::GetResolution => "h3_get_resolution",
            Self::GridDistance => "h3_grid_distance",
            Self::CellToLat => "h3_cell_to_lat",
            Self::CellToLng => "h3_cell_to_lng",
            Self::RangeMin => "h3_cell_range_min",
            Self::RangeMax => "h3_cell_range_max",
        }
    }

    fn args(self) -> &'static [Arg] {
        match self {
            Self::LatLngToCell => &[Arg::Float, Arg::Float, Arg::Int],
            Self::CellToParent | Self::RangeMin | Self::RangeMax => &[Arg::Cell, Arg::Int],
            Self::StringToCell => &[Arg::Text],
            Self::GridDistance => &[Arg::Cell, Arg::Cell],
            Self::CellToString | Self::IsValid | Self::GetResolution | Self::CellToLat | Self::CellToLng => {
                &[Arg::Cell]
            }
        }
    }

    fn return_type(self) -> DataType {
        match self {
            Self::LatLngToCell | Self::CellToParent | Self::StringToCell | Self::RangeMin | Self::RangeMax => {
                DataType::UInt64
            }
            Self::CellToString => DataType::Utf8,
            Self::IsValid => DataType::Boolean,
            Self::GetResolution => DataType::Int32,
            Self::GridDistance => DataType::Int64,
            Self::CellToLat | Self::CellToLng => DataType::Float64,
        }
    }
}

/// One H3 function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct H3Function {
    kind: Kind,
    signature: Signature,
}

/// Every H3 function as a [`ScalarUDF`].
pub fn h3_functions() -> Vec<ScalarUDF> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            ScalarUDF::new_from_impl(H3Function { kind, signature: Signature::user_defined(Volatility::Immutable) })
        })
        .collect()
}

/// Registers every H3 function with a registry: a `SessionContext`, a
/// `SessionState`, or an executor's function registry. The functions hold no
/// state, so a remote executor that calls this has the same functions.
pub fn register_h3_functions(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for function in h3_functions() {
        registry.register_udf(Arc::new(function))?;
    }
    Ok(())
}

impl ScalarUDFImpl for H3Function {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.kind.return_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let expected = self.kind.args();
        if arg_types.len() != expected.len() {
            return plan_err!("{} takes {} arguments, got {}", self.name(), expected.len(), arg_types.len());
        }
        arg_types
            .iter()
            .zip(expected)
            .map(|(actual, wanted)| {
                let coerced = match (wanted, actual) {
                    (Arg::Cell, DataType::UInt64 | DataType::Null) => DataType::UInt64,
                    (Arg::Cell | Arg::Int, t) if t.is_integer() => DataType::Int64,
                    (Arg::Int, DataType::Null) => DataType::Int64,
                    (Arg::Float, t) if t.is_numeric() || *t == DataType::Null => DataType::Float64,
                    (Arg::Text, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null) => {
                        DataType::Utf8
                    }
                    _ => {
                        return plan_err!(
                            "{}: an argument of type {actual} is not accepted ({wanted:?} expected)",
                            self.name()
                        );
                    }
                };
                Ok(coerced)
            })
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<_>>>()?;
        let result: ArrayRef = match self.kind {
            Kind::LatLngToCell => {
                let (lat, lng, res) = (floats(&arrays[0])?, floats(&arrays[1])?, ints(&arrays[2])?);
                Arc::new(UInt64Array::from_iter((0..rows).map(|i| {
                    let point = LatLng::new(lat(i)?, lng(i)?).ok()?;
                    let (la, ln) = (point.lat(), point.lng());
                    if !(-90.0..=90.0).contains(&la) || !(-180.0..=180.0).contains(&ln) {
                        return None;
                    }
                    Some(u64::from(point.to_cell(resolution(res(i)?)?)))
                })))
            }
            Kind::CellToParent => {
                let (cell, res) = (cells(&arrays[0])?, ints(&arrays[1])?);
                Arc::new(UInt64Array::from_iter(
                    (0..rows).map(|i| cell(i)?.parent(resolution(res(i)?)?).map(u64::from)),
                ))
            }
            Kind::CellToString => {
                let cell = cells(&arrays[0])?;
                Arc::new(StringArray::from_iter((0..rows).map(|i| cell(i).map(|c| c.to_string()))))
            }
            Kind::StringToCell => {
                let text = arrays[0].as_string::<i32>();
                Arc::new(UInt64Array::from_iter((0..rows).map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    stroom_core::Cell::parse(text.value(i)).ok().map(|c| c.to_u64())
                })))
            }
            Kind::IsValid => {
                let raw = raw_cells(&arrays[0])?;
                Arc::new(BooleanArray::from_iter(
                    (0..rows).map(|i| raw(i).map(|v| v.is_some_and(|v| CellIndex::try_from(v).is_ok()))),
                ))
            }
            Kind::GetResolution => {
                let cell = cells(&arrays[0])?;
                Arc::new(Int32Array::from_iter((0..rows).map(|i| cell(i).map(|c| i32::from(u8::from(c.resolution()))))))
            }
            Kind::GridDistance => {
                let (a, b) = (cells(&arrays[0])?, cells(&arrays[1])?);
                Arc::new(Int64Array::from_iter((0..rows).map(|i| a(i)?.grid_distance(b(i)?).ok().map(i64::from))))
            }
            Kind::CellToLat | Kind::CellToLng => {
                let cell = cells(&arrays[0])?;
                let latitude = self.kind == Kind::CellToLat;
                Arc::new(Float64Array::from_iter((0..rows).map(|i| {
                    let centre = LatLng::from(cell(i)?);
                    Some(if latitude { centre.lat() } else { centre.lng() })
                })))
            }
            Kind::RangeMin | Kind::RangeMax => {
                let (cell, res) = (cells(&arrays[0])?, ints(&arrays[1])?);
                let min = self.kind == Kind::RangeMin;
                Arc::new(UInt64Array::from_iter((0..rows).map(|i| {
                    let cell = stroom_core::Cell::from_u64(u64::from(cell(i)?)).ok()?;
                    let target = stroom_core::Resolution::new(res(i)?).ok()?;
                    let range = cell.descendant_range(target).ok()?;
                    Some(if min { *range.start() } else { *range.end() })
                })))
            }
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn resolution(value: i64) -> Option<Resolution> {
    u8::try_from(value).ok().and_then(|v| Resolution::try_from(v).ok())
}

/// Raw cell values: `None` for NULL, `Some(None)` for a value that cannot be an index.
fn raw_cells(array: &ArrayRef) -> Result<impl Fn(usize) -> Option<Option<u64>> + '_> {
    enum Values<'a> {
        Unsigned(&'a datafusion::arrow::array::PrimitiveArray<UInt64Type>),
        Signed(&'a datafusion::arrow::array::PrimitiveArray<Int64Type>),
        Null,
    }
    let values = match array.data_type() {
        DataType::UInt64 => Values::Unsigned(array.as_primitive::<UInt64Type>()),
        DataType::Int64 => Values::Signed(array.as_primitive::<Int64Type>()),
        DataType::Null => Values::Null,
        other => return exec_err!("an H3 cell must be UInt64 or Int64, got {other}"),
    };
    Ok(move |i: usize| match &values {
        Values::Unsigned(a) => (!a.is_null(i)).then(|| Some(a.value(i))),
        Values::Signed(a) => (!a.is_null(i)).then(|| u64::try_from(a.value(i)).ok()),
        Values::Null => None,
    })
}

/// Valid cells; NULL and invalid values become `None`.
fn cells(array: &ArrayRef) -> Result<impl Fn(usize) -> Option<CellIndex> + '_> {
    let raw = raw_cells(array)?;
    Ok(move |i| raw(i).flatten().and_then(|v| CellIndex::try_from(v).ok()))
}

fn floats(array: &ArrayRef) -> Result<impl Fn(usize) -> Option<f64> + '_> {
    if *array.data_type() == DataType::Null {
        return Ok(Box::new(|_| None) as Box<dyn Fn(usize) -> Option<f64>>);
    }
    let values = array.as_primitive::<Float64Type>();
    Ok(Box::new(move |i| (!values.is_null(i) && values.value(i).is_finite()).then(|| values.value(i))))
}

fn ints(array: &ArrayRef) -> Result<impl Fn(usize) -> Option<i64> + '_> {
    if *array.data_type() == DataType::Null {
        return Ok(Box::new(|_| None) as Box<dyn Fn(usize) -> Option<i64>>);
    }
    let values = array.as_primitive::<Int64Type>();
    Ok(Box::new(move |i| (!values.is_null(i)).then(|| values.value(i))))
}
