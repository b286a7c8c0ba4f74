//! The Arrow type of each column of a JSON input, learnt from every value in one streaming pass.
//!
//! Arrow's own inference stops at the first pair of values it cannot reconcile and would make the
//! whole file unreadable; here each column is typed on its own and merges are total: a column whose
//! values cannot share one Arrow type (numbers in some rows, strings in others, or integers too
//! large for `int64`) becomes a text column holding each value's JSON text. Because every value is
//! seen before the first batch is decoded, decoding cannot fail on a row the survey accepted.

use arrow_schema::{DataType, Field, Fields};
use serde_json::Value;
use std::sync::Arc;

/// The kind of every value seen in a column so far, merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// Only nulls (or nothing) seen.
    Null,
    /// Booleans.
    Bool,
    /// Integers that fit `int64`.
    Integer,
    /// Numbers with a fraction or an exponent, possibly mixed with integers.
    Float,
    /// Strings.
    Text,
    /// Lists whose items have this kind.
    List(Box<Kind>),
    /// Objects with these fields, in the order first seen.
    Object(Vec<(String, Kind)>),
    /// Values that cannot share one Arrow type.
    Mixed,
}

impl Kind {
    /// The kind of one JSON value.
    pub(crate) fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(number) if number.is_i64() => Kind::Integer,
            // Beyond int64 a float would round the number; text keeps it exact.
            Value::Number(number) if number.is_u64() => Kind::Mixed,
            Value::Number(_) => Kind::Float,
            Value::String(_) => Kind::Text,
            Value::Array(items) => Kind::List(Box::new(
                items
                    .iter()
                    .fold(Kind::Null, |kind, item| kind.merge(&Kind::of(item))),
            )),
            Value::Object(fields) => Kind::Object(
                fields
                    .iter()
                    .map(|(name, value)| (name.clone(), Kind::of(value)))
                    .collect(),
            ),
        }
    }

    /// The kind that holds the values of both.
    pub(crate) fn merge(self, other: &Kind) -> Kind {
        match (self, other) {
            (kind, Kind::Null) => kind,
            (Kind::Null, kind) => kind.clone(),
            (Kind::Mixed, _) | (_, Kind::Mixed) => Kind::Mixed,
            (Kind::Integer, Kind::Float) | (Kind::Float, Kind::Integer) => Kind::Float,
            (Kind::List(items), Kind::List(others)) => Kind::List(Box::new(items.merge(others))),
            (Kind::Object(fields), Kind::Object(others)) => {
                Kind::Object(merge_fields(fields, others))
            }
            (kind, other) if &kind == other => kind,
            _ => Kind::Mixed,
        }
    }

    /// Whether any part of the value tree failed to merge.
    fn is_mixed(&self) -> bool {
        match self {
            Kind::Mixed => true,
            Kind::List(items) => items.is_mixed(),
            Kind::Object(fields) => fields.iter().any(|(_, kind)| kind.is_mixed()),
            _ => false,
        }
    }

    /// The Arrow type of a column of this kind, or `None` when the column must be stored as
    /// JSON text.
    pub(crate) fn data_type(&self) -> Option<DataType> {
        if self.is_mixed() {
            return None;
        }
        Some(match self {
            // A column of nulls is text as far as anyone reading it later is concerned.
            Kind::Null | Kind::Text => DataType::Utf8,
            Kind::Bool => DataType::Boolean,
            Kind::Integer => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::List(items) => {
                let item = items.data_type()?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            // Parquet cannot store a struct without fields.
            Kind::Object(fields) if fields.is_empty() => return None,
            Kind::Object(fields) => {
                let fields: Option<Vec<Field>> = fields
                    .iter()
                    .map(|(name, kind)| Some(Field::new(name, kind.data_type()?, true)))
                    .collect();
                DataType::Struct(Fields::from(fields?))
            }
            Kind::Mixed => return None,
        })
    }
}

fn merge_fields(mut fields: Vec<(String, Kind)>, others: &[(String, Kind)]) -> Vec<(String, Kind)> {
    for (name, kind) in others {
        match fields.iter_mut().find(|(existing, _)| existing == name) {
            Some((_, existing)) => *existing = std::mem::replace(existing, Kind::Null).merge(kind),
            None => fields.push((name.clone(), kind.clone())),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(values: &[Value]) -> Option<DataType> {
        values
            .iter()
            .fold(Kind::Null, |kind, value| kind.merge(&Kind::of(value)))
            .data_type()
    }

    #[test]
    fn scalars() {
        assert_eq!(
            column(&[json!(1), json!(null), json!(2)]),
            Some(DataType::Int64)
        );
        assert_eq!(column(&[json!(1), json!(2.5)]), Some(DataType::Float64));
        assert_eq!(column(&[json!("a"), json!(null)]), Some(DataType::Utf8));
        assert_eq!(column(&[json!(null)]), Some(DataType::Utf8));
        assert_eq!(column(&[json!(true)]), Some(DataType::Boolean));
    }

    #[test]
    fn mixed_values_make_a_text_column() {
        assert_eq!(column(&[json!(1), json!("one")]), None);
        assert_eq!(column(&[json!([1]), json!({"a": 1})]), None);
        assert_eq!(column(&[json!([1, "two"])]), None);
        assert_eq!(
            column(&[json!(u64::MAX)]),
            None,
            "beyond int64 stays exact as text"
        );
        assert_eq!(column(&[json!({})]), None, "a struct needs fields");
    }

    #[test]
    fn objects_gain_the_fields_of_every_row() {
        let data_type = column(&[
            json!([{"role": "user", "content": "hi"}]),
            json!([{"content": "yo", "role": "assistant", "name": "bot"}]),
            json!([]),
        ])
        .unwrap();
        let DataType::List(item) = data_type else {
            panic!("a list")
        };
        let DataType::Struct(fields) = item.data_type() else {
            panic!("of structs")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["role", "content", "name"]);
    }
}
