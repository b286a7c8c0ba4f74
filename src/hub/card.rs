//! A dataset card's `configs`: which files make each subset's splits.
//!
//! Online, the Hub's own reading of the card (`cardData` in the repository info) is used.
//! Offline, the cached `README.md` is read here: only its `configs` block, with a reader for
//! the YAML that block is written in (block maps and lists, `- key: value` items, flow lists
//! and maps on one line, quoted and plain scalars, comments). The rest of the card is not
//! rejudge's to understand, so nothing else in it can make the read fail.

use serde_json::{Map, Value};

/// One subset (a "config" in `datasets`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    /// `config_name`.
    pub name: String,
    /// Whether the card marks it as the default.
    pub default: bool,
    /// Each split with its patterns, in the card's order; `None` when the config names no
    /// `data_files` (its files are then found by the standard layout, under `data_dir`).
    pub splits: Option<Vec<(String, Vec<String>)>>,
    /// The folder the patterns are relative to.
    pub data_dir: Option<String>,
}

/// The configs of the Hub's parsed card data; `None` when it declares none.
pub(crate) fn from_card_data(card: &Value) -> Result<Option<Vec<Config>>, String> {
    match card.get("configs") {
        None | Some(Value::Null) => Ok(None),
        Some(configs) => configs_of(configs).map(Some),
    }
}

/// The configs of a `README.md`'s front matter; `None` when it declares none.
pub(crate) fn from_readme(text: &str) -> Result<Option<Vec<Config>>, String> {
    let Some(block) = configs_block(text) else {
        return Ok(None);
    };
    let value = parse_block(&block)?;
    from_card_data(&Value::Object(Map::from_iter([(
        "configs".to_owned(),
        value,
    )])))
}

fn configs_of(value: &Value) -> Result<Vec<Config>, String> {
    let Value::Array(items) = value else {
        return Err("`configs` is not a list".into());
    };
    items.iter().map(config_of).collect()
}

fn config_of(value: &Value) -> Result<Config, String> {
    let Value::Object(map) = value else {
        return Err("an entry of `configs` is not a map".into());
    };
    let name = match map.get("config_name") {
        None | Some(Value::Null) => "default".to_owned(),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(other) => return Err(format!("config_name {other} is not a name")),
    };
    let default = map.get("default").and_then(Value::as_bool).unwrap_or(false);
    let data_dir = match map.get("data_dir") {
        Some(Value::String(folder)) => Some(folder.trim_matches('/').to_owned()),
        _ => None,
    };
    let splits = match map.get("data_files") {
        None | Some(Value::Null) => None,
        Some(files) => {
            Some(splits_of(files, data_dir.as_deref()).map_err(|e| format!("config {name}: {e}"))?)
        }
    };
    Ok(Config {
        name,
        default,
        splits,
        data_dir,
    })
}

/// `data_files`: a pattern or a list of them (the `train` split), a list of `{split, path}`,
/// or a map of split to pattern(s).
fn splits_of(value: &Value, data_dir: Option<&str>) -> Result<Vec<(String, Vec<String>)>, String> {
    let within = |patterns: Vec<String>| -> Vec<String> {
        match data_dir {
            Some(folder) if !folder.is_empty() => patterns
                .into_iter()
                .map(|pattern| format!("{folder}/{}", pattern.trim_start_matches("./")))
                .collect(),
            _ => patterns,
        }
    };
    match value {
        Value::String(_) => Ok(vec![("train".into(), within(patterns_of(value)?))]),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Ok(vec![("train".into(), within(patterns_of(value)?))])
        }
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let split = item
                    .get("split")
                    .and_then(Value::as_str)
                    .unwrap_or("train")
                    .to_owned();
                let path = item
                    .get("path")
                    .ok_or_else(|| format!("split {split} has no `path`"))?;
                Ok((split, within(patterns_of(path)?)))
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(split, path)| Ok((split.clone(), within(patterns_of(path)?))))
            .collect(),
        other => Err(format!(
            "data_files {other} is not a pattern, a list or a map"
        )),
    }
}

