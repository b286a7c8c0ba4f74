//! Which columns hold the prompt and the two responses, and how a row becomes a [`Conversation`].
//!
//! Three layouts are common in preference data and all are read:
//! - plain strings (`prompt`, `chosen`, `rejected`), with `instruction` + `input` as in Alpaca;
//! - OpenAI-style message lists (`[{"role", "content"}]`), where the last assistant message of
//!   `chosen`/`rejected` is the response and earlier turns are history (TRL's format);
//! - ShareGPT (`{"from", "value"}` messages), with the history in `conversations`.

use super::DatasetError;
use super::cell;
use arrow_array::RecordBatch;
use arrow_schema::Schema;
use serde_json::{Map, Value};
use std::path::Path;

const PROMPT_NAMES: &[&str] = &["prompt", "question", "instruction", "input"];
const CHOSEN_NAMES: &[&str] = &["chosen", "chosen_response", "response_chosen"];
const REJECTED_NAMES: &[&str] = &["rejected", "rejected_response", "response_rejected"];
const HISTORY_NAMES: &[&str] = &["conversations", "conversation", "messages"];
const SYSTEM_NAMES: &[&str] = &["system", "system_prompt"];
const CATEGORY_NAMES: &[&str] = &["category", "subset"];
/// LLMBar's layout: two outputs and the number of the better one.
const FIRST_OUTPUT: &str = "output_1";
const SECOND_OUTPUT: &str = "output_2";
const LABEL: &str = "label";

/// Column names given on the command line; they win over detection.
#[derive(Debug, Clone, Default)]
pub struct ColumnOverrides {
    /// The prompt column.
    pub prompt: Option<String>,
    /// The chosen-response column.
    pub chosen: Option<String>,
    /// The rejected-response column.
    pub rejected: Option<String>,
    /// `eval`: the column holding the human preference (chosen/rejected, 1/2 or a/b).
    pub gold: Option<String>,
    /// `eval`: the column holding each row's category, for per-category statistics.
    pub category: Option<String>,
}

/// One turn of a conversation, with the role normalised to `system`, `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

/// What the judge sees of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The system prompt the responses were generated under, if any.
    pub system: Option<String>,
    /// Turns before the final user prompt.
    pub history: Vec<Turn>,
    /// The final user prompt that both responses answer.
    pub prompt: String,
    /// The text of the stored chosen response.
    pub chosen: String,
    /// The text of the stored rejected response.
    pub rejected: String,
    /// Whether `chosen` comes from the first response column. Always true for `rerank`; for
    /// `eval`, false when the human label prefers the second column.
    pub chosen_is_first: bool,
    /// The row's category, when the input has a category column (`eval`).
    pub category: Option<String>,
}

/// Where each part of a [`Conversation`] lives in a row.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMap {
    /// The prompt column; `None` when the prompt comes from a history column or from the
    /// responses' own message lists.
    pub prompt: Option<String>,
    /// Alpaca's `input`, appended to an `instruction` prompt.
    pub input: Option<String>,
    /// A column holding the system prompt.
    pub system: Option<String>,
    /// A column holding the conversation so far (ShareGPT `conversations`, or `messages`).
    pub history: Option<String>,
    /// The chosen-response column.
    pub chosen: String,
    /// The rejected-response column.
    pub rejected: String,
    /// Where the human preference comes from (`eval` only): `chosen` and `rejected` are then
    /// the first and second response columns, and each row's conversation puts the preferred
    /// response in `chosen`.
    pub gold: Option<Gold>,
    /// The category column (`eval` only).
    pub category: Option<String>,
}

/// Where `eval` finds the human preference.
#[derive(Debug, Clone, PartialEq)]
pub enum Gold {
    /// The layout says it: the `chosen` column is the preferred response.
    Chosen,
    /// A column says it for each row: `chosen`/`rejected`, `1`/`2` or `a`/`b` (first or second
    /// response column).
    Column(String),
}

