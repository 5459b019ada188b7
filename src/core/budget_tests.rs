use super::*;
use crate::core::config::{parse_config, ConfigOptions, Ensemble};
use crate::core::dialects::chat;
use serde_json::json;

/// 2026-12-01T10:00:00Z
const NOW: f64 = 1_796_119_200_000.0;
const HOUR: f64 = 3_600_000.0;

fn spend(usd: f64, input: u64, output: u64) -> Spend {
    Spend { usd, input_tokens: input, output_tokens: output }
}

#[test]
fn the_calendar_is_utc_days_and_months() {
    assert_eq!(iso(NOW), "2026-12-01T10:00:00Z");
    assert_eq!(iso(0.0), "1970-01-01T00:00:00Z");
    assert_eq!(iso(day_start(NOW)), "2026-12-01T00:00:00Z");
    assert_eq!(iso(next_day(NOW)), "2026-12-02T00:00:00Z");
    assert_eq!(iso(month_start(NOW + 10.0 * 24.0 * HOUR)), "2026-12-01T00:00:00Z");
    assert_eq!(iso(next_month(NOW)), "2027-01-01T00:00:00Z");
    // Leap years, month ends, a second before midnight.
    let feb29 = days_from_civil(2028, 2, 29) as f64 * DAY_MS + 86_399_000.0;
    assert_eq!(iso(feb29), "2028-02-29T23:59:59Z");
    assert_eq!(iso(next_day(feb29)), "2028-03-01T00:00:00Z");
    assert_eq!(iso(next_month(feb29)), "2028-03-01T00:00:00Z");
    for d in (-800_000..800_000).step_by(997) {
        let (y, m, day) = civil(d);
        assert_eq!(days_from_civil(y, m, day), d);
    }
}

#[test]
fn usd_text_is_short() {
    assert_eq!(usd_text(5.0, 6), "5");
    assert_eq!(usd_text(0.0123, 6), "0.0123");
    assert_eq!(usd_text(4.5e-6, 6), "0.000005");
    assert_eq!(usd_text(4.5e-6, 12), "0.0000045");
    assert_eq!(usd_text(0.0, 6), "0");
}

const LIMIT: Limits = Limits { usd_per_day: Some(1.0), usd_per_month: Some(3.0), tokens_per_day: None };

#[test]
fn reservations_count_against_the_limit_until_settled() {
    let mut l = Ledger::default();
    let exp = NOW + HOUR;
    l.reserve(NOW, &LIMIT, 1.0, spend(0.4, 10, 10), exp).unwrap();
    l.reserve(NOW, &LIMIT, 2.0, spend(0.4, 10, 10), exp).unwrap();
    // 0.8 held: a third of 0.4 would pass 1.0.
    let e = l.reserve(NOW, &LIMIT, 3.0, spend(0.4, 10, 10), exp).unwrap_err();
    assert_eq!((LIMITS[e.which], e.limit, e.used, e.held, e.need), ("usd_per_day", 1.0, 0.0, 0.8, 0.4));
    assert_eq!(iso(e.resets_at), "2026-12-02T00:00:00Z");
    assert_eq!(
        e.message(),
        "This key's budget of 1 USD per day (`usd_per_day`) would be exceeded: 0 USD used, 0.8 USD reserved by requests in flight, and this request may need up to 0.4 USD. It resets at 2026-12-02T00:00:00Z."
    );
    // Settling at the real cost frees the difference.
    l.settle(NOW, 1.0, spend(0.05, 5, 5));
    l.settle(NOW, 2.0, spend(0.05, 5, 5));
    assert!(l.holds.is_empty());
    assert_eq!((l.day.spent.usd, l.day.requests, l.day.spent.input_tokens), (0.1, 2, 10));
    l.reserve(NOW, &LIMIT, 3.0, spend(0.4, 10, 10), exp).unwrap();
    // Exactly at the limit is allowed; past it is not.
    l.settle(NOW, 3.0, spend(0.9, 0, 0));
    assert_eq!(l.day.spent.usd, 1.0);
    assert!(l.reserve(NOW, &LIMIT, 4.0, spend(0.0, 0, 0), exp).is_ok());
    assert!(l.reserve(NOW, &LIMIT, 5.0, spend(1e-6, 0, 0), exp).is_err());
}

