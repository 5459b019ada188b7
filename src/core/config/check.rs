//! Checks of a parsed configuration: policies in range, endpoints safe.

use super::*;

pub(super) fn validate(config: &Config, opts: ConfigOptions) -> Result<(), String> {
    if config.ensemble(None).is_none() {
        return Err(format!(
            "`default_ensemble` names an ensemble that `ensembles` does not define ({})",
            defined(config.ensembles.iter().map(|e| &e.name))
        ));
    }
    for e in &config.ensembles {
        if e.name.is_empty() {
            return Err("an ensemble has an empty name".into());
        }
        if e.summary.is_empty() {
            return Err(format!("ensemble `{}` has no summary model", e.name));
        }
        let p = &e.policy;
        let n = e.panel.len();
        if n > 0 && (p.min_panel == 0 || p.min_panel > n) {
            return Err(format!("ensemble `{}`: `min_panel` must be between 1 and the panel size ({n})", e.name));
        }
        if let Some(q) = p.quorum {
            if q < p.min_panel || q > n {
                return Err(format!("ensemble `{}`: `quorum` must be between `min_panel` ({}) and the panel size ({n})", e.name, p.min_panel));
            }
        }
        if p.request_timeout_ms == 0 || p.panel_timeout_ms == Some(0) || p.keep_alive_ms < 100 {
            return Err(format!("ensemble `{}`: timeouts must be positive and `keep_alive_ms` at least 100", e.name));
        }
        if p.max_answer_chars < 100 {
            return Err(format!("ensemble `{}`: `max_answer_chars` must be at least 100", e.name));
        }
        if let Some(st) = p.straggler {
            if !(st.factor >= 1.0 && st.factor.is_finite()) {
                return Err(format!("ensemble `{}`: `straggler.factor` must be at least 1", e.name));
            }
        }
        if !(1..=MAX_LAYERS).contains(&e.layers) {
            return Err(format!("ensemble `{}`: `layers` must be between 1 and {MAX_LAYERS}", e.name));
        }
        if e.layers > 1 && e.panel.is_empty() {
            return Err(format!("ensemble `{}`: `layers` needs a panel", e.name));
        }
        if let Some(v) = &e.vision {
            if v.summary.is_empty() {
                return Err(format!("ensemble `{}`: `vision` needs a summary model", e.name));
            }
        }
        let vision = e.vision.as_ref();
        let lists = [
            ("panel", Some(&e.panel)),
            ("summary", Some(&e.summary)),
            ("vision.panel", vision.map(|v| &v.panel)),
            ("vision.summary", vision.map(|v| &v.summary)),
            ("task_model", e.task_model.as_ref()),
        ];
        for (role, list) in lists {
            let Some(list) = list else { continue };
            for (i, m) in list.iter().enumerate() {
                let at = format!("ensembles.{}.{role}[{i}]", e.name);
                if m.provider != Provider::WorkersAi {
                    check_endpoint(&m.endpoint, opts).map_err(|e| format!("{at}: {e}"))?;
                }
                if m.model.is_empty() {
                    return Err(format!("{at}: `model` must not be empty"));
                }
                if let Some(t) = m.temperature {
                    if !(0.0..=2.0).contains(&t) {
                        return Err(format!("{at}: `temperature` must be between 0 and 2"));
                    }
                }
                if let ApiKey::Secret(s) = &m.api_key {
                    if s.is_empty() {
                        return Err(format!("{at}: `api_key_secret` must not be empty"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Endpoints come only from the operator's config (never from a request), and
/// must be https; plain http only to this machine, and only when allowed.
fn check_endpoint(url: &str, opts: ConfigOptions) -> Result<(), String> {
    let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return Err("`endpoint` must be an https:// URL".into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || url.chars().any(char::is_whitespace) || authority.contains('@') {
        return Err("`endpoint` is not a valid URL".into());
    }
    if secure {
        return Ok(());
    }
    let host = if authority.starts_with('[') {
        authority.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if !is_loopback(host) {
        return Err("`endpoint` must be https:// (plain http is only for loopback addresses in development)".into());
    }
    if !opts.allow_insecure_upstreams {
        return Err("`endpoint` uses plain http to a loopback address, which needs N1_ALLOW_INSECURE_UPSTREAMS=true (development and tests only)".into());
    }
    Ok(())
}

/// `localhost`, `::1` or an IPv4 address in 127.0.0.0/8, parsed (a name that
/// merely starts with `127.` is not one).
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "::1" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets.iter().all(|o| !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()) && o.parse::<u16>().is_ok_and(|n| n <= 255))
}

/// The names a reference could have used (a wrong reference itself is not
/// quoted: it could be a key pasted in the wrong place).
pub(super) fn defined<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "it defines none".into()
    } else {
        format!("defined: {}", names.join(", "))
    }
}
