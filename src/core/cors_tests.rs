use super::*;

#[test]
fn allow_list_star_and_own_origin() {
    let own = "https://n1.example.workers.dev";
    let none = CorsPolicy::parse(None);
    assert!(!none.allows("https://evil.test", own));
    assert!(none.allows("https://N1.example.workers.dev/", own));
    let list = CorsPolicy::parse(Some("https://app.test, http://localhost:3000/"));
    assert!(list.allows("https://app.test", own));
    assert!(list.allows("http://localhost:3000", own));
    assert!(!list.allows("https://app.test.evil", own));
    assert!(!list.allows("null", own));
    assert!(CorsPolicy::parse(Some("*")).allows("https://anything.test", own));
}

#[test]
fn preflight_echoes_requested_headers() {
    let h = CorsPolicy::preflight_headers("https://app.test", Some("authorization, x-stainless-os"));
    assert!(h.contains(&("access-control-allow-headers", "authorization, x-stainless-os".to_owned())));
    let d = CorsPolicy::preflight_headers("https://app.test", None);
    assert!(d.iter().any(|(k, v)| *k == "access-control-allow-headers" && v.contains("authorization")));
}
