//! The internal event stream and whole answers: finish reasons, events
//! collected into a completion, and a completion replayed as events.

use super::*;
use crate::core::request::ToolCall;

fn usage(p: u64, c: u64) -> Usage {
    Usage { prompt_tokens: p, completion_tokens: c, total_tokens: p + c, cached_tokens: 0, ..Usage::default() }
}

#[test]
fn finish_reasons_in_openais_words() {
    for (s, f) in [("stop", Finish::Stop), ("length", Finish::Length), ("tool_calls", Finish::ToolCalls), ("content_filter", Finish::ContentFilter)] {
        assert_eq!(Finish::from_openai(s), f);
        assert_eq!(f.as_openai(), s);
        assert_eq!(serde_json::to_value(&f).unwrap(), s);
    }
    assert_eq!(Finish::from_openai("function_call"), Finish::ToolCalls);
    assert_eq!(Finish::from_openai("eos"), Finish::Other("eos".into()));
    assert_eq!(Finish::Other("eos".into()).as_openai(), "eos");
    assert_eq!(Finish::default(), Finish::Stop);
}

#[test]
fn reasoning_field_names() {
    assert_eq!(ReasoningField::ReasoningContent.as_str(), "reasoning_content");
    assert_eq!(ReasoningField::Reasoning.as_str(), "reasoning");
    assert_eq!(ReasoningField::default(), ReasoningField::ReasoningContent);
}

#[test]
fn content_is_what_a_client_sees_of_the_answer() {
    assert!(Event::Text("x".into()).is_content());
    assert!(Event::Reasoning(ReasoningField::Reasoning, "x".into()).is_content());
    assert!(Event::ToolCall { index: 0, id: None, name: None, arguments: "".into() }.is_content());
    assert!(!Event::Usage(Usage::default()).is_content());
    assert!(!Event::Finish(Finish::Stop).is_content());
}

#[test]
fn events_are_collected_into_an_answer() {
    let mut c = Completion::default();
    for ev in [
        Event::Reasoning(ReasoningField::Reasoning, "th".into()),
        Event::Reasoning(ReasoningField::Reasoning, "ink".into()),
        Event::Text("Hel".into()),
        Event::ToolCall { index: 1, id: Some("c2".into()), name: Some("g".into()), arguments: "{".into() },
        Event::Text("lo".into()),
        Event::ToolCall { index: 0, id: Some("c1".into()), name: Some("f".into()), arguments: "".into() },
        Event::ToolCall { index: 1, id: None, name: None, arguments: "}".into() },
        Event::ToolCall { index: 0, id: None, name: None, arguments: "{\"a\":1}".into() },
        Event::Usage(usage(1, 1)),
        Event::Usage(usage(3, 4)),
        Event::Finish(Finish::ToolCalls),
    ] {
        c.collect(ev);
    }
    assert_eq!(
        c,
        Completion {
            text: "Hello".into(),
            reasoning: Some((ReasoningField::Reasoning, "think".into())),
            tool_calls: vec![ToolCall::function("c1", "f", "{\"a\":1}"), ToolCall::function("c2", "g", "{}")],
            finish: Finish::ToolCalls,
            usage: Some(usage(3, 4)),
        }
    );
}

#[test]
fn an_answer_replays_as_events_in_stream_order() {
    let c = Completion {
        text: "4".into(),
        reasoning: Some((ReasoningField::ReasoningContent, "2+2".into())),
        tool_calls: vec![ToolCall::function("c1", "f", "{}"), ToolCall::function("c2", "g", "{\"x\":1}")],
        finish: Finish::Length,
        usage: None,
    };
    let evs = c.events();
    assert_eq!(
        evs,
        [
            Event::Reasoning(ReasoningField::ReasoningContent, "2+2".into()),
            Event::Text("4".into()),
            Event::ToolCall { index: 0, id: Some("c1".into()), name: Some("f".into()), arguments: "{}".into() },
            Event::ToolCall { index: 1, id: Some("c2".into()), name: Some("g".into()), arguments: "{\"x\":1}".into() },
            Event::Finish(Finish::Length),
        ]
    );
    // Collected again, the same answer.
    let mut back = Completion::default();
    for e in evs {
        back.collect(e);
    }
    assert_eq!(back, c);
    // A plain text answer: its text and a stop; empty text is no event.
    assert_eq!(Completion::text("hi").events(), [Event::Text("hi".into()), Event::Finish(Finish::Stop)]);
    assert_eq!(Completion::default().events(), [Event::Finish(Finish::Stop)]);
}

#[test]
fn stream_errors_become_client_messages() {
    assert_eq!(StreamError::Truncated.message("summary model", None), "The summary model's stream ended before the answer was complete.");
    assert_eq!(StreamError::Malformed("an event that is not JSON").message("summary model", None), "The summary model's stream was malformed: an event that is not JSON.");
    // The upstream's own text is never used: only the scrubbed reason given.
    let e = StreamError::Upstream("{\"error\":\"sk-secret\"}".into());
    assert_eq!(e.message("summary model", Some("overloaded")), "The summary model reported an error mid-stream: overloaded");
    assert!(!e.message("summary model", None).contains("sk-secret"));
}