impl ColumnMap {
    /// Finds the columns by name, preferring the overrides. The first row tells whether a dataset
    /// without a prompt column carries the prompt inside its responses.
    pub fn detect(
        path: &Path,
        schema: &Schema,
        overrides: &ColumnOverrides,
        first: &RecordBatch,
    ) -> Result<Self, DatasetError> {
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let find = |role: &'static str, given: &Option<String>, names: &[&str]| {
            pick(path, &columns, role, given.as_ref(), names)
        };
        let chosen = find("chosen", &overrides.chosen, CHOSEN_NAMES)?;
        let rejected = find("rejected", &overrides.rejected, REJECTED_NAMES)?;
        let history = first_present(&columns, HISTORY_NAMES);
        let prompt = match &overrides.prompt {
            Some(_) => Some(find("prompt", &overrides.prompt, PROMPT_NAMES)?),
            None => first_present(&columns, PROMPT_NAMES),
        };
        let prompt_inside_responses = first.num_rows() > 0
            && first_cell(first, &chosen).is_some_and(|value| has_user_turn(&value));
        if prompt.is_none() && history.is_none() && !prompt_inside_responses {
            return Err(missing(path, &columns, "prompt", PROMPT_NAMES));
        }
        let input = match prompt.as_deref() {
            Some("instruction") if columns.iter().any(|c| c == "input") => Some("input".into()),
            _ => None,
        };
        Ok(ColumnMap {
            prompt,
            input,
            system: first_present(&columns, SYSTEM_NAMES),
            history,
            chosen,
            rejected,
            gold: None,
            category: None,
        })
    }

    /// Finds the columns of a human-labelled set for `eval`: prompt/chosen/rejected (chosen is
    /// preferred), LLMBar's input/output_1/output_2/label, or any layout with a gold column.
    pub fn detect_labelled(
        path: &Path,
        schema: &Schema,
        overrides: &ColumnOverrides,
        first: &RecordBatch,
    ) -> Result<Self, DatasetError> {
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let has = |name: &str| columns.iter().any(|c| c == name);
        let llmbar =
            overrides.chosen.is_none() && !has("chosen") && has(FIRST_OUTPUT) && has(SECOND_OUTPUT);
        let mut overrides = overrides.clone();
        if llmbar {
            overrides.chosen = Some(FIRST_OUTPUT.into());
            overrides.rejected = Some(SECOND_OUTPUT.into());
            overrides.gold = overrides.gold.or_else(|| has(LABEL).then(|| LABEL.into()));
        }
        let mut map = ColumnMap::detect(path, schema, &overrides, first)?;
        map.gold = Some(match overrides.gold {
            Some(name) if has(&name) => Gold::Column(name),
            Some(name) => return Err(missing(path, &columns, "gold label", &[name.as_str()])),
            None if llmbar => return Err(missing(path, &columns, "gold label", &[LABEL])),
            None => Gold::Chosen,
        });
        map.category = match overrides.category {
            Some(name) if has(&name) => Some(name),
            Some(name) => return Err(missing(path, &columns, "category", &[name.as_str()])),
            None => first_present(&columns, CATEGORY_NAMES),
        };
        Ok(map)
    }

    /// The columns the judge reads.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let gold = match &self.gold {
            Some(Gold::Column(name)) => Some(name.as_str()),
            _ => None,
        };
        [
            &self.prompt,
            &self.input,
            &self.system,
            &self.history,
            &self.category,
        ]
        .into_iter()
        .filter_map(Option::as_deref)
        .chain(gold)
        .chain([self.chosen.as_str(), self.rejected.as_str()])
    }

    /// The conversation of every row of a batch, or why a row cannot be judged. Only the mapped
    /// columns are read.
    pub fn conversations(&self, batch: &RecordBatch) -> Vec<Result<Conversation, String>> {
        let schema = batch.schema();
        let columns: Vec<(&str, &arrow_array::ArrayRef, bool)> = self
            .names()
            .filter_map(|name| {
                let (position, field) = schema.column_with_name(name)?;
                Some((name, batch.column(position), cell::is_json_text(field)))
            })
            .collect();
        (0..batch.num_rows())
            .map(|row| {
                let record: Map<String, Value> = columns
                    .iter()
                    .map(|(name, array, json_text)| {
                        ((*name).to_owned(), cell::value(array, row, *json_text))
                    })
                    .collect();
                self.conversation(&record)
            })
            .collect()
    }

    /// Builds the conversation of one row, or says why the row cannot be judged.
    fn conversation(&self, record: &Map<String, Value>) -> Result<Conversation, String> {
        let (chosen_history, chosen) = response(record, &self.chosen)?;
        let (_, rejected) = response(record, &self.rejected)?;
        let mut turns = match (&self.prompt, &self.history) {
            (Some(column), _) => prompt_turns(record, column)?,
            (None, Some(column)) => turns_of(record.get(column).unwrap_or(&Value::Null), column)?,
            (None, None) => chosen_history,
        };
        if let Some(column) = &self.input {
            append_input(&mut turns, record.get(column));
        }
        let mut system = self
            .system
            .as_ref()
            .and_then(|column| record.get(column))
            .and_then(text_of)
            .filter(|text| !text.trim().is_empty());
        let mut history = Vec::with_capacity(turns.len());
        for turn in turns {
            if turn.role == "system" {
                system.get_or_insert(turn.content);
            } else {
                history.push(turn);
            }
        }
        let prompt = match history.pop() {
            Some(turn) if turn.role == "user" && !turn.content.trim().is_empty() => turn.content,
            Some(turn) if turn.role == "user" => return Err("the prompt is empty".into()),
            Some(_) => return Err("the conversation does not end with a user turn".into()),
            None => return Err("no prompt found in the row".into()),
        };
        let chosen_is_first = match &self.gold {
            Some(Gold::Column(column)) => gold_is_first(record.get(column), column)?,
            _ => true,
        };
        let (chosen, rejected) = if chosen_is_first {
            (chosen, rejected)
        } else {
            (rejected, chosen)
        };
        let category = self
            .category
            .as_ref()
            .and_then(|column| record.get(column))
            .and_then(|value| match value {
                Value::Null => None,
                Value::String(text) => Some(text.clone()),
                other => Some(other.to_string()),
            });
        Ok(Conversation {
            system,
            history,
            prompt,
            chosen,
            rejected,
            chosen_is_first,
            category,
        })
    }
}

