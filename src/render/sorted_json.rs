//! Pretty JSON with every object's keys in sorted order, written straight from any
//! `Serialize` value: byte for byte what `serde_json::to_writer_pretty(serde_json::to_value(v))`
//! writes (serde_json's `Value` keeps an object's keys in a `BTreeMap`), without making the
//! `Value` tree. The overview's JSON (`explain -A -o json`) is a quarter of a gigabyte at 100
//! DaemonSets and 5,000 nodes; making a tree of it, a key `String` and a map node for every
//! field, cost more than writing it.
//!
//! How: each object's entries are written as they come, each on its line as `"key": value`;
//! an object whose keys came in order stays as written, any other is written again in key
//! order once it ends (one copy of its bytes; the hot structs declare their fields in key
//! order). serde_json's rules are kept: a later entry with a key already seen replaces the
//! earlier one; map keys may be strings, chars, integers, bools or unit variants (written as
//! strings); floats and 128-bit integers go through `serde_json::Value` as they do there
//! (none of kubectl-ds's outputs has one).

use std::borrow::Cow;

use serde::ser::{self, Serialize};

/// `value` as `serde_json::to_writer_pretty(&serde_json::to_value(value)?)` writes it,
/// appended to `out`, indented as if it stood at nesting `depth` (0 for a whole document).
pub fn write<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    depth: usize,
) -> Result<(), serde_json::Error> {
    let mut buf = Buf {
        bytes: std::mem::take(out),
        scratch: Vec::new(),
        spare: Vec::new(),
    };
    let written = value.serialize(Writer {
        out: &mut buf,
        depth,
    });
    *out = buf.bytes;
    written
}

type Error = serde_json::Error;

const INDENT: &[u8] = b"  ";

/// An object's entry: its key, where its `"key": value` starts and ends in the output.
type Entry = (Cow<'static, str>, usize, usize);

/// The output and what objects reuse from one to the next: the copy of an object's entries
/// while they are put in order (objects end one at a time, innermost first), and entry lists.
struct Buf {
    bytes: Vec<u8>,
    scratch: Vec<u8>,
    spare: Vec<Vec<Entry>>,
}

impl Buf {
    fn indent(&mut self, depth: usize) {
        indent(&mut self.bytes, depth);
    }
}

/// The indentation of a line at nesting `depth`, as serde_json's pretty printer writes it.
pub fn indent(out: &mut Vec<u8>, depth: usize) {
    for _ in 0..depth {
        out.extend_from_slice(INDENT);
    }
}

/// The serializer: writes one value at nesting `depth`.
struct Writer<'a> {
    out: &'a mut Buf,
    depth: usize,
}

impl Writer<'_> {
    fn scalar<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out.bytes, v)
    }

    /// Floats and 128-bit integers as serde_json's `Value` holds them (a non-finite float
    /// becomes null; a 128-bit integer out of 64-bit range is an error).
    fn via_value<T: Serialize>(&mut self, v: T) -> Result<(), Error> {
        let v = serde_json::to_value(v)?;
        serde_json::to_writer(&mut self.out.bytes, &v)
    }
}

/// An array being written: each element on its own line, one level in.
struct SeqState {
    depth: usize,
    empty: bool,
}

impl SeqState {
    fn open(out: &mut Buf, depth: usize) -> SeqState {
        out.bytes.push(b'[');
        SeqState { depth, empty: true }
    }

    fn element<T: Serialize + ?Sized>(&mut self, out: &mut Buf, v: &T) -> Result<(), Error> {
        out.bytes
            .extend_from_slice(if self.empty { b"\n" } else { b",\n" });
        self.empty = false;
        out.indent(self.depth + 1);
        v.serialize(Writer {
            out,
            depth: self.depth + 1,
        })
    }

    fn close(self, out: &mut Buf) {
        if !self.empty {
            out.bytes.push(b'\n');
            out.indent(self.depth);
        }
        out.bytes.push(b']');
    }
}

