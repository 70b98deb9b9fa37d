//! The one set of rules every `-f FILE` is read by (explain, rollout-preview, adopt, migrate,
//! and the backup file): the text is YAML or JSON (`kubectl get -o yaml|json`), one or several
//! documents (`---`, or concatenated JSON values), and a document that is a List (`kind: List`,
//! `DaemonSetList`, anything with an `items` array) stands for its items, recursively. Empty
//! documents (a comment, a trailing `---`) are skipped; any other document or item that is not
//! an object is refused. What each command then takes from the objects is its own rule.
//! Mirrors kubectl's resource builder (k8s.io/cli-runtime pkg/resource `FileVisitor` ->
//! `StreamVisitor`, which splits the stream with yaml.NewYAMLOrJSONDecoder and expands Lists
//! with `meta.ExtractList`). Pure: the reading of the file or stdin is `crate::filename`.

use serde_json::Value;

/// The objects of `text`, Lists expanded, in file order. `expected` completes the refusal of a
/// document that is not an object ("expected a DaemonSet object").
pub fn parse_objects(text: &str, expected: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> =
        crate::yaml::from_str_multi(text).map_err(|e| format!("not valid YAML or JSON: {e}"))?;
    let mut objects = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        expand(doc, expected, &mut objects)?;
    }
    Ok(objects)
}

/// The kind of an object ("" when it has none).
pub fn kind_of(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// Is this object a List of objects (mirrors meta.IsListType: an `items` array)?
fn is_list(object: &serde_json::Map<String, Value>) -> bool {
    object.get("items").is_some_and(Value::is_array)
}

fn expand(doc: Value, expected: &str, out: &mut Vec<Value>) -> Result<(), String> {
    match doc {
        Value::Object(mut m) if is_list(&m) => {
            if let Some(Value::Array(items)) = m.remove("items") {
                for item in items {
                    expand(item, expected, out)?;
                }
            }
            Ok(())
        }
        Value::Object(_) => {
            out.push(doc);
            Ok(())
        }
        other => Err(format!("found {}; expected {expected}", shape(&other))),
    }
}

fn shape(v: &Value) -> &'static str {
    match v {
        Value::Null => "an empty item",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list without kind",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DS: &str = "DaemonSet";

    fn kinds(text: &str) -> Vec<String> {
        parse_objects(text, "an object")
            .unwrap()
            .iter()
            .map(|o| kind_of(o).to_string())
            .collect()
    }

    #[test]
    fn yaml_and_json_give_the_same_objects() {
        let yaml = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\n";
        let json = r#"{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "a"}}"#;
        assert_eq!(
            parse_objects(yaml, "x").unwrap(),
            parse_objects(json, "x").unwrap()
        );
        assert_eq!(kinds(json), [DS]);
    }

    #[test]
    fn several_documents_keep_their_order_and_empty_ones_are_skipped() {
        let text = "# leading comment\n---\nkind: ConfigMap\n---\n---\nkind: DaemonSet\n---\n";
        assert_eq!(kinds(text), ["ConfigMap", DS]);
        let json = r#"{"kind": "Node"} {"kind": "Pod"}"#;
        assert_eq!(kinds(json), ["Node", "Pod"]);
    }

    #[test]
    fn lists_stand_for_their_items_recursively() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- kind: Node\n- kind: List\n  items:\n  - kind: Pod\n---\nkind: DaemonSetList\nitems: [{kind: DaemonSet}]\n";
        assert_eq!(kinds(text), ["Node", "Pod", DS]);
        let json = r#"{"kind": "List", "items": [{"kind": "DaemonSet"}, {"kind": "Event"}]}"#;
        assert_eq!(kinds(json), [DS, "Event"]);
        assert!(kinds("kind: List\nitems: []\n").is_empty());
    }

    #[test]
    fn nothing_at_all_is_no_objects_not_an_error() {
        assert!(kinds("").is_empty());
        assert!(kinds("# only a comment\n").is_empty());
        assert!(kinds("---\n---\n").is_empty());
    }

    #[test]
    fn a_document_or_item_that_is_not_an_object_is_refused() {
        let e = parse_objects("- 1\n- 2\n", "a DaemonSet object").unwrap_err();
        assert_eq!(e, "found a list without kind; expected a DaemonSet object");
        let e = parse_objects("just a string\n", "a DaemonSet object").unwrap_err();
        assert_eq!(e, "found a string; expected a DaemonSet object");
        let e = parse_objects("kind: List\nitems: [1]\n", "objects").unwrap_err();
        assert_eq!(e, "found a number; expected objects");
        let e = parse_objects("kind: List\nitems: [~]\n", "objects").unwrap_err();
        assert_eq!(e, "found an empty item; expected objects");
    }

    #[test]
    fn syntax_errors_name_the_line_in_yaml_and_json() {
        let e = parse_objects("a: [b\n c: d", "x").unwrap_err();
        assert!(e.starts_with("not valid YAML or JSON: line "), "{e}");
        let e = parse_objects(r#"{"a": ,}"#, "x").unwrap_err();
        assert!(
            e.starts_with("not valid YAML or JSON: line 1 column 7"),
            "{e}"
        );
    }

    #[test]
    fn an_object_with_items_that_are_not_an_array_is_an_object() {
        // Only an `items` array makes a List (meta.IsListType reads the items field).
        assert_eq!(kinds("kind: ConfigMap\nitems: {a: b}\n"), ["ConfigMap"]);
    }
}