#[test]
fn the_day_and_the_month_roll_over() {
    let mut l = Ledger::default();
    l.settle(NOW, 0.0, spend(1.0, 100, 100));
    assert!(l.reserve(NOW, &LIMIT, 1.0, spend(0.1, 1, 1), NOW + HOUR).is_err());
    // The next day: allowed again; the month still counts.
    let tomorrow = next_day(NOW) + 1.0;
    l.reserve(tomorrow, &LIMIT, 1.0, spend(0.1, 1, 1), tomorrow + HOUR).unwrap();
    assert_eq!((l.day.spent.usd, l.month.spent.usd), (0.0, 1.0));
    l.settle(tomorrow, 1.0, spend(1.0, 1, 1));
    l.settle(next_day(tomorrow), 0.0, spend(0.3, 1, 1));
    // Day 3: 0.3 spent today (the day allows 0.3 more), 2.3 this month.
    let month = Limits { usd_per_month: Some(2.5), ..LIMIT };
    let e = l.reserve(next_day(tomorrow), &month, 2.0, spend(0.3, 1, 1), 0.0).unwrap_err();
    assert_eq!((LIMITS[e.which], iso(e.resets_at).as_str()), ("usd_per_month", "2027-01-01T00:00:00Z"));
    assert!(e.message().contains("2.5 USD per month (`usd_per_month`)"), "{}", e.message());
    let january = next_month(NOW);
    l.reserve(january, &month, 2.0, spend(0.1, 1, 1), january + HOUR).unwrap();
    assert_eq!((l.day.requests, l.month.requests), (0, 0));
    // A clock a little behind another one's does not move the windows back.
    l.settle(january - 1000.0, 2.0, spend(0.1, 1, 1));
    assert_eq!((l.day.requests, l.month.requests, iso(l.day.start).as_str()), (1, 1, "2027-01-01T00:00:00Z"));
}

#[test]
fn tokens_per_day_counts_input_and_output() {
    let limits = Limits { tokens_per_day: Some(100), ..Limits::default() };
    let mut l = Ledger::default();
    l.settle(NOW, 0.0, spend(0.0, 60, 30));
    assert!(l.reserve(NOW, &limits, 1.0, spend(0.0, 5, 5), NOW + HOUR).is_ok());
    let e = l.reserve(NOW, &limits, 2.0, spend(0.0, 1, 0), NOW + HOUR).unwrap_err();
    assert_eq!(LIMITS[e.which], "tokens_per_day");
    assert_eq!(
        e.message(),
        "This key's budget of 100 tokens per day (`tokens_per_day`) would be exceeded: 90 tokens used, 10 tokens reserved by requests in flight, and this request may need up to 1 tokens. It resets at 2026-12-02T00:00:00Z."
    );
}

#[test]
fn a_hold_never_settled_expires_and_is_charged_as_reserved_once() {
    let mut l = Ledger::default();
    l.reserve(NOW, &LIMIT, 7.0, spend(0.3, 30, 40), NOW + 1000.0).unwrap();
    l.settle(NOW + 2000.0, 8.0, spend(0.1, 1, 1));
    assert!(l.holds.is_empty());
    assert_eq!((l.day.spent.usd, l.day.requests, l.day.spent.output_tokens), (0.4, 2, 41));
    // Its late settlement is ignored: it was charged.
    l.settle(NOW + 3000.0, 7.0, spend(0.01, 1, 1));
    assert_eq!((l.day.spent.usd, l.day.requests), (0.4, 2));
    for i in 0..100 {
        l.reserve(NOW, &Limits::default(), 100.0 + i as f64, Spend::default(), 0.0).unwrap();
    }
    l.settle(NOW, 0.0, Spend::default());
    assert_eq!(l.expired.len(), EXPIRED_KEPT);
}

#[test]
fn the_protocol_round_trips_through_json_and_storage() {
    let mut l = Ledger::default();
    assert_eq!(apply(&mut l, &reserve_op(NOW, &LIMIT, 11.0, &spend(0.7, 1, 2), NOW + HOUR)), "[0.0]");
    let refused = numbers(&apply(&mut l, &reserve_op(NOW, &LIMIT, 12.0, &spend(0.7, 1, 2), NOW + HOUR)));
    let r = refusal(&refused).unwrap();
    assert_eq!((LIMITS[r.which], r.limit, r.held, r.need, iso(r.resets_at).as_str()), ("usd_per_day", 1.0, 0.7, 0.7, "2026-12-02T00:00:00Z"));
    assert_eq!(refusal(&[0.0]), None);
    // Stored and read back (the Durable Object keeps the ledger as numbers).
    let stored = numbers_json(&l.to_numbers());
    let mut l = Ledger::from_numbers(&numbers(&stored));
    assert_eq!(l.holds, vec![Hold { id: 11.0, need: spend(0.7, 1, 2), expires: NOW + HOUR }]);
    apply(&mut l, &settle_op(NOW, 11.0, &spend(0.25, 10, 20)));
    let body: serde_json::Value = serde_json::from_str(&report(&numbers(&apply(&mut l, &usage_op(NOW))), &LIMIT, "alice")).unwrap();
    assert_eq!(
        body,
        json!({
            "key": "alice",
            "day": {"usd": 0.25, "input_tokens": 10, "output_tokens": 20, "requests": 1, "limit_usd": 1.0, "limit_tokens": null, "resets_at": "2026-12-02T00:00:00Z"},
            "month": {"usd": 0.25, "input_tokens": 10, "output_tokens": 20, "requests": 1, "limit_usd": 3.0, "resets_at": "2027-01-01T00:00:00Z"}
        })
    );
    // A fresh key: nothing spent, windows of now.
    let fresh: serde_json::Value = serde_json::from_str(&report(&numbers(&apply(&mut Ledger::default(), &usage_op(NOW))), &Limits::default(), "bob")).unwrap();
    assert_eq!(fresh["day"]["requests"], json!(0));
    assert_eq!(fresh["day"]["resets_at"], json!("2026-12-02T00:00:00Z"));
    assert!(fresh["month"]["limit_usd"].is_null() && fresh["month"].get("limit_tokens").is_none());
    assert_eq!(Ledger::from_numbers(&numbers("not json")), Ledger::default());
    assert_eq!(Ledger::from_numbers(&l.to_numbers()), l);
}