/// Whether a gold label names the first response column: `chosen`, `1`, `a` (any case), or
/// the second: `rejected`, `2`, `b`.
fn gold_is_first(value: Option<&Value>, column: &str) -> Result<bool, String> {
    let text = match value {
        Some(Value::String(text)) => text.trim().to_ascii_lowercase(),
        Some(Value::Number(number)) => number.to_string(),
        _ => return Err(format!("{column} is missing or not a label")),
    };
    match text.as_str() {
        "chosen" | "1" | "1.0" | "a" => Ok(true),
        "rejected" | "2" | "2.0" | "b" => Ok(false),
        _ => Err(format!(
            "{column} is {text:?}; expected chosen/rejected, 1/2 or a/b"
        )),
    }
}

fn pick(
    path: &Path,
    columns: &[String],
    role: &'static str,
    given: Option<&String>,
    names: &[&str],
) -> Result<String, DatasetError> {
    match given {
        Some(name) if columns.contains(name) => Ok(name.clone()),
        Some(name) => Err(missing(path, columns, role, &[name.as_str()])),
        None => first_present(columns, names).ok_or_else(|| missing(path, columns, role, names)),
    }
}

fn first_cell(batch: &RecordBatch, column: &str) -> Option<Value> {
    let (position, field) = batch
        .schema()
        .column_with_name(column)
        .map(|(p, f)| (p, f.clone()))?;
    Some(cell::value(
        batch.column(position),
        0,
        cell::is_json_text(&field),
    ))
}

fn first_present(columns: &[String], names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|name| columns.iter().any(|c| c == *name))
        .map(ToString::to_string)
}

fn missing(path: &Path, columns: &[String], role: &'static str, tried: &[&str]) -> DatasetError {
    DatasetError::MissingColumn {
        path: path.to_path_buf(),
        role,
        tried: tried.join(", "),
        found: if columns.is_empty() {
            "none".into()
        } else {
            columns.join(", ")
        },
    }
}

fn has_user_turn(value: &Value) -> bool {
    value.as_array().is_some_and(|turns| {
        turns
            .iter()
            .any(|turn| role_of(turn).as_deref() == Some("user"))
    })
}

/// The response text of a chosen/rejected cell, with the turns before it when the cell is a
/// message list.
fn response(record: &Map<String, Value>, column: &str) -> Result<(Vec<Turn>, String), String> {
    let value = record.get(column).unwrap_or(&Value::Null);
    let (history, text) = match value {
        Value::Array(_) => {
            let mut turns = turns_of(value, column)?;
            match turns.pop() {
                Some(last) if last.role == "assistant" => (turns, last.content),
                Some(_) => {
                    return Err(format!("{column}: the last message is not the assistant's"));
                }
                None => return Err(format!("{column} is an empty message list")),
            }
        }
        Value::Null => return Err(format!("{column} is null")),
        other => (
            Vec::new(),
            text_of(other)
                .ok_or_else(|| format!("{column} has an unsupported type: {}", kind(other)))?,
        ),
    };
    if text.trim().is_empty() {
        return Err(format!("{column} is empty"));
    }
    Ok((history, text))
}