fn patterns_of(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(pattern) => Ok(vec![pattern.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{item} is not a pattern"))
            })
            .collect(),
        other => Err(format!("{other} is not a pattern or a list of patterns")),
    }
}

/// The lines under the front matter's top-level `configs:` key (the key's own value, when on
/// its line, comes first as `- ` free flow text); `None` without front matter or key.
fn configs_block(text: &str) -> Option<Vec<String>> {
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let matter: Vec<&str> = lines
        .take_while(|line| !matches!(line.trim_end(), "---" | "..."))
        .collect();
    let start = matter.iter().position(|line| {
        line.strip_prefix("configs")
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })?;
    let inline = matter[start]
        .split_once(':')
        .map(|(_, rest)| strip_comment(rest).trim().to_owned())
        .unwrap_or_default();
    if !inline.is_empty() {
        return Some(vec![inline]);
    }
    let block = matter[start + 1..]
        .iter()
        .take_while(|line| {
            let content = strip_comment(line);
            content.trim().is_empty() || line.starts_with([' ', '-'])
        })
        .map(|line| (*line).to_owned())
        .collect();
    Some(block)
}

/// A line of YAML: its indentation and its content, comment stripped.
#[derive(Debug, Clone)]
struct Line {
    indent: usize,
    text: String,
}

fn parse_block(block: &[String]) -> Result<Value, String> {
    let mut lines = Vec::new();
    for raw in block {
        let content = strip_comment(raw);
        if content.trim().is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start_matches(' ').len();
        if content[indent..].starts_with('\t') {
            return Err("tabs in indentation".into());
        }
        lines.push(Line {
            indent,
            text: content.trim().to_owned(),
        });
    }
    if lines.is_empty() {
        return Ok(Value::Null);
    }
    let mut reader = Reader { lines, at: 0 };
    let indent = reader.lines[0].indent;
    let value = if reader.lines.len() == 1
        && !is_item(&reader.lines[0].text)
        && !has_key(&reader.lines[0].text)
    {
        reader.at = 1;
        scalar(&reader.lines[0].text)?
    } else {
        reader.node(indent)?
    };
    match reader.lines.get(reader.at) {
        Some(line) => Err(format!("cannot read the line {:?}", line.text)),
        None => Ok(value),
    }
}

struct Reader {
    lines: Vec<Line>,
    at: usize,
}

