//! What a command produced, how it is printed, and the small argument helpers every command
//! family uses.

use serde_json::{Value, json};

use crate::admin::output::{OutputFormat, payload_text, render};
use crate::admin::types::{PeekedMessage, RawMessage};
use crate::admin::{AdminError, AdminResult, NamespaceRef, TopicRef};

/// What a command produced.
pub(super) enum Out {
    None,
    Value(Value),
    Messages(Vec<RawMessage>),
    Text { text: String, json: Value },
}

pub(super) fn val<T: serde::Serialize>(v: T) -> Out {
    Out::Value(serde_json::to_value(v).unwrap_or(Value::Null))
}

pub(super) fn ns(s: &str) -> AdminResult<NamespaceRef> {
    NamespaceRef::parse(s)
}

pub(super) fn topic(s: &str) -> AdminResult<TopicRef> {
    TopicRef::parse(s)
}

pub(super) fn arg_err(e: String) -> AdminError {
    AdminError::InvalidArgument(e)
}

pub(super) fn render_messages(entries: &[RawMessage], format: OutputFormat) -> String {
    let msgs: Vec<PeekedMessage> = entries.iter().flat_map(RawMessage::messages).collect();
    match format {
        OutputFormat::Json => {
            let v: Vec<Value> = msgs
                .iter()
                .map(|m| {
                    json!({
                        "messageId": m.id,
                        "headers": m.headers,
                        "payload": String::from_utf8_lossy(&m.payload),
                    })
                })
                .collect();
            render(&Value::Array(v), OutputFormat::Json)
        }
        OutputFormat::Table => {
            let mut out = String::new();
            for (i, m) in msgs.iter().enumerate() {
                if i > 0 {
                    out.push_str("-------------------------------------------------------------\n");
                }
                out.push_str(&format!("Message ID: {}\n", m.id));
                for (k, v) in &m.headers {
                    out.push_str(&format!("{k}: {v}\n"));
                }
                out.push_str(&payload_text(&m.payload));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            out
        }
    }
}

/// Table rendering of peeked entries (for tests).
#[cfg(test)]
pub(crate) fn render_messages_for_test(entries: &[RawMessage]) -> String {
    render_messages(entries, OutputFormat::Table)
}