/// An object being written: its entries are written as they come, with the separators and
/// indentation they would have in that order; `close` leaves them if that order is the keys'
/// (no copy), or else writes them again in key order.
struct ObjectState {
    depth: usize,
    start: usize,
    /// In the order written.
    entries: Vec<Entry>,
    /// A map's key, given before its value.
    key: Option<String>,
}

impl ObjectState {
    fn open(out: &mut Buf, depth: usize) -> ObjectState {
        out.bytes.push(b'{');
        ObjectState {
            depth,
            start: out.bytes.len(),
            entries: out.spare.pop().unwrap_or_default(),
            key: None,
        }
    }

    /// Writes the separator and `"key": `, and returns where the entry starts; `end_entry`
    /// records it.
    fn begin_entry(&mut self, out: &mut Buf, key: &str) -> Result<usize, Error> {
        out.bytes.extend_from_slice(if self.entries.is_empty() {
            b"\n"
        } else {
            b",\n"
        });
        out.indent(self.depth + 1);
        let from = out.bytes.len();
        if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            // Nothing to escape (every field name kubectl-ds writes).
            out.bytes.push(b'"');
            out.bytes.extend_from_slice(key.as_bytes());
            out.bytes.extend_from_slice(b"\": ");
        } else {
            serde_json::to_writer(&mut out.bytes, key)?;
            out.bytes.extend_from_slice(b": ");
        }
        Ok(from)
    }

    fn end_entry(&mut self, out: &Buf, key: Cow<'static, str>, from: usize) {
        self.entries.push((key, from, out.bytes.len()));
    }

    fn entry<T: Serialize + ?Sized>(
        &mut self,
        out: &mut Buf,
        key: Cow<'static, str>,
        v: &T,
    ) -> Result<(), Error> {
        let from = self.begin_entry(out, &key)?;
        v.serialize(Writer {
            out: &mut *out,
            depth: self.depth + 1,
        })?;
        self.end_entry(out, key, from);
        Ok(())
    }

    fn close(mut self, out: &mut Buf) {
        if self.entries.is_empty() {
            out.bytes.push(b'}');
            out.spare.push(self.entries);
            return;
        }
        if !self.entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // A stable sort: of equal keys the last written stays last, and is the one kept
            // (a later insert into serde_json's map replaces the earlier value).
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
            let Buf { bytes, scratch, .. } = &mut *out;
            scratch.clear();
            scratch.extend_from_slice(&bytes[self.start..]);
            bytes.truncate(self.start);
            let mut first = true;
            for (i, (key, from, to)) in self.entries.iter().enumerate() {
                if self.entries.get(i + 1).is_some_and(|next| &next.0 == key) {
                    continue;
                }
                bytes.extend_from_slice(if first { b"\n" } else { b",\n" });
                first = false;
                for _ in 0..self.depth + 1 {
                    bytes.extend_from_slice(INDENT);
                }
                bytes.extend_from_slice(&scratch[from - self.start..to - self.start]);
            }
        }
        out.bytes.push(b'\n');
        out.indent(self.depth);
        out.bytes.push(b'}');
        self.entries.clear();
        out.spare.push(self.entries);
    }
}

struct Seq<'a> {
    out: &'a mut Buf,
    state: SeqState,
}

struct Object<'a> {
    out: &'a mut Buf,
    state: ObjectState,
}

/// An enum variant holding a tuple or struct: serde_json's `{"Variant": value}`, the value
/// (an array or an object, state `S`) written inside the outer object's one entry.
struct Variant<'a, S> {
    out: &'a mut Buf,
    outer: ObjectState,
    variant: &'static str,
    from: usize,
    inner: S,
}

impl<'a> Writer<'a> {
    fn variant<S>(
        self,
        variant: &'static str,
        open: impl FnOnce(&mut Buf, usize) -> S,
    ) -> Result<Variant<'a, S>, Error> {
        let mut outer = ObjectState::open(self.out, self.depth);
        let from = outer.begin_entry(self.out, variant)?;
        let inner = open(self.out, self.depth + 1);
        Ok(Variant {
            out: self.out,
            outer,
            variant,
            from,
            inner,
        })
    }
}