impl Reader {
    fn node(&mut self, indent: usize) -> Result<Value, String> {
        if is_item(&self.lines[self.at].text) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        }
    }

    fn sequence(&mut self, indent: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.at).cloned() {
            if line.indent != indent || !is_item(&line.text) {
                if line.indent > indent {
                    return Err(format!("unexpected indentation at {:?}", line.text));
                }
                break;
            }
            let rest = line.text[1..].trim_start();
            if rest.is_empty() {
                self.at += 1;
                items.push(self.nested(indent, false)?);
            } else if has_key(rest) {
                // "- key: value" opens a map whose keys line up with "key".
                let column = indent + (line.text.len() - rest.len());
                self.lines[self.at] = Line {
                    indent: column,
                    text: rest.to_owned(),
                };
                items.push(self.mapping(column)?);
            } else {
                self.at += 1;
                items.push(scalar(rest)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize) -> Result<Value, String> {
        let mut map = Map::new();
        while let Some(line) = self.lines.get(self.at).cloned() {
            if line.indent < indent || (line.indent == indent && is_item(&line.text)) {
                break;
            }
            if line.indent > indent {
                return Err(format!("unexpected indentation at {:?}", line.text));
            }
            let (key, rest) = split_key(&line.text)?;
            self.at += 1;
            let value = if rest.is_empty() {
                self.nested(indent, true)?
            } else if rest.starts_with(['|', '>']) {
                return Err(format!("block scalars are not supported (key {key})"));
            } else {
                scalar(rest)?
            };
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    /// The value below a key or a bare `-`: more indented lines, or (under a key) a list at the
    /// key's own indentation.
    fn nested(&mut self, indent: usize, under_key: bool) -> Result<Value, String> {
        match self.lines.get(self.at) {
            Some(next) if next.indent > indent => {
                let inner = next.indent;
                self.node(inner)
            }
            Some(next) if under_key && next.indent == indent && is_item(&next.text) => {
                self.sequence(indent)
            }
            _ => Ok(Value::Null),
        }
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Whether `text` is `key: value` (or `key:`), the key plain or quoted.
fn has_key(text: &str) -> bool {
    split_key(text).is_ok()
}

fn split_key(text: &str) -> Result<(String, &str), String> {
    if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = text[1..]
            .find(quote)
            .map(|at| at + 1)
            .ok_or_else(|| format!("unterminated key in {text:?}"))?;
        let rest = text[end + 1..].trim_start();
        let value = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("expected ':' after the key in {text:?}"))?;
        return Ok((text[1..end].to_owned(), value.trim()));
    }
    if text.starts_with(['[', '{']) {
        return Err(format!("{text:?} is not `key: value`"));
    }
    let colon = text
        .match_indices(':')
        .map(|(at, _)| at)
        .find(|at| text[at + 1..].is_empty() || text[at + 1..].starts_with(' '))
        .ok_or_else(|| format!("{text:?} is not `key: value`"))?;
    Ok((text[..colon].trim().to_owned(), text[colon + 1..].trim()))
}

/// The line without a trailing `# comment` (a `#` after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match quote {
            Some(open) if c == open => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return line[..at].trim_end(),
            _ => {}
        }
        previous = c;
    }
    line.trim_end()
}

fn scalar(text: &str) -> Result<Value, String> {
    let text = text.trim();
    let value = match text.chars().next() {
        Some('"') => {
            if text.len() < 2 || !text.ends_with('"') {
                return Err(format!("unterminated string {text:?}"));
            }
            let parsed: String = serde_json::from_str(text)
                .map_err(|_| format!("unsupported escapes in {text:?}"))?;
            Value::String(parsed)
        }
        Some('\'') => {
            if text.len() < 2 || !text.ends_with('\'') {
                return Err(format!("unterminated string {text:?}"));
            }
            Value::String(text[1..text.len() - 1].replace("''", "'"))
        }
        Some('[') => {
            let inner = text
                .strip_suffix(']')
                .ok_or_else(|| format!("a list that does not end on its line: {text:?}"))?;
            let items = split_flow(&inner[1..]);
            Value::Array(
                items
                    .iter()
                    .map(|item| scalar(item))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some('{') => {
            let inner = text
                .strip_suffix('}')
                .ok_or_else(|| format!("a map that does not end on its line: {text:?}"))?;
            let mut map = Map::new();
            for item in split_flow(&inner[1..]) {
                let (key, value) = split_key(&item)?;
                map.insert(key, scalar(value)?);
            }
            Value::Object(map)
        }
        _ => plain(text),
    };
    Ok(value)
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.to_owned()), Value::from),
    }
}

