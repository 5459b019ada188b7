use super::*;
use crate::core::config::{parse_config, ConfigOptions};
use crate::core::ensemble::report::{MemberStatus, PanelEnd, SummaryReport, SummaryStatus};
use serde_json::json;

fn spec(v: serde_json::Value) -> ModelSpec {
    parse_config(&json!({"ensembles": {"e": {"summary": v}}}).to_string(), ConfigOptions::default()).unwrap().ensembles.remove(0).summary.remove(0)
}

fn priced(name: &str, input: f64, output: f64) -> ModelSpec {
    spec(json!({"endpoint": "https://x.test/v1", "model": name, "price": {"input": input, "output": output}}))
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn a_price_is_usd_per_million_tokens_with_cached_input_at_its_own_price() {
    let p = Price { input: 0.15, output: 0.60, cached_input: Some(0.075), cache_write_input: None };
    assert!(close_enough(p.of(&Usage::new(1_000_000, 0)), 0.15));
    assert!(close_enough(p.of(&Usage::new(10, 5)), 10.0 * 0.15e-6 + 5.0 * 0.60e-6));
    let cached = Usage { cached_tokens: 400, ..Usage::new(1000, 100) };
    assert!(close_enough(p.of(&cached), (600.0 * 0.15 + 400.0 * 0.075 + 100.0 * 0.60) / 1e6));
    // Without a cached price, cached tokens cost the input price.
    let plain = Price { cached_input: None, ..p };
    assert!(close_enough(plain.of(&cached), plain.of(&Usage::new(1000, 100))));
    // Sums print as computed by hand.
    assert_eq!(serde_json::to_string(&p.of(&Usage::new(10, 5))).unwrap(), "4.5e-6");
}

#[test]
fn prices_come_from_the_config_and_workers_ai_models_have_theirs() {
    let m = spec(json!({"endpoint": "https://x.test/v1", "model": "m", "price": {"input": 0.15, "output": 0.6, "cached_input": 0.075}}));
    assert_eq!(m.price, Some(Price { input: 0.15, output: 0.6, cached_input: Some(0.075), cache_write_input: None }));
    assert_eq!(spec(json!({"endpoint": "https://x.test/v1", "model": "m"})).price, None);
    let gemma = spec(json!({"provider": "workers-ai", "model": "@cf/google/gemma-4-26b-a4b-it"}));
    assert_eq!(gemma.price, Some(Price { input: 0.10, output: 0.30, cached_input: None, cache_write_input: None }));
    // An explicit price wins; an unknown Workers AI model has none.
    let own = spec(json!({"provider": "workers-ai", "model": "@cf/google/gemma-4-26b-a4b-it", "price": {"input": 1, "output": 2}}));
    assert_eq!(own.price.unwrap().input, 1.0);
    assert_eq!(spec(json!({"provider": "workers-ai", "model": "@cf/x/unknown"})).price, None);
    for bad in [json!({"input": 1}), json!({"input": -1, "output": 1}), json!({"input": "1", "output": 1}), json!({"input": 1, "output": 1, "x": 1}), json!(3)] {
        let cfg = json!({"ensembles": {"e": {"summary": {"endpoint": "https://x.test/v1", "model": "m", "price": bad}}}});
        let e = parse_config(&cfg.to_string(), ConfigOptions::default()).unwrap_err();
        assert!(e.contains("price"), "{e}");
    }
}

#[test]
fn cache_writes_cost_their_own_price_and_one_hour_writes_1_6_times_that() {
    let p = Price { input: 3.0, output: 15.0, cached_input: Some(0.3), cache_write_input: Some(3.75) };
    // 1000 prompt tokens: 200 read, 500 written (100 of them for an hour), 300 plain.
    let u = Usage { cached_tokens: 200, cache_write_tokens: 500, cache_write_1h_tokens: 100, ..Usage::new(1000, 10) };
    let expect = (300.0 * 3.0 + 200.0 * 0.3 + 400.0 * 3.75 + 100.0 * 6.0 + 10.0 * 15.0) / 1e6;
    assert!(close_enough(p.of(&u), expect), "{} vs {expect}", p.of(&u));
    // Without a write price, writes cost the input price (five-minute ones).
    let plain = Price { cache_write_input: None, ..p };
    let five_min = Usage { cache_write_1h_tokens: 0, ..u };
    assert!(close_enough(plain.of(&five_min), (800.0 * 3.0 + 200.0 * 0.3 + 10.0 * 15.0) / 1e6));
    // Counts that do not add up (more cached than prompt) never go negative.
    let odd = Usage { cached_tokens: 900, cache_write_tokens: 900, cache_write_1h_tokens: 2000, ..Usage::new(1000, 0) };
    assert!(close_enough(p.of(&odd), (900.0 * 0.3 + 100.0 * 6.0) / 1e6));
}

#[test]
fn anthropic_models_cache_reads_and_writes_default_to_its_multipliers_and_the_config_may_set_them() {
    let claude = |price: serde_json::Value| spec(json!({"provider": "anthropic", "model": "claude-x", "api_key_secret": "K", "price": price})).price.unwrap();
    let p = claude(json!({"input": 3, "output": 15}));
    assert_eq!((p.cached_input.map(|r| (r * 1e6).round() / 1e6), p.cache_write_input), (Some(0.3), Some(3.75)));
    let p = claude(json!({"input": 3, "output": 15, "cached_input": 1, "cache_write_input": 4}));
    assert_eq!((p.cached_input, p.cache_write_input), (Some(1.0), Some(4.0)));
    // Other providers' cache prices differ by model: the input price unless the config gives one.
    let m = spec(json!({"endpoint": "https://x.test/v1", "model": "m", "price": {"input": 1, "output": 2}}));
    assert_eq!((m.price.unwrap().cached_input, m.price.unwrap().cache_write_input), (None, None));
    let m = spec(json!({"endpoint": "https://x.test/v1", "model": "m", "price": {"input": 1, "output": 2, "cache_write_input": 1.5}}));
    assert_eq!(m.price.unwrap().cache_write_input, Some(1.5));
    let cfg = json!({"ensembles": {"e": {"summary": {"endpoint": "https://x.test/v1", "model": "m", "price": {"input": 1, "output": 2, "cache_write_input": -1}}}}});
    assert!(parse_config(&cfg.to_string(), ConfigOptions::default()).unwrap_err().contains("cache_write_input"));
}

fn failure(status: Option<u16>, kind: FailureKind) -> Failure {
    Failure::new("m", status, kind, "x")
}

#[test]
fn the_meter_charges_what_was_reported_estimates_the_rest_and_refusals_cost_nothing() {
    let m = Meter::default();
    let a = priced("a", 1.0, 2.0);
    let body = "x".repeat(400); // 100 tokens when estimated
    let ok = m.open(false, 0, &a, &body, 0.0);
    m.close(ok, 10.0, 1, Ok(Some(Usage::new(10, 5))));
    let refused = m.open(false, 1, &a, &body, 0.0);
    m.close(refused, 5.0, 3, Err(&failure(Some(429), FailureKind::Error)));
    let timed_out = m.open(false, 2, &a, &body, 0.0);
    m.close(timed_out, 5.0, 1, Err(&failure(None, FailureKind::Timeout)));
    let unreadable = m.open(false, 3, &a, &body, 0.0);
    m.close(unreadable, 5.0, 1, Err(&failure(Some(200), FailureKind::Error)));
    let cut = m.open(true, 0, &a, &body, 0.0);
    m.output(cut, 40); // 10 tokens received before the stream broke; never closed
    let c = m.charges();
    assert_eq!(c[ok].usage(), (Usage::new(10, 5), false));
    assert_eq!(c[refused].usage(), (Usage::default(), false));
    assert_eq!((c[refused].status(), c[refused].http_status(), c[refused].attempts), ("refused", 429, 3));
    assert_eq!(c[timed_out].usage(), (Usage::new(100, 0), true));
    assert_eq!(c[timed_out].status(), "timeout");
    assert_eq!(c[unreadable].usage(), (Usage::new(100, 0), true));
    assert_eq!(c[cut].usage(), (Usage::new(100, 10), true));
    assert_eq!(c[cut].status(), "aborted");
    drop(c);
    let s = m.spend();
    assert_eq!((s.input_tokens, s.output_tokens), (10 + 300, 5 + 10));
    assert!(close_enough(s.usd, (310.0 * 1.0 + 15.0 * 2.0) / 1e6));
    assert!(m.priced());
}

fn report(model: &str) -> MemberReport {
    MemberReport { model: model.into(), status: MemberStatus::Ok, latency_ms: 1, ttft_ms: None, attempts: 1, usage: None, error: None, truncated: false, cost_usd: None, cost_estimated: false }
}

fn meta(panel: usize, layers: usize) -> N1Meta {
    let reports: Vec<MemberReport> = (0..panel).map(|i| report(&format!("p{i}"))).collect();
    N1Meta {
        ensemble: "e".into(),
        route: crate::core::config::Route::Ensemble,
        panel: reports.clone(),
        panel_ok: panel,
        panel_total: panel,
        panel_end: PanelEnd::All,
        summary: SummaryReport { model: "s".into(), status: SummaryStatus::Ok, latency_ms: 1, usage: None, failed: vec![], cost_usd: None, cost_estimated: false },
        degraded: false,
        layers: (layers > 1).then(|| vec![reports; layers]),
        ignored_tools: vec![],
        cost_usd: None,
        cost_estimated: false,
    }
}

#[test]
fn annotate_puts_each_calls_cost_on_its_report_and_the_total_on_n1() {
    let m = Meter::default();
    let (p, s, fallback) = (priced("p", 1.0, 1.0), priced("s", 2.0, 2.0), priced("f", 3.0, 3.0));
    for layer in 1..=2 {
        m.layer(layer);
        for i in 0..2 {
            let id = m.open(false, i, &p, "", 0.0);
            m.close(id, 1.0, 1, Ok(Some(Usage::new(layer as u64 * 100, i as u64 * 100))));
        }
    }
    let failed = m.open(true, 0, &fallback, &"x".repeat(4000), 0.0);
    m.close(failed, 1.0, 1, Err(&failure(None, FailureKind::Error)));
    let answered = m.open(true, 0, &s, "", 0.0);
    m.close(answered, 1.0, 1, Ok(Some(Usage::new(1000, 500))));
    let mut n1 = meta(2, 2);
    m.annotate(&mut n1);
    // Layer 2 is the panel shown; layer 1 is in `layers`.
    assert_eq!(n1.panel[0].cost_usd, Some(200.0 / 1e6));
    assert_eq!(n1.panel[1].cost_usd, Some(300.0 / 1e6));
    let layers = n1.layers.as_ref().unwrap();
    assert_eq!((layers[0][0].cost_usd, layers[0][1].cost_usd), (Some(100.0 / 1e6), Some(200.0 / 1e6)));
    // The summary phase: the failed fallback (1,000 tokens estimated at $3/M) and the answer.
    assert!(close_enough(n1.summary.cost_usd.unwrap(), 0.003 + 0.003));
    assert!(n1.summary.cost_estimated && n1.cost_estimated && !n1.panel[0].cost_estimated);
    assert!(close_enough(n1.cost_usd.unwrap(), (100.0 + 200.0 + 200.0 + 300.0) / 1e6 + 0.006));
    let v = serde_json::to_value(&n1).unwrap();
    assert!(v["panel"][0]["cost_estimated"].is_null(), "false is left out");
    assert_eq!(v["summary"]["cost_estimated"], json!(true));
}

#[test]
fn a_call_without_a_price_makes_its_cost_and_the_total_null() {
    let m = Meter::default();
    let unpriced = spec(json!({"endpoint": "https://x.test/v1", "model": "u"}));
    let id = m.open(false, 0, &unpriced, "", 0.0);
    m.close(id, 1.0, 1, Ok(Some(Usage::new(10, 5))));
    let id = m.open(true, 0, &priced("s", 1.0, 1.0), "", 0.0);
    m.close(id, 1.0, 1, Ok(Some(Usage::new(10, 5))));
    let mut n1 = meta(1, 1);
    m.annotate(&mut n1);
    assert_eq!(n1.panel[0].cost_usd, None);
    assert_eq!(n1.summary.cost_usd, Some(15.0 / 1e6));
    assert_eq!(n1.cost_usd, None);
    let v = serde_json::to_value(&n1).unwrap();
    assert!(v["cost_usd"].is_null() && v.as_object().unwrap().contains_key("cost_usd"), "null, not absent");
    assert!(v["panel"][0].as_object().unwrap().contains_key("cost_usd"));
    assert!(!m.priced());
    assert_eq!(m.spend().usd, 15.0 / 1e6, "unpriced calls add tokens, no USD");
}