fn prompt_turns(record: &Map<String, Value>, column: &str) -> Result<Vec<Turn>, String> {
    match record.get(column).unwrap_or(&Value::Null) {
        value @ Value::Array(_) => turns_of(value, column),
        Value::Null => Err(format!("{column} is null")),
        other => {
            let content = text_of(other)
                .ok_or_else(|| format!("{column} has an unsupported type: {}", kind(other)))?;
            Ok(vec![Turn {
                role: "user".into(),
                content,
            }])
        }
    }
}

fn append_input(turns: &mut [Turn], input: Option<&Value>) {
    let Some(input) = input
        .and_then(text_of)
        .filter(|text| !text.trim().is_empty())
    else {
        return;
    };
    if let Some(last) = turns.last_mut() {
        last.content = format!("{}\n\n{}", last.content, input);
    }
}

fn turns_of(value: &Value, column: &str) -> Result<Vec<Turn>, String> {
    let Value::Array(items) = value else {
        return Err(format!("{column} is not a message list: {}", kind(value)));
    };
    items
        .iter()
        .enumerate()
        .map(|(position, item)| {
            let role = role_of(item)
                .ok_or_else(|| format!("{column}[{position}] has no role or from field"))?;
            let content = item
                .get("content")
                .or_else(|| item.get("value"))
                .and_then(text_of)
                .ok_or_else(|| format!("{column}[{position}] has no text content"))?;
            Ok(Turn { role, content })
        })
        .collect()
}

fn role_of(message: &Value) -> Option<String> {
    let raw = message
        .get("role")
        .or_else(|| message.get("from"))?
        .as_str()?;
    let role = match raw.to_ascii_lowercase().as_str() {
        "user" | "human" | "prompter" => "user",
        "assistant" | "gpt" | "bot" | "model" | "chatgpt" => "assistant",
        "system" => "system",
        _ => return None,
    };
    Some(role.to_string())
}

