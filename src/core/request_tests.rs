//! The internal request: what the policy reads from it (images, text size,
//! limits), the panel's and the summary's views of the conversation, and the
//! OpenAI wire form every OpenAI-shaped upstream gets.

use super::*;
use serde_json::json;

fn msg(v: Value) -> Message {
    let r = crate::core::dialects::chat::decode(json!({"messages": [v]}).to_string().as_bytes()).unwrap();
    r.messages.into_iter().next().unwrap()
}

fn msgs(v: Value) -> Vec<Message> {
    crate::core::dialects::chat::decode(json!({"messages": v}).to_string().as_bytes()).unwrap().messages
}

fn wire(messages: &[Message]) -> Value {
    serde_json::to_value(Conversation::new(messages)).unwrap()
}

#[test]
fn tool_history_becomes_text_for_the_panel() {
    let m = msgs(json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "12 C, rain"},
        {"role": "assistant", "content": "Let me also check.", "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "c3", "type": "function", "function": {"name": "b", "arguments": "{}"}}
        ]},
        {"role": "function", "name": "legacy_fn", "content": "old style"},
        {"role": "tool", "content": "no id"}
    ]));
    let p = panel_messages(&m);
    assert!(matches!(p, Cow::Owned(_)));
    assert_eq!(
        wire(&p),
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "[Called tool get_weather (call c1) with arguments {\"city\":\"Oslo\"}]"},
            {"role": "user", "content": "[Result of tool call c1]\n12 C, rain"},
            {"role": "assistant", "content": "Let me also check.\n[Called tool a (call c2) with arguments {}]\n[Called tool b (call c3) with arguments {}]"},
            {"role": "user", "content": "[Result of tool call legacy_fn]\nold style"},
            {"role": "user", "content": "[Result of tool call ?]\nno id"}
        ])
    );
    assert!(p.iter().all(|m| m.tool_calls.is_empty() && m.tool_call_id.is_none()));
}

#[test]
fn a_conversation_without_tools_is_borrowed_as_it_is() {
    let m = msgs(json!([{"role": "system", "content": "S"}, {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]));
    let p = panel_messages(&m);
    assert!(matches!(p, Cow::Borrowed(_)));
    assert_eq!(*p, m[..]);
    assert!(matches!(panel_messages(&m[..1]), Cow::Borrowed(_)));
}

#[test]
fn last_turn_keeps_system_and_last_user_message() {
    let m = msgs(json!([
        {"role": "system", "content": "S"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "developer", "content": "D"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"}
    ]));
    let t = last_turn(&m);
    assert_eq!(t, vec![m[0].clone(), m[3].clone(), m[4].clone()]);
    // No user turn: the instructions only.
    assert_eq!(last_turn(&m[..1]), vec![m[0].clone()]);
    assert!(last_turn(&m[2..3]).is_empty());
}

#[test]
fn detects_images() {
    let with = Request { messages: vec![msg(json!({"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}))], ..Request::default() };
    assert!(with.has_images());
    let without = Request { messages: vec![msg(json!({"role": "user", "content": "x"})), msg(json!({"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "input_audio", "input_audio": {}}]}))], ..Request::default() };
    assert!(!without.has_images());
}

#[test]
fn text_is_counted_in_characters_without_image_data() {
    let r = Request {
        messages: msgs(json!([
            {"role": "user", "content": "héllo"},
            {"role": "user", "content": [{"type": "text", "text": "世界"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAAAAAAAAAA"}}, {"type": "input_audio", "input_audio": {"data": "AAAA"}}]},
            {"role": "assistant", "content": null}
        ])),
        ..Request::default()
    };
    assert_eq!(r.text_chars(), 7);
    r.check_limits(&Limits { max_messages: 3, max_chars: 7 }).unwrap();
    let e = r.check_limits(&Limits { max_messages: 3, max_chars: 6 }).unwrap_err();
    assert_eq!(e.code(), Some("too_much_text"));
    assert!(e.message().contains("7 characters") && e.message().contains("limit is 6"), "{}", e.message());
    let e = r.check_limits(&Limits { max_messages: 2, max_chars: 100 }).unwrap_err();
    assert_eq!(e.code(), Some("too_many_messages"));
    assert!(e.message().contains("3") && e.message().contains("limit is 2"), "{}", e.message());
    assert_eq!(e.status(), 400);
    let l = Limits::default();
    assert_eq!((l.max_messages, l.max_chars), (1_000, 1_000_000));
}

#[test]
fn the_text_of_a_message() {
    assert_eq!(msg(json!({"role": "user", "content": "plain"})).text(), "plain");
    let parts = msg(json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "https://x"}}, {"type": "text", "text": "b"}]}));
    assert_eq!(parts.text(), "a\nb");
    let one = msg(json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}, {"type": "text", "text": "only"}]}));
    assert!(matches!(one.text(), Cow::Borrowed("only")));
    assert_eq!(msg(json!({"role": "assistant", "content": null})).text(), "");
    assert_eq!(msg(json!({"role": "user", "content": []})).text(), "");
}

#[test]
fn roles() {
    for (name, role) in Role::ALL {
        assert_eq!(role.as_str(), name);
        assert_eq!(role.is_system(), matches!(name, "system" | "developer"), "{name}");
    }
}

#[test]
fn the_output_cap_prefers_the_newer_name() {
    let p = |a: Option<u64>, b: Option<u64>| Params { max_tokens: a, max_completion_tokens: b, ..Params::default() }.output_cap();
    assert_eq!(p(None, None), None);
    assert_eq!(p(Some(5), None), Some(5));
    assert_eq!(p(None, Some(7)), Some(7));
    assert_eq!(p(Some(5), Some(7)), Some(7));
}

#[test]
fn the_wire_form_is_openais() {
    let m = msgs(json!([
        {"role": "developer", "content": "brief"},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}},
            {"type": "input_image", "image_url": "https://x/j.png"},
            {"type": "input_text", "text": "more"},
            {"type": "file", "file": {"file_id": "f1"}}
        ], "x_extra": 1},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    ]));
    let with_system = Conversation { system: Some("OURS"), messages: &m };
    assert_eq!(
        serde_json::to_value(with_system).unwrap(),
        json!([
            {"role": "system", "content": "OURS"},
            {"role": "developer", "content": "brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what?"},
                {"type": "image_url", "image_url": {"url": "https://x/i.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://x/j.png"}},
                {"type": "text", "text": "more"},
                {"type": "file", "file": {"file_id": "f1"}}
            ], "name": "ann", "x_extra": 1},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "content": "ok", "tool_call_id": "c1"}
        ])
    );
    assert_eq!(wire(&m).as_array().unwrap().len(), 4, "no system message of ours unless given");
    assert_eq!(serde_json::to_value(Message::new(Role::Function, "r")).unwrap(), json!({"role": "function", "content": "r"}));
}
