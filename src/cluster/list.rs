//! Reading list responses object by object: each object loses its `metadata.managedFields` as
//! soon as it is parsed, so a list never holds them all at once.
//!
//! Nothing in kubectl-ds reads managedFields, and they are about half of a node's JSON and more
//! than half of its parsed size (every field path becomes a map entry): for 5,000 nodes and
//! 5,000 pods they were most of explain's peak memory.

use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One list response (`{"kind": "...List", "metadata": {...}, "items": [...]}`).
#[derive(Debug)]
pub struct ListPage<K> {
    pub metadata: ListMeta,
    pub items: Vec<K>,
}

impl<'de, K: DeserializeOwned + Resource> Deserialize<'de> for ListPage<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PageVisitor(PhantomData))
    }
}

struct PageVisitor<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned + Resource> Visitor<'de> for PageVisitor<K> {
    type Value = ListPage<K>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut page = ListPage {
            metadata: ListMeta::default(),
            items: Vec::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => page.metadata = map.next_value()?,
                "items" => {
                    page.items = map
                        .next_value::<Option<Items<K>>>()?
                        .map(|i| i.0)
                        .unwrap_or_default()
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

struct Items<K>(Vec<K>);

impl<'de, K: DeserializeOwned + Resource> Deserialize<'de> for Items<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(ItemsVisitor(PhantomData))
    }
}

struct ItemsVisitor<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned + Resource> Visitor<'de> for ItemsVisitor<K> {
    type Value = Items<K>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(mut item) = seq.next_element::<K>()? {
            item.meta_mut().managed_fields = None;
            items.push(item);
        }
        Ok(Items(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn drops_managed_fields_and_keeps_the_rest() {
        let text = r#"{
          "kind": "NodeList", "apiVersion": "v1",
          "metadata": {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3},
          "items": [
            {"metadata": {"name": "a", "labels": {"x": "y"},
              "managedFields": [{"manager": "kubectl", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]},
             "spec": {"unschedulable": true}},
            {"metadata": {"name": "b"}}
          ]
        }"#;
        let page: ListPage<Node> = serde_json::from_str(text).unwrap();
        assert_eq!(page.metadata.continue_.as_deref(), Some("abc"));
        assert_eq!(page.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(page.items.len(), 2);
        let a = &page.items[0];
        assert_eq!(a.metadata.name.as_deref(), Some("a"));
        assert!(a.metadata.managed_fields.is_none());
        assert_eq!(a.metadata.labels.as_ref().unwrap()["x"], "y");
        assert_eq!(a.spec.as_ref().unwrap().unschedulable, Some(true));
    }

    #[test]
    fn null_or_missing_items_are_empty() {
        let page: ListPage<Node> =
            serde_json::from_str(r#"{"metadata": {}, "items": null}"#).unwrap();
        assert!(page.items.is_empty());
        let page: ListPage<Node> = serde_json::from_str(r#"{"metadata": {}}"#).unwrap();
        assert!(page.items.is_empty());
    }

    #[test]
    fn a_malformed_item_is_an_error() {
        let r = serde_json::from_str::<ListPage<Node>>(r#"{"items": [{"metadata": 3}]}"#);
        assert!(r.is_err());
    }
}
