//! The configuration examples of README.md, as written, parse into valid
//! configurations (the ones that refer to named models are checked with the
//! models the main example defines).

use n1::core::config::{parse_config, ConfigOptions};
use serde_json::Value;

fn json_blocks() -> Vec<Value> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut out = Vec::new();
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("\n```json\n") {
        let body = &rest[i + 9..];
        let end = body.find("\n```").unwrap();
        // Blocks that are whole JSON documents (some are excerpts of replies).
        if let Ok(v) = serde_json::from_str::<Value>(&body[..end]) {
            out.push(v);
        }
        rest = &body[end..];
    }
    out
}

#[test]
fn every_configuration_example_parses() {
    let blocks: Vec<Value> = json_blocks().into_iter().filter(|v| v.get("ensembles").is_some()).collect();
    assert!(blocks.len() >= 3, "the README's configuration examples: {}", blocks.len());
    let models = blocks.iter().find_map(|b| b.get("models").filter(|m| m.is_object())).cloned().expect("an example defines the named models");
    for (i, mut b) in blocks.into_iter().enumerate() {
        if b.get("models").is_none() {
            b["models"] = models.clone();
        }
        let text = b.to_string();
        parse_config(&text, ConfigOptions::default()).unwrap_or_else(|e| panic!("README configuration example {i}: {e}\n{text}"));
    }
}