/// The text of a cell: a string, a single message object, or a list of content parts.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(message) => message
            .get("content")
            .or_else(|| message.get("value"))
            .or_else(|| message.get("text"))
            .and_then(text_of),
        Value::Array(parts) => {
            let texts: Vec<String> = parts
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
                .filter_map(|part| part.get("text").and_then(Value::as_str).map(str::to_owned))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("test rows are objects"),
        }
    }

    fn detect(row: &Value) -> ColumnMap {
        let batch = crate::dataset::json::batch_of(std::slice::from_ref(row));
        ColumnMap::detect(
            Path::new("t.jsonl"),
            &batch.schema(),
            &ColumnOverrides::default(),
            &batch,
        )
        .expect("columns are detected")
    }

    fn schema(columns: &[&str]) -> Schema {
        Schema::new(
            columns
                .iter()
                .map(|name| arrow_schema::Field::new(*name, arrow_schema::DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn plain_strings() {
        let row = json!({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."});
        let conversation = detect(&row).conversation(&map(row)).unwrap();
        assert_eq!(conversation.prompt, "Hi?");
        assert_eq!(conversation.chosen, "Hello.");
        assert_eq!(conversation.rejected, "Go away.");
        assert!(conversation.history.is_empty());
    }

    #[test]
    fn sharegpt_with_system_and_history() {
        let row = json!({
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "One?"},
                {"from": "gpt", "value": "1"},
                {"from": "human", "value": "Two?"}
            ],
            "chosen": {"from": "gpt", "value": "2"},
            "rejected": {"from": "gpt", "value": "3"}
        });
        let conversation = detect(&row).conversation(&map(row)).unwrap();
        assert_eq!(conversation.system.as_deref(), Some("Be brief."));
        assert_eq!(conversation.prompt, "Two?");
        assert_eq!(conversation.history.len(), 2);
        assert_eq!(conversation.chosen, "2");
    }

    #[test]
    fn openai_messages_with_the_prompt_inside_the_responses() {
        let row = json!({
            "chosen": [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome."}],
            "rejected": [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Milan."}]
        });
        let conversation = detect(&row).conversation(&map(row)).unwrap();
        assert_eq!(conversation.prompt, "Capital of Italy?");
        assert_eq!(conversation.rejected, "Milan.");
    }

    #[test]
    fn alpaca_instruction_and_input_are_joined() {
        let row = json!({"instruction": "Translate", "input": "ciao", "chosen": "hello", "rejected": "bye"});
        let conversation = detect(&row).conversation(&map(row)).unwrap();
        assert_eq!(conversation.prompt, "Translate\n\nciao");
    }

    #[test]
    fn bad_cells_give_reasons_not_panics() {
        let columns = detect(&json!({"prompt": "p", "chosen": "a", "rejected": "b"}));
        for (row, reason) in [
            (
                json!({"prompt": "p", "chosen": null, "rejected": "b"}),
                "chosen is null",
            ),
            (
                json!({"prompt": "p", "chosen": "a", "rejected": " "}),
                "rejected is empty",
            ),
            (
                json!({"prompt": "p", "chosen": 3, "rejected": "b"}),
                "chosen has an unsupported type: number",
            ),
            (
                json!({"prompt": "", "chosen": "a", "rejected": "b"}),
                "the prompt is empty",
            ),
        ] {
            assert_eq!(columns.conversation(&map(row)).unwrap_err(), reason);
        }
    }

    fn detect_labelled(row: &Value, overrides: &ColumnOverrides) -> ColumnMap {
        let batch = crate::dataset::json::batch_of(std::slice::from_ref(row));
        ColumnMap::detect_labelled(Path::new("gold.jsonl"), &batch.schema(), overrides, &batch)
            .expect("columns are detected")
    }

    #[test]
    fn llmbar_labels_put_the_preferred_output_in_chosen() {
        let row = json!({"input": "Q?", "output_1": "one", "output_2": "two", "label": 2});
        let columns = detect_labelled(&row, &ColumnOverrides::default());
        assert_eq!(columns.gold, Some(Gold::Column("label".into())));
        let conversation = columns.conversation(&map(row)).unwrap();
        assert_eq!(
            (conversation.chosen.as_str(), conversation.rejected.as_str()),
            ("two", "one")
        );
        assert!(!conversation.chosen_is_first);
        let bad = json!({"input": "Q?", "output_1": "one", "output_2": "two", "label": 3});
        let error = columns.conversation(&map(bad)).unwrap_err();
        assert!(error.contains("label is \"3\""), "{error}");
    }

    #[test]
    fn a_gold_column_and_a_category() {
        let row = json!({"prompt": "Q?", "chosen": "x", "rejected": "y", "human": "B", "category": "math"});
        let overrides = ColumnOverrides {
            gold: Some("human".into()),
            ..ColumnOverrides::default()
        };
        let columns = detect_labelled(&row, &overrides);
        let conversation = columns.conversation(&map(row)).unwrap();
        assert_eq!(conversation.chosen, "y");
        assert_eq!(conversation.category.as_deref(), Some("math"));
        let plain = json!({"prompt": "Q?", "chosen": "x", "rejected": "y"});
        assert_eq!(
            detect_labelled(&plain, &ColumnOverrides::default()).gold,
            Some(Gold::Chosen)
        );
    }

    #[test]
    fn a_missing_column_lists_the_columns_found() {
        let schema = schema(&["query", "chosen", "rejected"]);
        let error = ColumnMap::detect(
            Path::new("d.csv"),
            &schema,
            &ColumnOverrides::default(),
            &RecordBatch::new_empty(std::sync::Arc::new(schema.clone())),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("d.csv: no prompt column found"), "{error}");
        assert!(
            error.contains("columns present: query, chosen, rejected"),
            "{error}"
        );
    }

    #[test]
    fn overrides_win() {
        let schema = schema(&["q", "good", "bad"]);
        let overrides = ColumnOverrides {
            prompt: Some("q".into()),
            chosen: Some("good".into()),
            rejected: Some("bad".into()),
            ..ColumnOverrides::default()
        };
        let empty = RecordBatch::new_empty(std::sync::Arc::new(schema.clone()));
        let map = ColumnMap::detect(Path::new("x"), &schema, &overrides, &empty).unwrap();
        assert_eq!(
            (map.prompt.as_deref(), map.chosen.as_str()),
            (Some("q"), "good")
        );
    }
}
