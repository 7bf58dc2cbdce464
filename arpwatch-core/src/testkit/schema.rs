//! A small structural check of JSON against the project's JSON Schemas (`docs/schema/`), for the
//! tests that hold real output to them (events, raw observations, API responses): required keys,
//! no undeclared keys, maps (`additionalProperties`, `propertyNames`), JSON types, enums, consts,
//! `oneOf`/`anyOf`, `$ref` into `$defs`, and the string patterns the schemas use, checked by shape.
//! Not a general validator: a schema keyword it does not know is a test that has to teach it.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::observation::MacAddr;

/// Panics, saying where, when `value` does not fit `schema` (whose `$ref`s point into `defs`).
pub fn check_against(value: &Value, schema: &Value, defs: &Value) {
    let schema = resolve(schema, defs);
    if let Some(options) = schema.get("oneOf").or_else(|| schema.get("anyOf")) {
        let matches = options
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| std::panic::catch_unwind(|| check_against(value, s, defs)).is_ok())
            .count();
        assert!(matches >= 1, "{value} matches none of {schema}");
        return;
    }
    if let Some(c) = schema.get("const") {
        assert_eq!(value, c);
    }
    if let Some(options) = schema.get("enum") {
        assert!(options.as_array().unwrap().contains(value), "{value} not in {options}");
    }
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => panic!("type {other} not handled"),
        };
        assert!(ok, "{value} is not {ty}");
    }
    if let (Some(pattern), Some(s)) =
        (schema.get("pattern").and_then(Value::as_str), value.as_str())
    {
        assert!(matches_pattern(pattern, s), "{s} does not match {pattern}");
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for item in list {
            check_against(item, items, defs);
        }
    }
    let Some(obj) = value.as_object() else {
        return;
    };
    if let Some(values) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        // A map (MAC -> name): its keys and its values each have a schema.
        for (key, v) in obj {
            if let Some(names) = schema.get("propertyNames") {
                check_against(&Value::from(key.as_str()), names, defs);
            }
            check_against(v, values, defs);
        }
        return;
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for required in schema["required"].as_array().into_iter().flatten() {
        assert!(obj.contains_key(required.as_str().unwrap()), "{value} lacks {required}");
    }
    for (key, v) in obj {
        let prop = props.get(key).unwrap_or_else(|| panic!("field {key} is not in the schema"));
        check_against(v, prop, defs);
    }
}

fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.trim_start_matches("#/$defs/")],
        None => schema,
    }
}

/// The schemas' patterns are only the MAC, IPv4, IPv6 and RFC 3339 shapes; checked by shape.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    if pattern.contains("[0-9a-f]{2}") {
        s.parse::<MacAddr>().is_ok() && s == s.to_ascii_lowercase() && s.len() == 17
    } else if pattern.contains("25[0-5]") {
        s.parse::<Ipv4Addr>().is_ok()
    } else if pattern.contains("{0,4}") {
        s.parse::<Ipv6Addr>().is_ok_and(|ip| ip.to_string() == s)
    } else if pattern.contains('T') {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
            && s.ends_with('Z')
    } else {
        panic!("pattern {pattern} not handled")
    }
}
