//! The built-in `workers-ai` ensemble (src/workers_ai.rs, `DEFAULT_MODELS`):
//! every model is one we checked in the Workers AI catalog
//! (tests/data/workers-ai-models.txt, with its date and sources), and the
//! configuration built from the table is valid and complete in every mode.

use n1::core::config::{parse_config, ConfigOptions, ModelSpec, Route};
use n1::core::providers::workers_ai::{CatalogModel, DEFAULT_CONFIG, DEFAULT_MODELS, PANEL, SUMMARY, VISION_PANEL, VISION_SUMMARY};

const CATALOG: &str = include_str!("data/workers-ai-models.txt");

/// A catalog line: id, plan, $/M in, $/M out, vision, tools ("-": not checked).
struct Listed<'a> {
    plan: &'a str,
    usd_in: &'a str,
    usd_out: &'a str,
    vision: &'a str,
    tools: &'a str,
}

fn listed(id: &str) -> Option<Listed<'_>> {
    CATALOG.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id) && f.len() >= 6).then(|| Listed { plan: f[1], usd_in: f[2], usd_out: f[3], vision: f[4], tools: f[5] })
    })
}

fn row(id: &str) -> &'static CatalogModel {
    DEFAULT_MODELS.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("{id} is not in DEFAULT_MODELS"))
}

#[test]
fn the_catalog_copy_says_when_and_where_it_was_checked() {
    let date = CATALOG.lines().find_map(|l| l.strip_prefix("# verified: ")).expect("a `# verified: YYYY-MM-DD` line");
    let d: Vec<&str> = date.trim().split('-').collect();
    assert!(d.len() == 3 && d[0].len() == 4 && d.iter().all(|p| p.parse::<u32>().is_ok()), "date: {date}");
    assert!(CATALOG.contains("https://developers.cloudflare.com/workers-ai/models/"));
    assert!(CATALOG.contains("https://developers.cloudflare.com/workers-ai/platform/pricing/"));
}

#[test]
fn every_default_model_is_in_the_checked_catalog_with_the_same_facts() {
    for m in DEFAULT_MODELS {
        let l = listed(m.id).unwrap_or_else(|| panic!("{} is not in tests/data/workers-ai-models.txt", m.id));
        assert_eq!(l.plan, if m.paid_plan { "paid" } else { "free" }, "{}: plan", m.id);
        assert_eq!(l.usd_in.parse::<f64>().ok(), Some(m.usd_per_m_in), "{}: $/M input", m.id);
        assert_eq!(l.usd_out.parse::<f64>().ok(), Some(m.usd_per_m_out), "{}: $/M output", m.id);
        assert_eq!(l.vision, if m.vision { "yes" } else { "no" }, "{}: vision", m.id);
        assert_eq!(l.tools, if m.tools { "yes" } else { "no" }, "{}: tools", m.id);
        assert!(m.roles != 0, "{} has no role", m.id);
        assert!(m.max_tokens >= 1024, "{}: reasoning models need room", m.id);
    }
}

#[test]
fn the_default_config_is_valid_in_every_mode() {
    // Strict options: what a deployed worker uses.
    let c = parse_config(&DEFAULT_CONFIG, ConfigOptions::default()).expect("the default config parses");
    let e = c.ensemble(None).expect("the default ensemble exists");
    assert_eq!(e.name, "workers-ai");
    let ids = |l: &[ModelSpec]| l.iter().map(|m| m.model.clone()).collect::<Vec<_>>();
    let rows = |role: u8| DEFAULT_MODELS.iter().filter(|m| m.roles & role != 0).map(|m| m.id.to_owned()).collect::<Vec<_>>();

    // Text: a panel and a summary with at least one fallback.
    let text = e.lineup(false, Route::Ensemble).unwrap();
    assert_eq!(ids(text.panel), rows(PANEL));
    assert_eq!(ids(text.summary), rows(SUMMARY));
    assert!(text.panel.len() >= 2 && text.summary.len() >= 2);

    // Vision: image requests go to vision models only.
    let vision = e.lineup(true, Route::Ensemble).expect("image requests are served");
    assert_eq!(ids(vision.panel), rows(VISION_PANEL));
    assert_eq!(ids(vision.summary), rows(VISION_SUMMARY));
    for m in vision.panel.iter().chain(vision.summary) {
        assert!(row(&m.model).vision, "{} answers images but has no vision", m.model);
    }

    // Tools go to the summary model (and its fallbacks), in both modes.
    for m in text.summary.iter().chain(vision.summary) {
        assert!(row(&m.model).tools, "{} synthesizes but has no function calling", m.model);
    }

    // Workers Free: the panels need no paid plan, and every summary list
    // reaches a model that needs none.
    for m in text.panel.iter().chain(vision.panel) {
        assert!(!row(&m.model).paid_plan, "{} is a panel member but needs Workers Paid", m.model);
    }
    for list in [text.summary, vision.summary] {
        assert!(list.iter().any(|m| !row(&m.model).paid_plan), "no summary model works on Workers Free: {:?}", ids(list));
    }

    // Every call is to Workers AI, with the table's settings.
    for m in text.panel.iter().chain(text.summary).chain(vision.panel).chain(vision.summary) {
        assert_eq!(m.provider, n1::core::config::Provider::WorkersAi);
        assert_eq!(m.max_tokens, Some(row(&m.model).max_tokens as u64));
    }
}

/// The README's cost per answer, recomputed from the table with the README's
/// assumptions, so a price or model change cannot leave it stale.
#[test]
fn the_readme_cost_estimate_matches_the_table() {
    let reasoning = |m: &CatalogModel| match m.effort {
        "low" => 300.0,
        "high" => 1000.0,
        _ => 600.0,
    };
    let cost = |m: &CatalogModel, input: f64, answer: f64| (input * m.usd_per_m_in + (answer + reasoning(m)) * m.usd_per_m_out) / 1e6;
    let panel: f64 = DEFAULT_MODELS.iter().filter(|m| m.roles & PANEL != 0).map(|m| cost(m, 300.0, 500.0)).sum();
    let summaries: Vec<&CatalogModel> = DEFAULT_MODELS.iter().filter(|m| m.roles & SUMMARY != 0).collect();
    let paid = panel + cost(summaries[0], 2000.0, 600.0);
    let free = panel + cost(summaries.iter().find(|m| !m.paid_plan).unwrap(), 2000.0, 600.0);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (what, usd) in [("panel", panel), ("Workers Paid", paid), ("Workers Free", free)] {
        // Half up (the sums land on ...5 exactly, which floats put either side).
        let figure = format!("${:.4}", ((usd * 1e4) + 1e-6).round() / 1e4);
        assert!(readme.contains(&figure), "README should give {figure} for {what}");
    }
}