/// The items of a flow list or map body, split at top-level commas.
fn split_flow(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quote) = (0usize, None);
    for c in text.chars() {
        match quote {
            Some(open) if c == open => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '[' || c == '{' => depth += 1,
            None if c == ']' || c == '}' => depth = depth.saturating_sub(1),
            None if c == ',' && depth == 0 => {
                items.push(std::mem::take(&mut current).trim().to_owned());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        items.push(current.trim().to_owned());
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CARD: &str = "---
license: mit
pretty_name: \"Tiny: pairs\"
dataset_info:
  features:
  - name: prompt
    dtype: string
  description: |
    Anything: here # is not ours
configs:
- config_name: default
  default: true
  data_files:
  - split: train
    path: data/train-*   # the shards
  - split: test
    path:
    - \"data/test-*.parquet\"
    - 'extra/it''s.parquet'
- config_name: flat
  data_files: [\"flat/*.jsonl\", other.jsonl]
- config_name: mapped
  data_dir: sub/
  data_files: {train: a-*.csv, validation: b.csv}
- config_name: bare
  data_dir: bare
tags:
- dpo
---
# Card

configs: this line is prose, not YAML
";

    #[test]
    fn the_configs_block_is_read_and_the_rest_of_the_card_ignored() {
        let configs = from_readme(CARD).unwrap().unwrap();
        let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["default", "flat", "mapped", "bare"]);
        assert!(configs[0].default && !configs[1].default);
        assert_eq!(
            configs[0].splits.as_ref().unwrap(),
            &[
                ("train".to_owned(), vec!["data/train-*".to_owned()]),
                (
                    "test".to_owned(),
                    vec![
                        "data/test-*.parquet".to_owned(),
                        "extra/it's.parquet".to_owned()
                    ]
                ),
            ]
        );
        assert_eq!(
            configs[1].splits.as_ref().unwrap(),
            &[(
                "train".to_owned(),
                vec!["flat/*.jsonl".to_owned(), "other.jsonl".to_owned()]
            )]
        );
        assert_eq!(
            configs[2].splits.as_ref().unwrap(),
            &[
                ("train".to_owned(), vec!["sub/a-*.csv".to_owned()]),
                ("validation".to_owned(), vec!["sub/b.csv".to_owned()]),
            ]
        );
        assert_eq!(configs[3].splits, None);
        assert_eq!(configs[3].data_dir.as_deref(), Some("bare"));
    }

    #[test]
    fn the_hubs_card_data_reads_the_same() {
        let card = json!({"configs": [
            {"config_name": "default", "default": true, "data_files": [
                {"split": "train", "path": "data/train-*"},
                {"split": "test", "path": ["data/test-*.parquet", "extra/it's.parquet"]}]},
            {"config_name": "flat", "data_files": ["flat/*.jsonl", "other.jsonl"]}]});
        let from_json = from_card_data(&card).unwrap().unwrap();
        let from_yaml = from_readme(CARD).unwrap().unwrap();
        assert_eq!(from_json[..], from_yaml[..2]);
        assert_eq!(from_card_data(&json!({"license": "mit"})).unwrap(), None);
    }

    #[test]
    fn cards_without_configs_or_front_matter_declare_none() {
        assert_eq!(from_readme("# Just prose\n\nconfigs: no").unwrap(), None);
        assert_eq!(from_readme("---\nlicense: mit\n---\n").unwrap(), None);
        let single = "---\nconfigs:\n  - config_name: only\n    data_files: x.jsonl\n---\n";
        let configs = from_readme(single).unwrap().unwrap();
        assert_eq!(configs[0].name, "only");
    }

    #[test]
    fn broken_configs_say_what_is_wrong() {
        for card in [
            "---\nconfigs:\n- config_name: a\n  data_files: [x.jsonl\n---\n",
            "---\nconfigs:\n- config_name: a\n    data_files: x\n---\n",
            "---\nconfigs:\n- config_name: a\n  data_files:\n  - split: train\n---\n",
            "---\nconfigs: 3\n---\n",
            "---\nconfigs:\n- config_name: \"a\n---\n",
        ] {
            assert!(from_readme(card).is_err(), "{card}");
        }
    }

    #[test]
    fn scalars_and_comments() {
        assert_eq!(scalar("'a''b'").unwrap(), json!("a'b"));
        assert_eq!(scalar("\"a\\tb\"").unwrap(), json!("a\tb"));
        assert_eq!(
            scalar("[a, 'b, c', [d]]").unwrap(),
            json!(["a", "b, c", ["d"]])
        );
        assert_eq!(scalar("{a: 1, b: x}").unwrap(), json!({"a": 1, "b": "x"}));
        assert_eq!(scalar("true").unwrap(), json!(true));
        assert_eq!(strip_comment("path: 'a # b' # c"), "path: 'a # b'");
        assert_eq!(strip_comment("path: a#b"), "path: a#b");
    }
}
