use super::*;

fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for c in chunks {
        p.push(c, &mut out).unwrap();
    }
    p.finish(&mut out);
    out
}

fn datas(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn several_events_in_one_read() {
    let e = parse_all(&[b"data: a\n\ndata: b\n\ndata: [DONE]\n\n"]);
    assert_eq!(datas(&e), ["a", "b", "[DONE]"]);
}

#[test]
fn crlf_and_cr_framing() {
    assert_eq!(datas(&parse_all(&[b"data: a\r\n\r\ndata: b\r\n\r\n"])), ["a", "b"]);
    assert_eq!(datas(&parse_all(&[b"data: a\r\rdata: b\r\r"])), ["a", "b"]);
    // CR at the end of a read, LF at the start of the next: one line break.
    assert_eq!(datas(&parse_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])), ["a", "b"]);
}

#[test]
fn events_split_at_every_byte() {
    let src = "data: {\"x\":\"héllo 世界 🎉\"}\r\n\r\n: ping\r\n\r\ndata: two\n\n".as_bytes();
    for cut in 0..src.len() {
        let e = parse_all(&[&src[..cut], &src[cut..]]);
        assert_eq!(datas(&e), ["{\"x\":\"héllo 世界 🎉\"}", "two"], "cut at {cut}");
    }
    let singles: Vec<&[u8]> = src.chunks(1).collect();
    assert_eq!(datas(&parse_all(&singles)), ["{\"x\":\"héllo 世界 🎉\"}", "two"]);
}

#[test]
fn comments_fields_and_multiline_data() {
    let e = parse_all(&[b": hi\nevent: delta\nid: 4\nretry: 10\ndata: a\ndata:b\n\n"]);
    assert_eq!(e, vec![Event { event: Some("delta".into()), data: "a\nb".into() }]);
    // A blank line with no data dispatches nothing.
    assert!(parse_all(&[b"\n\n: x\n\n"]).is_empty());
}

#[test]
fn unterminated_last_event_is_kept() {
    assert_eq!(datas(&parse_all(&[b"data: a\n\ndata: tail"])), ["a", "tail"]);
}

#[test]
fn overlong_line_is_an_error() {
    let mut p = Parser::new();
    let big = vec![b'a'; MAX_LINE + 1];
    assert_eq!(p.push(&big, &mut Vec::new()), Err(SseError::LineTooLong));
}

#[test]
fn a_line_that_is_not_utf8_is_an_error() {
    let mut p = Parser::new();
    let mut out = Vec::new();
    // Split mid-sequence, the line is still whole UTF-8: no error.
    p.push("data: é".as_bytes().split_at(7).0, &mut out).unwrap();
    p.push(&"data: é\n\n".as_bytes()[7..], &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert!(!p.invalid_utf8());
    assert_eq!(p.push(b"data: \xff\xfe\n\n", &mut out), Err(SseError::InvalidUtf8));
    assert!(p.invalid_utf8());
    assert_eq!(out.len(), 1, "nothing of the broken line is dispatched");
}

#[test]
fn encoder_round_trips() {
    let mut out = Vec::new();
    encode_data(&mut out, "{\"a\":1}");
    out.extend_from_slice(DONE);
    assert_eq!(datas(&parse_all(&[&out])), ["{\"a\":1}", "[DONE]"]);
}

#[test]
fn an_empty_read_between_cr_and_lf_is_one_line_break() {
    // Found by tests/properties.rs (decoding_does_not_depend_on_read_boundaries):
    // the empty read used to forget the pending CR, so the LF made a blank line
    // and dispatched the event early.
    let mut p = Parser::new();
    let mut out = Vec::new();
    for read in [&b"data: a\r"[..], b"", b"\n"] {
        p.push(read, &mut out).unwrap();
    }
    assert!(out.is_empty(), "no blank line yet: {out:?}");
    p.push(b"\r\n", &mut out).unwrap();
    assert_eq!(datas(&out), ["a"]);
}