#[test]
fn limits_parse_strictly() {
    assert_eq!(Limits::from_json(&json!({"usd_per_day": 5})).unwrap(), Limits { usd_per_day: Some(5.0), ..Limits::default() });
    assert!(Limits::from_json(&json!({"usd_per_day": 5, "tokens_per_day": 10, "usd_per_month": 0})).unwrap().has_usd());
    assert!(!Limits::from_json(&json!({"tokens_per_day": 10})).unwrap().has_usd());
    for bad in [json!([]), json!({"usd": 1}), json!({"usd_per_day": "5"}), json!({"tokens_per_day": -5})] {
        assert!(Limits::from_json(&bad).is_err());
    }
}

fn ensemble(v: serde_json::Value) -> Ensemble {
    parse_config(&json!({"ensembles": {"e": v}}).to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0)
}

fn m(name: &str, price: f64, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"endpoint": "https://x.test/v1", "model": name, "price": {"input": price, "output": price * 2.0}});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

#[test]
fn the_estimate_covers_every_call_at_its_output_cap() {
    let e = ensemble(json!({"panel": [m("a", 1.0, json!({})), m("b", 2.0, json!({"max_tokens": 50}))], "summary": m("s", 3.0, json!({})), "reserve_output_tokens": 100}));
    let lineup = e.lineup(false, crate::core::config::Route::Ensemble).unwrap();
    let body = json!({"messages": [{"role": "user", "content": "x".repeat(400)}]}).to_string();
    let req = chat::decode(body.as_bytes()).unwrap();
    let s = estimate(&lineup, &req, body.len(), true).unwrap();
    let input = (body.len() as u64).div_ceil(4);
    let answers = 100 + 50;
    let summary_in = input + answers + SYNTHESIS_TOKENS;
    assert_eq!(s.input_tokens, 2 * input + summary_in);
    assert_eq!(s.output_tokens, 100 + 50 + 100);
    let usd = (input as f64 * 1.0 + 100.0 * 2.0 + input as f64 * 2.0 + 50.0 * 4.0 + summary_in as f64 * 3.0 + 100.0 * 6.0) / 1e6;
    assert!((s.usd - usd).abs() < 1e-12, "{} vs {usd}", s.usd);
    // The client's cap wins over the model's and the ensemble's.
    let capped = chat::decode(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 7}).to_string().as_bytes()).unwrap();
    assert_eq!(estimate(&lineup, &capped, 60, true).unwrap().output_tokens, 21);
    // An image counts as 8,000 characters, whatever its size; the text of a
    // stored conversation (not in the body) counts too.
    let data = format!("data:image/png;base64,{}", "A".repeat(100_000));
    let body = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data}}]}]}).to_string();
    let image = chat::decode(body.as_bytes()).unwrap();
    assert_eq!(estimate(&lineup, &image, body.len(), true).unwrap().input_tokens, 3 * ((body.len() - data.len() + 8_000) as u64).div_ceil(4) + answers + SYNTHESIS_TOKENS);
    assert_eq!(estimate(&lineup, &req, 10, true).unwrap().input_tokens, 3 * 100 + answers + SYNTHESIS_TOKENS, "at least the text of the messages");
}

#[test]
fn the_estimate_counts_layers_the_costliest_fallback_and_needs_prices_only_for_usd() {
    let e = ensemble(json!({"panel": [m("a", 1.0, json!({}))], "summary": [m("cheap", 0.1, json!({})), m("dear", 10.0, json!({}))], "layers": 2}));
    let req = chat::decode(br#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}"#).unwrap();
    let s = estimate(&e.lineup(false, crate::core::config::Route::Ensemble).unwrap(), &req, 20, true).unwrap();
    assert_eq!(s.output_tokens, 30, "two layers of one member and the summary");
    let input = 5;
    let dear = ((input + 10 + SYNTHESIS_TOKENS) as f64 * 10.0 + 10.0 * 20.0) / 1e6;
    assert!(s.usd > dear, "the dearer fallback is reserved");
    let free = ensemble(json!({"panel": [], "summary": {"endpoint": "https://x.test/v1", "model": "free"}}));
    assert_eq!(estimate(&free.lineup(false, crate::core::config::Route::Ensemble).unwrap(), &req, 20, true), Err("free".to_owned()));
    assert_eq!(estimate(&free.lineup(false, crate::core::config::Route::Ensemble).unwrap(), &req, 20, false).unwrap().tokens(), input + 10);
}
