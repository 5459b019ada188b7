//! Small JSON helpers that keep the Wasm small: each way of writing JSON that
//! serde_json offers is its own copy of the serializer in the build, so N-1
//! writes values one way only.

use serde_json::{Map, Value};

/// A value as compact JSON text. (Not `Value`'s `Display`: that is a second
/// serializer, with a pretty-printing one beside it.)
pub fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A JSON object of these members. (`json!` with a value in it goes through
/// `to_value`, and `Map::from_iter` sorts: both cost Wasm bytes.)
pub fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    let mut map = Map::new();
    for (k, v) in members {
        map.insert(k.to_owned(), v);
    }
    Value::Object(map)
}
