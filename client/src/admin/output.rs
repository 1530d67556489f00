//! Rendering of admin answers: pretty JSON, or a plain-text table.
//!
//! Tables: a list of strings prints one per line; a list of objects prints one row per object
//! with the union of their keys as columns; an object prints `KEY  VALUE` rows (nested values
//! as compact JSON); a scalar prints as itself.

use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned plain-text columns.
    #[default]
    Table,
    /// Pretty-printed JSON, as the server sent it.
    Json,
}

/// Renders `value` in `format`; the result ends with a newline unless it is empty.
pub fn render(value: &Value, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            s.push('\n');
            s
        }
        OutputFormat::Table => render_table(value),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(cell).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

fn render_table(value: &Value) -> String {
    match value {
        // A getter of an unset policy: say so, as pulsar-admin does.
        Value::Null => "null\n".to_owned(),
        Value::Array(items) if items.iter().all(|v| !v.is_object()) => {
            items.iter().map(|v| format!("{}\n", cell(v))).collect()
        }
        Value::Array(items) => {
            let mut columns: Vec<String> = Vec::new();
            for item in items {
                if let Value::Object(m) = item {
                    for k in m.keys() {
                        if !columns.contains(k) {
                            columns.push(k.clone());
                        }
                    }
                }
            }
            let header: Vec<String> = columns.iter().map(|c| header_name(c)).collect();
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|item| {
                    columns
                        .iter()
                        .map(|c| item.get(c).map(cell).unwrap_or_default())
                        .collect()
                })
                .collect();
            format_rows(Some(header), rows)
        }
        Value::Object(m) => {
            if m.is_empty() {
                return String::new();
            }
            let rows = m.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
            format_rows(None, rows)
        }
        scalar => format!("{}\n", cell(scalar)),
    }
}

/// `msgRateIn` → `MSG_RATE_IN`.
fn header_name(key: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_uppercase());
    }
    out
}

fn format_rows(header: Option<Vec<String>>, rows: Vec<Vec<String>>) -> String {
    let all: Vec<&Vec<String>> = header.iter().chain(rows.iter()).collect();
    let ncol = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            all.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                line.push_str(c);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders a payload for a terminal: UTF-8 text as is, anything else as a hex dump.
pub fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => s.to_owned(),
        _ => hex_dump(payload),
    }
}

/// `xxd`-like dump: offset, 16 hex bytes, printable ASCII.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}  ", i * 16));
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_list_is_one_per_line() {
        let v = json!(["public", "sample"]);
        assert_eq!(render(&v, OutputFormat::Table), "public\nsample\n");
    }

    #[test]
    fn object_is_key_value_rows_aligned() {
        let v = json!({"adminRoles": ["a", "b"], "allowedClusters": ["standalone"]});
        assert_eq!(
            render(&v, OutputFormat::Table),
            "adminRoles       a,b\nallowedClusters  standalone\n"
        );
    }

    #[test]
    fn list_of_objects_is_a_table_with_union_of_columns() {
        let v = json!([{"bookieId": "b1", "rack": "r1"}, {"bookieId": "bookie-22"}]);
        assert_eq!(
            render(&v, OutputFormat::Table),
            "BOOKIE_ID  RACK\nb1         r1\nbookie-22\n"
        );
    }

    #[test]
    fn nested_values_are_compact_json_and_null_is_empty() {
        let v = json!({"subscriptions": {"s": {"msgBacklog": 3}}, "x": null});
        assert_eq!(
            render(&v, OutputFormat::Table),
            "subscriptions  {\"s\":{\"msgBacklog\":3}}\nx\n"
        );
        assert_eq!(render(&Value::Null, OutputFormat::Table), "null\n");
        assert_eq!(render(&json!(42), OutputFormat::Table), "42\n");
    }

    #[test]
    fn json_is_pretty() {
        let v = json!({"partitions": 4});
        assert_eq!(
            render(&v, OutputFormat::Json),
            "{\n  \"partitions\": 4\n}\n"
        );
    }

    #[test]
    fn payloads_text_or_hex() {
        assert_eq!(payload_text(b"hello"), "hello");
        assert_eq!(
            payload_text(&[0, 1, b'A']),
            "00000000  00 01 41                                         ..A\n"
        );
    }

    #[test]
    fn header_names() {
        assert_eq!(header_name("msgRateIn"), "MSG_RATE_IN");
        assert_eq!(header_name("bookieId"), "BOOKIE_ID");
    }
}
