//! One cell of an Arrow column as a JSON value, for the few columns the judge reads (prompt,
//! history, system, chosen, rejected). Passthrough columns are never converted.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field};
use serde_json::{Map, Value};

/// Metadata key marking a column whose cells hold JSON text (values of mixed kinds in a JSON
/// input): the judge sees the parsed value, the output keeps the text.
pub const JSON_TEXT: &str = "rejudge.json_text";

/// A text field marked as holding JSON text.
pub(crate) fn json_text_field(name: &str) -> Field {
    let metadata: std::collections::HashMap<String, String> =
        std::iter::once((JSON_TEXT.to_owned(), "true".to_owned())).collect();
    Field::new(name, DataType::Utf8, true).with_metadata(metadata)
}

/// Whether a field holds JSON text.
pub(crate) fn is_json_text(field: &Field) -> bool {
    field.metadata().contains_key(JSON_TEXT)
}

/// The value at `row` of a column; `json_text` parses string cells back into JSON where they hold
/// a list or an object.
pub(crate) fn value(array: &ArrayRef, row: usize, json_text: bool) -> Value {
    let value = plain(array.as_ref(), row);
    match value {
        Value::String(text) if json_text && text.starts_with(['[', '{']) => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        other => other,
    }
}

fn plain(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_owned()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Dictionary(_, _) => dictionary(array, row),
        DataType::List(_) => list(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list(&array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => list(&array.as_fixed_size_list().value(row)),
        DataType::Struct(fields) => {
            let columns = array.as_struct();
            let object: Map<String, Value> = fields
                .iter()
                .zip(columns.columns())
                .map(|(field, column)| (field.name().clone(), plain(column.as_ref(), row)))
                .collect();
            Value::Object(object)
        }
        _ => number(array, row).unwrap_or_else(|| display(array, row)),
    }
}

fn dictionary(array: &dyn Array, row: usize) -> Value {
    let dictionary = array.as_any_dictionary();
    let key = dictionary.normalized_keys()[row];
    plain(dictionary.values().as_ref(), key)
}

fn list(items: &ArrayRef) -> Value {
    Value::Array((0..items.len()).map(|i| plain(items.as_ref(), i)).collect())
}

fn number(array: &dyn Array, row: usize) -> Option<Value> {
    macro_rules! integer {
        ($type:ty) => {
            Value::from(array.as_primitive::<$type>().value(row))
        };
    }
    let float = |value: f64| serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
    Some(match array.data_type() {
        DataType::Int8 => integer!(Int8Type),
        DataType::Int16 => integer!(Int16Type),
        DataType::Int32 => integer!(Int32Type),
        DataType::Int64 => integer!(Int64Type),
        DataType::UInt8 => integer!(UInt8Type),
        DataType::UInt16 => integer!(UInt16Type),
        DataType::UInt32 => integer!(UInt32Type),
        DataType::UInt64 => integer!(UInt64Type),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(row).to_f64()),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        _ => return None,
    })
}

/// Any other type (dates, decimals, binary, maps, ...) as Arrow's own display text: the judge
/// needs text, and these never hold a conversation.
fn display(array: &dyn Array, row: usize) -> Value {
    let options = arrow_cast::display::FormatOptions::default();
    match arrow_cast::display::ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => Value::String(formatter.value(row).to_string()),
        Err(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{
        ListBuilder, StringBuilder, StringDictionaryBuilder, StructBuilder,
    };
    use arrow_array::types::Int32Type;
    use arrow_schema::Fields;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn strings_dictionaries_and_message_lists() {
        let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
        dictionary.append_value("b");
        dictionary.append_value("a");
        let dictionary: ArrayRef = Arc::new(dictionary.finish());
        assert_eq!(value(&dictionary, 1, false), json!("a"));

        let fields = Fields::from(vec![
            Field::new("role", DataType::Utf8, true),
            Field::new("content", DataType::Utf8, true),
        ]);
        let mut messages = ListBuilder::new(StructBuilder::from_fields(fields, 1));
        let item = messages.values();
        item.field_builder::<StringBuilder>(0)
            .unwrap()
            .append_value("user");
        item.field_builder::<StringBuilder>(1)
            .unwrap()
            .append_value("hi");
        item.append(true);
        messages.append(true);
        let messages: ArrayRef = Arc::new(messages.finish());
        assert_eq!(
            value(&messages, 0, false),
            json!([{"role": "user", "content": "hi"}])
        );
    }

    #[test]
    fn json_text_is_parsed_back_for_the_judge() {
        let text: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![
            r#"[{"role": "assistant", "content": "x"}]"#,
            "plain",
        ]));
        assert_eq!(value(&text, 0, true)[0]["content"], "x");
        assert_eq!(value(&text, 1, true), json!("plain"));
        assert_eq!(
            value(&text, 0, false),
            json!(text.as_string::<i32>().value(0))
        );
    }
}
