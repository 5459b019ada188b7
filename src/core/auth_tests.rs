use super::*;

fn keys() -> Vec<ClientKey> {
    parse_keys(r#"[{"key": "key-alice-123", "name": "alice", "ensembles": ["council"]}, "key-bob-4567"]"#).unwrap()
}

#[test]
fn parses_both_forms() {
    let k = keys();
    assert_eq!(k[0].name.as_deref(), Some("alice"));
    assert_eq!(k[1].key, "key-bob-4567");
    let plain = parse_keys("aaaaaaaa, bbbbbbbb\ncccccccc").unwrap();
    assert_eq!(plain.len(), 3);
    assert!(parse_keys("short").is_err());
    assert!(parse_keys("[{\"nokey\": 1}]").is_err());
    // The error never quotes the text (it holds keys).
    assert!(!parse_keys("[\"key-secret-xyz\", 5]").unwrap_err().contains("key-secret"));
}

#[test]
fn finds_the_presented_key() {
    assert_eq!(presented_key(Some("Bearer abc"), None), Some("abc"));
    assert_eq!(presented_key(Some("bearer  abc "), None), Some("abc"));
    assert_eq!(presented_key(None, Some("xyz")), Some("xyz"));
    assert_eq!(presented_key(Some("Basic abc"), Some("xyz")), Some("xyz"));
    assert_eq!(presented_key(Some("Bearer "), None), None);
}

#[test]
fn constant_time_equality() {
    assert!(ct_eq(b"same-key", b"same-key"));
    assert!(!ct_eq(b"same-key", b"same-kez"));
    assert!(!ct_eq(b"same-key", b"same-key-longer"));
    assert!(!ct_eq(b"", b"x"));
    assert!(ct_eq(b"", b""));
}

#[test]
fn authentication_outcomes() {
    let k = keys();
    let setup = AuthSetup { keys: &k, legacy_key: None, allow_anonymous: false };
    let alice = authenticate(&setup, Some("key-alice-123")).unwrap();
    assert_eq!(alice.label, "key:alice");
    assert!(alice.may_use("council") && !alice.may_use("other"));
    assert_eq!(alice.check("other").unwrap_err().status(), 403);
    let bob = authenticate(&setup, Some("key-bob-4567")).unwrap();
    assert_eq!(bob.label, "key:#2");
    assert!(bob.may_use("anything"));
    assert_eq!(authenticate(&setup, Some("wrong")).unwrap_err(), N1Error::InvalidKey);
    assert_eq!(authenticate(&setup, None).unwrap_err(), N1Error::MissingKey);
}

#[test]
fn no_keys_refuses_unless_anonymous_is_allowed() {
    let none = AuthSetup { keys: &[], legacy_key: None, allow_anonymous: false };
    assert_eq!(authenticate(&none, Some("x")).unwrap_err(), N1Error::AuthNotConfigured);
    let anon = AuthSetup { keys: &[], legacy_key: None, allow_anonymous: true };
    assert!(authenticate(&anon, None).unwrap().anonymous);
    // With keys and anonymous both on, a wrong key is still wrong.
    let k = keys();
    let both = AuthSetup { keys: &k, legacy_key: None, allow_anonymous: true };
    assert!(authenticate(&both, None).unwrap().anonymous);
    assert_eq!(authenticate(&both, Some("wrong")).unwrap_err(), N1Error::InvalidKey);
}

#[test]
fn legacy_token_is_a_key_for_its_ensemble() {
    let setup = AuthSetup { keys: &[], legacy_key: Some(("legacy-token", "n1")), allow_anonymous: false };
    let p = authenticate(&setup, Some("legacy-token")).unwrap();
    assert!(p.may_use("n1") && !p.may_use("other"));
    assert_eq!(authenticate(&setup, Some("nope")).unwrap_err(), N1Error::InvalidKey);
}

#[test]
fn a_key_may_carry_a_budget_which_its_principal_gets() {
    let k = parse_keys(r#"[{"key": "key-alice-123", "name": "alice", "budget": {"usd_per_day": 5, "tokens_per_day": 1000}}, "key-bob-4567"]"#).unwrap();
    let b = k[0].budget.unwrap();
    assert_eq!((b.usd_per_day, b.usd_per_month, b.tokens_per_day), (Some(5.0), None, Some(1000)));
    assert_eq!(k[1].budget, None);
    let setup = AuthSetup { keys: &k, legacy_key: None, allow_anonymous: true };
    let alice = authenticate(&setup, Some("key-alice-123")).unwrap();
    assert_eq!((alice.budget, alice.key_name()), (Some(b), Some("alice")));
    assert_eq!(authenticate(&setup, Some("key-bob-4567")).unwrap().key_name(), Some("#2"));
    assert_eq!(authenticate(&setup, None).unwrap().key_name(), None);
    // A malformed budget is an error that quotes nothing of the text.
    for bad in [r#"{"usd_per_day": -1}"#, r#"{"usd_per_dya": 1}"#, r#""5""#, r#"{"tokens_per_day": 1.5}"#] {
        let e = parse_keys(&format!(r#"[{{"key": "key-secret-xyz", "budget": {bad}}}]"#)).unwrap_err();
        assert!(!e.contains("key-secret") && e.contains("budget"), "{e}");
    }
}
