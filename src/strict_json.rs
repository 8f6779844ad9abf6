//! Strict parsing of the JSON files people write (pipeline configs, check rules): every
//! rejection names the JSON path it is about (`encode.crf: invalid type: string "x", expected
//! f64`), nothing may follow the document, and an array is never read where an object belongs
//! (serde reads a struct from an array by position, so `{"normalize": ["1080p"]}` would silently
//! set the resolution and `[]` would be the default pipeline).
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Parses `text` as a `T`; the error names the JSON path (or says it is the whole document).
pub fn parse<T: DeserializeOwned + Serialize>(text: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| at(&e.path().to_string(), &e.inner().to_string()))?;
    de.end().map_err(|e| at(".", &e.to_string()))?;
    // Both parses succeed on the same text; the second only gives the shape as written.
    let written: Value = serde_json::from_str(text).map_err(|e| at(".", &e.to_string()))?;
    let read = serde_json::to_value(&parsed).map_err(|e| at(".", &e.to_string()))?;
    objects_stay_objects(&written, &read, "")?;
    Ok(parsed)
}

/// `path: message`, with the root called what it is.
fn at(path: &str, message: &str) -> String {
    if path.is_empty() || path == "." {
        format!("the document: {message}")
    } else {
        format!("{path}: {message}")
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Fails where the file has an array and the parsed value is an object (a struct read by
/// position). Walks only what both have: defaults and skipped fields are not the file's.
fn objects_stay_objects(written: &Value, read: &Value, path: &str) -> Result<(), String> {
    match (written, read) {
        (Value::Array(_), Value::Object(_)) => {
            Err(at(path, "expected an object with named keys, got an array"))
        }
        (Value::Object(w), Value::Object(r)) => {
            for (key, value) in w {
                if let Some(parsed) = r.get(key) {
                    objects_stay_objects(value, parsed, &child(path, key))?;
                }
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(r)) if w.len() == r.len() => {
            for (i, (value, parsed)) in w.iter().zip(r).enumerate() {
                objects_stay_objects(value, parsed, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        a: u32,
        #[serde(default)]
        b: String,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default)]
        inner: Inner,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[test]
    fn errors_name_the_path() {
        let e = parse::<Outer>(r#"{"inner": {"a": "x"}}"#).unwrap_err();
        assert!(e.starts_with("inner.a: invalid type"), "{e}");
        let e = parse::<Outer>(r#"{"list": [{}, {"c": 1}]}"#).unwrap_err();
        assert!(e.starts_with("list[1].c: unknown field `c`"), "{e}");
        let e = parse::<Outer>(r#"{} {}"#).unwrap_err();
        assert!(e.starts_with("the document: trailing characters"), "{e}");
    }

    #[test]
    fn arrays_are_not_read_as_objects() {
        let e = parse::<Outer>("[]").unwrap_err();
        assert!(e.starts_with("the document: expected an object"), "{e}");
        let e = parse::<Outer>(r#"{"inner": [3, "x"]}"#).unwrap_err();
        assert!(e.starts_with("inner: expected an object"), "{e}");
        let e = parse::<Outer>(r#"{"list": [{"a": 1}, [2]]}"#).unwrap_err();
        assert!(e.starts_with("list[1]: expected an object"), "{e}");
        assert_eq!(
            parse::<Outer>(r#"{"list": [{"a": 1}]}"#).unwrap().list,
            [Inner {
                a: 1,
                b: String::new()
            }]
        );
    }
}