impl<S> Variant<'_, S> {
    fn close(mut self, close_inner: impl FnOnce(S, &mut Buf)) {
        close_inner(self.inner, self.out);
        self.outer
            .end_entry(self.out, Cow::Borrowed(self.variant), self.from);
        self.outer.close(self.out);
    }
}

fn key_must_be_a_string() -> Error {
    ser::Error::custom("key must be a string")
}

/// A map key as serde_json's `Value` makes it a string.
struct KeyWriter;

macro_rules! key_by_display {
    ($($f:ident: $t:ty),*) => {
        $(fn $f(self, v: $t) -> Result<String, Error> {
            Ok(v.to_string())
        })*
    };
}

macro_rules! no_key {
    ($($f:ident($($t:ty),*) -> $r:ty),*) => {
        $(fn $f(self, $(_: $t),*) -> Result<$r, Error> {
            Err(key_must_be_a_string())
        })*
    };
}

impl ser::Serializer for KeyWriter {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    key_by_display!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str
    );

    no_key!(
        serialize_f32(f32) -> String,
        serialize_f64(f64) -> String,
        serialize_bytes(&[u8]) -> String,
        serialize_none() -> String,
        serialize_unit() -> String,
        serialize_unit_struct(&'static str) -> String,
        serialize_seq(Option<usize>) -> Self::SerializeSeq,
        serialize_tuple(usize) -> Self::SerializeTuple,
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant,
        serialize_map(Option<usize>) -> Self::SerializeMap,
        serialize_struct(&'static str, usize) -> Self::SerializeStruct,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Error> {
        Err(key_must_be_a_string())
    }
}

macro_rules! scalar {
    ($($f:ident: $t:ty),*) => {
        $(fn $f(mut self, v: $t) -> Result<(), Error> {
            self.scalar(&v)
        })*
    };
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Variant<'a, SeqState>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Variant<'a, ObjectState>;

    scalar!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_char: char
    );

    fn serialize_i128(mut self, v: i128) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_u128(mut self, v: u128) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_f32(mut self, v: f32) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_f64(mut self, v: f64) -> Result<(), Error> {
        self.via_value(v)
    }
    fn serialize_str(mut self, v: &str) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let mut seq = SeqState::open(self.out, self.depth);
        for b in v {
            seq.element(self.out, b)?;
        }
        seq.close(self.out);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.bytes.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.scalar(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        let mut o = ObjectState::open(self.out, self.depth);
        o.entry(self.out, Cow::Borrowed(variant), v)?;
        o.close(self.out);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Error> {
        let state = SeqState::open(self.out, self.depth);
        Ok(Seq {
            out: self.out,
            state,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        self.variant(variant, SeqState::open)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, Error> {
        let state = ObjectState::open(self.out, self.depth);
        Ok(Object {
            out: self.out,
            state,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        self.variant(variant, ObjectState::open)
    }
}

macro_rules! seq_like {
    ($($t:path, $f:ident);*) => {
        $(impl $t for Seq<'_> {
            type Ok = ();
            type Error = Error;
            fn $f<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
                self.state.element(self.out, v)
            }
            fn end(self) -> Result<(), Error> {
                self.state.close(self.out);
                Ok(())
            }
        })*
    };
}

seq_like!(
    ser::SerializeSeq, serialize_element;
    ser::SerializeTuple, serialize_element;
    ser::SerializeTupleStruct, serialize_field
);

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.state.key = Some(k.serialize(KeyWriter)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let key = self.state.key.take().ok_or_else(|| {
            <Error as ser::Error>::custom("serialize_value called before serialize_key")
        })?;
        self.state.entry(self.out, Cow::Owned(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.state.close(self.out);
        Ok(())
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.state.entry(self.out, Cow::Borrowed(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.state.close(self.out);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Variant<'_, SeqState> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.inner.element(self.out, v)
    }
    fn end(self) -> Result<(), Error> {
        self.close(SeqState::close);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Variant<'_, ObjectState> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.inner.entry(self.out, Cow::Borrowed(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.close(ObjectState::close);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Serialize;

    use super::write;
    use crate::engine::explain::{self, NodeFilter};
    use crate::engine::testutil::snapshot_of_list;

    /// What `write` must give: serde_json's pretty writer over serde_json's tree.
    fn through_value<T: Serialize>(v: &T) -> String {
        serde_json::to_string_pretty(&serde_json::to_value(v).unwrap()).unwrap()
    }

    fn direct<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        write(&mut out, v, 0).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        zeta: Option<u8>,
        alpha_beta: Vec<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<String>,
        empty_map: BTreeMap<String, u8>,
        unit: (),
    }

    #[derive(Serialize)]
    #[serde(tag = "code")]
    enum Tagged {
        Plain,
        WithFields { z: String, a: bool },
        Wrapped(Inner),
    }

    #[derive(Serialize)]
    struct Flattened<'a> {
        message: String,
        #[serde(flatten)]
        reason: &'a Tagged,
        #[serde(flatten)]
        extra: BTreeMap<String, i32>,
    }

    #[derive(Serialize)]
    enum External {
        Unit,
        Newtype(u32),
        Tuple(i8, String),
        Struct { y: u16, b: Vec<()> },
        EmptyTuple(),
    }

    #[derive(Serialize)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        One(String),
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Untagged {
        Num(i64),
        Obj { q: u8, p: u8 },
    }

    #[derive(Serialize)]
    struct Newtype(Vec<u8>);

    #[derive(Serialize)]
    struct Everything<'a> {
        z_last: &'static str,
        a_first: Inner,
        tagged: Vec<Tagged>,
        flattened: Vec<Flattened<'a>>,
        external: Vec<External>,
        adjacent: Adjacent,
        untagged: Vec<Untagged>,
        int_keys: BTreeMap<i32, &'static str>,
        bool_keys: HashMap<bool, u8>,
        char_keys: BTreeMap<char, u8>,
        variant_keys: BTreeMap<Key, u8>,
        newtype: Newtype,
        tuple: (u8, (), Option<bool>),
        big: u64,
        negative: i64,
        big128: i128,
        float: f64,
        not_finite: f32,
        text: String,
        empty_vec: Vec<u8>,
        nested_empty: Vec<Vec<BTreeMap<String, u8>>>,
        #[serde(rename = "Upper")]
        upper: u8,
        #[serde(rename = "_under")]
        under: u8,
    }

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        Beta,
        Alpha,
    }

    fn inner() -> Inner {
        Inner {
            zeta: None,
            alpha_beta: vec![1, -2],
            skipped: None,
            empty_map: BTreeMap::new(),
            unit: (),
        }
    }

    #[test]
    fn every_shape_is_written_as_serde_json_writes_its_tree() {
        let fields = Tagged::WithFields {
            z: "z".into(),
            a: true,
        };
        let everything = Everything {
            z_last: "last",
            a_first: inner(),
            tagged: vec![Tagged::Plain, Tagged::Wrapped(inner())],
            flattened: vec![
                Flattened {
                    message: "m".into(),
                    reason: &fields,
                    extra: BTreeMap::from([
                        ("b".into(), 1),
                        ("message".into(), 2),
                        ("q\"uote\\back\nline \u{1} é".into(), 3),
                    ]),
                },
                Flattened {
                    message: "only".into(),
                    reason: &Tagged::Plain,
                    extra: BTreeMap::new(),
                },
            ],
            external: vec![
                External::Unit,
                External::Newtype(7),
                External::Tuple(-1, "t".into()),
                External::Struct { y: 2, b: vec![()] },
                External::EmptyTuple(),
            ],
            adjacent: Adjacent::One("x".into()),
            untagged: vec![Untagged::Num(3), Untagged::Obj { q: 1, p: 2 }],
            int_keys: BTreeMap::from([(10, "ten"), (-1, "minus"), (2, "two")]),
            bool_keys: HashMap::from([(true, 1), (false, 0)]),
            char_keys: BTreeMap::from([('b', 1), ('a', 2)]),
            variant_keys: BTreeMap::from([(Key::Beta, 1), (Key::Alpha, 2)]),
            newtype: Newtype(vec![0, 255]),
            tuple: (1, (), Some(false)),
            big: u64::MAX,
            negative: i64::MIN,
            big128: -5,
            float: 0.1 + 0.2,
            not_finite: f32::NAN,
            text: "quote \" backslash \\ newline \n tab \t bell \u{7} é 漢 \u{1F600} </script>"
                .into(),
            empty_vec: vec![],
            nested_empty: vec![vec![], vec![BTreeMap::new()]],
            upper: 1,
            under: 2,
        };
        let want = through_value(&everything);
        assert_eq!(direct(&everything), want);
        // The flattened map's "message" replaces the struct's own, as in serde_json's map.
        assert!(want.contains("\"message\": 2"), "{want}");
        assert!(!want.contains("\"m\""), "{want}");
    }

    #[test]
    fn scalars_and_empty_documents() {
        assert_eq!(direct(&5u8), through_value(&5u8));
        assert_eq!(direct(&"s"), through_value(&"s"));
        assert_eq!(direct(&None::<u8>), "null");
        assert_eq!(direct(&Vec::<u8>::new()), "[]");
        assert_eq!(direct(&BTreeMap::<String, u8>::new()), "{}");
        assert_eq!(direct(&External::Unit), through_value(&External::Unit));
    }

    #[test]
    fn map_keys_serde_json_refuses_are_refused() {
        let floats = BTreeMap::from([(Key::Alpha, 1)]);
        assert!(serde_json::to_value(&floats).is_ok());
        let tuples = BTreeMap::from([((1, 2), 1)]);
        assert!(serde_json::to_value(&tuples).is_err());
        let mut out = Vec::new();
        assert!(write(&mut out, &tuples, 0).is_err());
        let too_big = u128::MAX;
        assert_eq!(
            serde_json::to_value(too_big).is_err(),
            write(&mut Vec::new(), &too_big, 0).is_err()
        );
    }

    /// Written at a nesting deeper than 0, the value is what serde_json writes for it inside
    /// an array at that nesting.
    #[test]
    fn written_at_a_depth_as_inside_a_document() {
        let v = vec![vec![inner()]];
        let whole = through_value(&v);
        let mut out = Vec::new();
        write(&mut out, &inner(), 2).unwrap();
        let at_depth = String::from_utf8(out).unwrap();
        assert!(whole.contains(&at_depth), "{whole}\n---\n{at_depth}");
        assert!(at_depth.ends_with("\n    }"), "{at_depth}");
    }

    /// The structs written once per node declare their fields in key order, so that their
    /// objects are written as they come, without being copied into order.
    #[test]
    fn per_node_structs_declare_their_fields_in_key_order() {
        use crate::engine::explain::{NodeState, NodeVerdict, PodInfo};
        let v = NodeVerdict {
            name: "n1".into(),
            state: NodeState::Running,
            should_run: true,
            should_continue_running: true,
            pod: Some(PodInfo {
                name: "p".into(),
                uid: "u".into(),
                phase: "Running".into(),
                ready: true,
                revision: Some("h".into()),
                revision_number: Some(1),
                restarts: 0,
                node_name: Some("n1".into()),
            }),
            reasons: vec![],
        };
        assert_eq!(serde_json::to_string_pretty(&v).unwrap(), through_value(&v));
    }

    /// The explanations of the fixtures (every node state and many reasons), as
    /// `explain -o json` and the overview write them.
    #[test]
    fn explanations_are_written_as_their_trees() {
        for (text, name) in [
            (
                include_str!("../../tests/fixtures/bundle.yaml"),
                "node-agent",
            ),
            (
                include_str!("../../tests/fixtures/preemption.yaml"),
                "node-agent",
            ),
            (
                include_str!("../../tests/fixtures/fix-priority.yaml"),
                "log-agent",
            ),
            (
                include_str!("../../tests/fixtures/fix-resources.yaml"),
                "log-agent",
            ),
        ] {
            let snap = snapshot_of_list(text, name);
            let e = explain::explain(&snap, &NodeFilter::default());
            assert!(!e.nodes.is_empty(), "{name}");
            let want = through_value(&e);
            assert!(want.contains("\"reasons\": [\n"), "{want}");
            assert_eq!(direct(&e), want, "{name}");
        }
    }
}
