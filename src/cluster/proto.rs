//! Lists of nodes and pods in the apiserver's protobuf encoding, as client-go's informers read
//! them, converted into the k8s-openapi types the engine reads.
//!
//! Why: at 5,000 nodes the apiserver's JSON encoding of the node and pod lists is most of what
//! `explain` waits for (and about half of what it spends itself, parsing). Protobuf is several
//! times cheaper to produce and to parse, and a third smaller on the wire.
//!
//! What is converted: every field the engine, the renderers or a future reader of a node or a
//! pod could plausibly need (metadata without managedFields; node spec and conditions,
//! capacity, allocatable, addresses; pod scheduling fields, containers' names, images, ports,
//! resources and restart policies, and the whole pod status apart from resource claims).
//! Volumes, probes, security contexts, env and the like are left out: nothing in kubectl-ds
//! reads them from a listed pod. They are not even decoded: the lists are decoded into
//! [`super::wire`]'s messages, which declare only the converted fields (prost skips the others
//! without allocating: a node's image list and every object's managedFields are most of a
//! list's bytes). The conversion mirrors the JSON form exactly: empty lists and
//! maps become absent fields (omitempty), times keep whole seconds (RFC 3339 in JSON).
//!
//! How: each page is read as it arrives ([`PageReader`]): the list's metadata comes first in
//! the body, so the next page is asked for while this one is still arriving, and each item is
//! decoded and converted as soon as its bytes are in; a page's bytes are never held whole.
//!
//! Anything unexpected (an error status, a body that is not protobuf, a decoding failure) and
//! the caller lists the same objects again as JSON (see [`super::fetch::list_fast`]), so errors
//! keep their usual messages and exit codes.

use std::collections::BTreeMap;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1 as api;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
// The messages with only the fields converted here (generated from k8s-pb's): decoding skips
// the rest (a node's images, managedFields, a container's env and probes) without allocating.
use super::wire as pb;
use super::wire as pbmeta;
use super::wire::Quantity as PbQuantity;
use crate::engine::model::convert_all;

/// The media type the apiserver answers in protobuf.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// Every protobuf response starts with these four bytes, then a `runtime.Unknown` envelope.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf list could not be read (the caller then falls back to JSON).
#[derive(Debug)]
pub enum ProtoError {
    /// The request failed before any body: connection, timeout (not worth a JSON retry).
    Transport(kube::Error),
    /// An error status or a body we cannot read as a protobuf list (retry as JSON).
    Unusable,
}

/// A page's list metadata: the continue token if there is more, the apiserver's count of the
/// objects after this page (`remainingItemCount`, when it says), and the list's
/// resourceVersion.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PageHead {
    pub continue_: Option<String>,
    pub remaining: Option<i64>,
    pub resource_version: Option<String>,
}

impl PageHead {
    fn of(m: pbmeta::ListMeta) -> PageHead {
        PageHead {
            remaining: m.remaining_item_count,
            resource_version: m.resource_version.filter(|v| !v.is_empty()),
            continue_: m.r#continue.filter(|c| !c.is_empty()),
        }
    }
}

/// A list type of the protobuf API: its item's message and the k8s-openapi object that
/// converts into.
pub trait ProtoList {
    type Wire: Message + Default;
    type Item;
    fn convert(w: Self::Wire) -> Self::Item;
}

/// `impl ProtoList for LIST { type Wire = WIRE; type Item = ITEM; ... }`, converted by CONVERT.
macro_rules! proto_list {
    ($list:ty, $wire:ty, $item:ty, $convert:path) => {
        impl ProtoList for $list {
            type Wire = $wire;
            type Item = $item;
            fn convert(w: $wire) -> $item {
                $convert(w)
            }
        }
    };
}

proto_list!(pb::NodeList, pb::Node, api::Node, node);
proto_list!(pb::PodList, pb::Pod, api::Pod, pod);

/// Where a [`PageReader`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum At {
    /// Before the magic bytes.
    Start,
    /// In the `runtime.Unknown` envelope (apimachinery's runtime/generated.proto: typeMeta 1,
    /// raw 2, contentEncoding 3, contentType 4), before its `raw` field.
    Envelope,
    /// In the list (the `raw` field's value), with this many of its bytes still to read.
    List(usize),
    /// In the envelope again, after `raw`.
    Trailer,
}

/// What the next field of a message needs.
enum Field {
    /// Its bytes are not all here yet.
    More,
    /// (field number, wire type, header bytes, value bytes).
    Here(u32, prost::encoding::WireType, usize, usize),
}

/// Reads a protobuf list response as its bytes arrive (no I/O here): the magic, the
/// envelope, the list's metadata (its [`PageHead`]: the next page can be asked for at once),
/// then each item as soon as its bytes are complete, converted and shaped one at a time. The
/// page's bytes are never held whole: only what is not read yet, at most about one item.
pub struct PageReader<L: ProtoList> {
    buf: Vec<u8>,
    pos: usize,
    at: At,
    head: Option<PageHead>,
    /// Items read, kept or not.
    seen: usize,
    list: std::marker::PhantomData<L>,
}

impl<L: ProtoList> Default for PageReader<L> {
    fn default() -> Self {
        PageReader {
            buf: Vec::new(),
            pos: 0,
            at: At::Start,
            head: None,
            seen: 0,
            list: std::marker::PhantomData,
        }
    }
}

impl<L: ProtoList> PageReader<L> {
    /// The list's metadata, once read (or once the list turned out to have none).
    pub fn head(&self) -> Option<&PageHead> {
        self.head.as_ref()
    }

    /// Takes the next bytes of the body; each item completed is converted, shaped by `shape`
    /// and, unless dropped, pushed to `items`.
    pub fn feed<T>(
        &mut self,
        bytes: &[u8],
        items: &mut Vec<T>,
        shape: super::fetch::Shape<'_, L::Item, T>,
    ) -> Result<(), ProtoError> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.parse(items, shape)
    }

    /// The body has ended: it must have ended where the envelope does.
    pub fn finish(&mut self) -> Result<(), ProtoError> {
        if self.at != At::Trailer || self.pos != self.buf.len() {
            return Err(ProtoError::Unusable);
        }
        Ok(())
    }

    fn parse<T>(
        &mut self,
        items: &mut Vec<T>,
        shape: super::fetch::Shape<'_, L::Item, T>,
    ) -> Result<(), ProtoError> {
        use prost::encoding::WireType;
        loop {
            let rest = &self.buf[self.pos..];
            match self.at {
                At::Start => {
                    if rest.len() < MAGIC.len() {
                        return Ok(());
                    }
                    if !rest.starts_with(MAGIC) {
                        return Err(ProtoError::Unusable);
                    }
                    self.pos += MAGIC.len();
                    self.at = At::Envelope;
                }
                At::Envelope | At::Trailer => {
                    let Field::Here(tag, wire, header, len) = field(rest)? else {
                        return Ok(());
                    };
                    if self.at == At::Envelope && tag == 2 && wire == WireType::LengthDelimited {
                        // The list itself: read field by field below, as it arrives.
                        self.pos += header;
                        self.at = At::List(len);
                        continue;
                    }
                    if rest.len() < header + len {
                        return Ok(());
                    }
                    // A content encoding (compressed): not what was asked for.
                    if tag == 3 && len > 0 {
                        return Err(ProtoError::Unusable);
                    }
                    self.pos += header + len;
                }
                At::List(0) => {
                    self.head.get_or_insert_with(PageHead::default);
                    self.at = At::Trailer;
                }
                At::List(left) => {
                    let rest = &rest[..rest.len().min(left)];
                    let Field::Here(tag, wire, header, len) = field(rest)? else {
                        if rest.len() == left {
                            return Err(ProtoError::Unusable);
                        }
                        return Ok(());
                    };
                    if header + len > left {
                        return Err(ProtoError::Unusable);
                    }
                    if rest.len() < header + len {
                        return Ok(());
                    }
                    let value = &rest[header..header + len];
                    match (tag, wire) {
                        (1, WireType::LengthDelimited) => {
                            let m = pbmeta::ListMeta::decode(value)
                                .map_err(|_| ProtoError::Unusable)?;
                            self.head = Some(PageHead::of(m));
                        }
                        (2, WireType::LengthDelimited) => {
                            self.head.get_or_insert_with(PageHead::default);
                            let w = L::Wire::decode(value).map_err(|_| ProtoError::Unusable)?;
                            items.extend(shape(L::convert(w)));
                            self.seen += 1;
                        }
                        _ => {}
                    }
                    self.pos += header + len;
                    self.at = At::List(left - header - len);
                }
            }
        }
    }
}

/// The next field's header in `buf` (a message's bytes from a field boundary): its number,
/// wire type, header length and value length (0 for a varint: the header holds it whole).
fn field(buf: &[u8]) -> Result<Field, ProtoError> {
    use prost::encoding::WireType;
    let Some((key, mut header)) = varint(buf)? else {
        return Ok(Field::More);
    };
    let wire = WireType::try_from(key & 7).map_err(|_| ProtoError::Unusable)?;
    let tag = u32::try_from(key >> 3).map_err(|_| ProtoError::Unusable)?;
    let len = match wire {
        WireType::LengthDelimited => {
            let Some((len, n)) = varint(&buf[header..])? else {
                return Ok(Field::More);
            };
            header += n;
            usize::try_from(len).map_err(|_| ProtoError::Unusable)?
        }
        WireType::Varint => {
            let Some((_, n)) = varint(&buf[header..])? else {
                return Ok(Field::More);
            };
            header += n;
            0
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::StartGroup | WireType::EndGroup => return Err(ProtoError::Unusable),
    };
    Ok(Field::Here(tag, wire, header, len))
}

/// A base-128 varint at the start of `buf`, with its length; None when `buf` ends inside it.
fn varint(buf: &[u8]) -> Result<Option<(u64, usize)>, ProtoError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(Some((v, i + 1)));
        }
    }
    if buf.len() >= 10 {
        return Err(ProtoError::Unusable);
    }
    Ok(None)
}

/// A page being read: its [`PageHead`] is known, its items may still be arriving.
pub struct OpenPage<L: ProtoList, T> {
    reader: PageReader<L>,
    body: std::pin::Pin<Box<dyn futures::AsyncBufRead + Send>>,
    /// Items read while the head was looked for (only when the list has no metadata).
    early: Vec<T>,
}

/// Sends a list request asking for protobuf and reads its answer up to the list's metadata
/// (see [`PageReader`]); [`OpenPage::read_into`] reads the rest.
pub async fn open_page<L: ProtoList, T>(
    client: &kube::Client,
    mut req: http::Request<Vec<u8>>,
    shape: super::fetch::Shape<'_, L::Item, T>,
) -> Result<OpenPage<L, T>, ProtoError> {
    req.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(MEDIA_TYPE),
    );
    let body = match client.request_stream(req).await {
        Ok(s) => s,
        // An error status comes back in protobuf too, which kube cannot read (FromUtf8, or an
        // Api error with the raw body): the JSON retry gets the readable message.
        Err(kube::Error::Api(_) | kube::Error::FromUtf8(_) | kube::Error::SerdeError(_)) => {
            return Err(ProtoError::Unusable)
        }
        Err(e) => return Err(ProtoError::Transport(e)),
    };
    let mut page = OpenPage {
        reader: PageReader::default(),
        body: Box::pin(body),
        early: Vec::new(),
    };
    while page.reader.head().is_none() {
        if !page.read_some(shape).await? {
            break;
        }
    }
    Ok(page)
}

impl<L: ProtoList, T> OpenPage<L, T> {
    pub fn head(&self) -> PageHead {
        self.reader.head().cloned().unwrap_or_default()
    }

    /// Reads the rest of the page, its items pushed to `items` as they complete; answers how
    /// many items the page had (`shape` may have dropped some).
    pub async fn read_into(
        mut self,
        items: &mut Vec<T>,
        shape: super::fetch::Shape<'_, L::Item, T>,
    ) -> Result<usize, ProtoError> {
        items.append(&mut self.early);
        loop {
            let chunk = read_chunk(&mut self.body).await?;
            if chunk.is_empty() {
                self.reader.finish()?;
                return Ok(self.reader.seen);
            }
            let n = chunk.len();
            self.reader.feed(chunk, items, shape)?;
            self.body.consume_unpin(n);
        }
    }

    /// Reads one chunk into the reader; false at the end of the body.
    async fn read_some(
        &mut self,
        shape: super::fetch::Shape<'_, L::Item, T>,
    ) -> Result<bool, ProtoError> {
        let chunk = read_chunk(&mut self.body).await?;
        if chunk.is_empty() {
            self.reader.finish()?;
            return Ok(false);
        }
        let n = chunk.len();
        self.reader.feed(chunk, &mut self.early, shape)?;
        self.body.consume_unpin(n);
        Ok(true)
    }
}

/// The next bytes of a body (empty at its end), left for the caller to consume.
async fn read_chunk(
    body: &mut std::pin::Pin<Box<dyn futures::AsyncBufRead + Send>>,
) -> Result<&[u8], ProtoError> {
    body.fill_buf()
        .await
        .map_err(|e| ProtoError::Transport(kube::Error::ReadEvents(e)))
}

// ---------------------------------------------------------------------------------------------
// Conversions. Field by field, in the order of the Go types.
// ---------------------------------------------------------------------------------------------

/// Not collected in place (see crate::engine::model::convert_all): a converted item smaller
/// than its wire message would keep the message's room.
fn vec_of<T, U>(v: Vec<T>, f: impl FnMut(T) -> U) -> Option<Vec<U>> {
    (!v.is_empty()).then(|| convert_all(v, f))
}

fn strings(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

fn map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn quantities(m: BTreeMap<String, PbQuantity>) -> Option<BTreeMap<String, Quantity>> {
    (!m.is_empty()).then(|| {
        m.into_iter()
            .map(|(k, q)| (k, Quantity(q.string.unwrap_or_default())))
            .collect()
    })
}

// Go's protobuf marshalling writes non-pointer fields even when they hold their zero value,
// where JSON's `omitempty` leaves them out: "" / false / 0 in such a field is an absent field.
// Pointer fields (`*int64`, `*bool`, ...) keep their value: there 0 and false mean something.

fn s_(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn b_(v: Option<bool>) -> Option<bool> {
    v.filter(|b| *b)
}

fn i_(v: Option<i32>) -> Option<i32> {
    v.filter(|i| *i != 0)
}

fn l_(v: Option<i64>) -> Option<i64> {
    v.filter(|i| *i != 0)
}

/// Whole seconds, as the JSON form (RFC 3339, no fraction) carries them; the zero time (which
/// JSON writes as null) is absent.
fn time(t: pbmeta::Time) -> Option<meta::Time> {
    let s = t.seconds.unwrap_or(0);
    if s == 0 && t.nanos.unwrap_or(0) == 0 {
        return None;
    }
    k8s_openapi::jiff::Timestamp::from_second(s)
        .ok()
        .map(meta::Time)
}

fn opt_time(t: Option<pbmeta::Time>) -> Option<meta::Time> {
    t.and_then(time)
}

fn object_meta(m: Option<pbmeta::ObjectMeta>) -> meta::ObjectMeta {
    let Some(m) = m else {
        return meta::ObjectMeta::default();
    };
    meta::ObjectMeta {
        name: s_(m.name),
        generate_name: s_(m.generate_name),
        namespace: s_(m.namespace),
        self_link: s_(m.self_link),
        uid: s_(m.uid),
        resource_version: s_(m.resource_version),
        generation: l_(m.generation),
        creation_timestamp: opt_time(m.creation_timestamp),
        deletion_timestamp: opt_time(m.deletion_timestamp),
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        labels: map(m.labels),
        annotations: map(m.annotations),
        owner_references: vec_of(m.owner_references, |o| meta::OwnerReference {
            api_version: o.api_version.unwrap_or_default(),
            kind: o.kind.unwrap_or_default(),
            name: o.name.unwrap_or_default(),
            uid: o.uid.unwrap_or_default(),
            controller: o.controller,
            block_owner_deletion: o.block_owner_deletion,
        }),
        finalizers: strings(m.finalizers),
        managed_fields: None,
    }
}

/// A node: metadata, spec, and the status the placement rules and the fit check read.
pub fn node(n: pb::Node) -> api::Node {
    api::Node {
        metadata: object_meta(n.metadata),
        spec: n.spec.map(|s| api::NodeSpec {
            pod_cidr: s_(s.pod_cidr),
            pod_cidrs: strings(s.pod_cid_rs),
            provider_id: s_(s.provider_id),
            unschedulable: b_(s.unschedulable),
            taints: vec_of(s.taints, |t| api::Taint {
                key: t.key.unwrap_or_default(),
                value: s_(t.value),
                effect: t.effect.unwrap_or_default(),
                time_added: opt_time(t.time_added),
            }),
            external_id: s_(s.external_id),
            ..Default::default()
        }),
        status: n.status.map(|s| api::NodeStatus {
            capacity: quantities(s.capacity),
            allocatable: quantities(s.allocatable),
            phase: s_(s.phase),
            conditions: vec_of(s.conditions, |c| api::NodeCondition {
                type_: c.r#type.unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                last_heartbeat_time: opt_time(c.last_heartbeat_time),
                last_transition_time: opt_time(c.last_transition_time),
                reason: s_(c.reason),
                message: s_(c.message),
            }),
            addresses: vec_of(s.addresses, |a| api::NodeAddress {
                type_: a.r#type.unwrap_or_default(),
                address: a.address.unwrap_or_default(),
            }),
            ..Default::default()
        }),
    }
}

fn node_selector_requirement(r: pb::NodeSelectorRequirement) -> api::NodeSelectorRequirement {
    api::NodeSelectorRequirement {
        key: r.key.unwrap_or_default(),
        operator: r.operator.unwrap_or_default(),
        values: strings(r.values),
    }
}

fn node_selector_term(t: pb::NodeSelectorTerm) -> api::NodeSelectorTerm {
    api::NodeSelectorTerm {
        match_expressions: vec_of(t.match_expressions, node_selector_requirement),
        match_fields: vec_of(t.match_fields, node_selector_requirement),
    }
}

/// Node affinity only: pod (anti-)affinity is the scheduler's business, not the DaemonSet
/// controller's, and kubectl-ds never reads it from a listed pod.
fn affinity(a: pb::Affinity) -> api::Affinity {
    api::Affinity {
        node_affinity: a.node_affinity.map(|n| api::NodeAffinity {
            required_during_scheduling_ignored_during_execution: n
                .required_during_scheduling_ignored_during_execution
                .map(|s| api::NodeSelector {
                    node_selector_terms: convert_all(s.node_selector_terms, node_selector_term),
                }),
            preferred_during_scheduling_ignored_during_execution: vec_of(
                n.preferred_during_scheduling_ignored_during_execution,
                |p| api::PreferredSchedulingTerm {
                    weight: p.weight.unwrap_or_default(),
                    preference: node_selector_term(p.preference.unwrap_or_default()),
                },
            ),
        }),
        ..Default::default()
    }
}

fn resources(r: pb::ResourceRequirements) -> api::ResourceRequirements {
    api::ResourceRequirements {
        limits: quantities(r.limits),
        requests: quantities(r.requests),
        ..Default::default()
    }
}

fn container(c: pb::Container) -> api::Container {
    api::Container {
        name: c.name.unwrap_or_default(),
        image: s_(c.image),
        command: strings(c.command),
        args: strings(c.args),
        working_dir: s_(c.working_dir),
        ports: vec_of(c.ports, |p| api::ContainerPort {
            name: s_(p.name),
            host_port: i_(p.host_port),
            container_port: p.container_port.unwrap_or_default(),
            protocol: s_(p.protocol),
            host_ip: s_(p.host_ip),
        }),
        resources: c.resources.map(resources),
        restart_policy: c.restart_policy,
        image_pull_policy: s_(c.image_pull_policy),
        termination_message_path: s_(c.termination_message_path),
        termination_message_policy: s_(c.termination_message_policy),
        stdin: b_(c.stdin),
        stdin_once: b_(c.stdin_once),
        tty: b_(c.tty),
        ..Default::default()
    }
}

fn container_state(s: pb::ContainerState) -> api::ContainerState {
    api::ContainerState {
        waiting: s.waiting.map(|w| api::ContainerStateWaiting {
            reason: s_(w.reason),
            message: s_(w.message),
        }),
        running: s.running.map(|r| api::ContainerStateRunning {
            started_at: opt_time(r.started_at),
        }),
        terminated: s.terminated.map(|t| api::ContainerStateTerminated {
            exit_code: t.exit_code.unwrap_or_default(),
            signal: i_(t.signal),
            reason: s_(t.reason),
            message: s_(t.message),
            started_at: opt_time(t.started_at),
            finished_at: opt_time(t.finished_at),
            container_id: s_(t.container_id),
        }),
    }
}

fn container_status(s: pb::ContainerStatus) -> api::ContainerStatus {
    api::ContainerStatus {
        name: s.name.unwrap_or_default(),
        state: s.state.map(container_state),
        last_state: s.last_state.map(container_state),
        ready: s.ready.unwrap_or_default(),
        restart_count: s.restart_count.unwrap_or_default(),
        image: s.image.unwrap_or_default(),
        image_id: s.image_id.unwrap_or_default(),
        container_id: s_(s.container_id),
        started: s.started,
        allocated_resources: quantities(s.allocated_resources),
        resources: s.resources.map(resources),
        ..Default::default()
    }
}

/// A pod: metadata, the scheduling part of its spec, its containers' images, ports,
/// resources and restart policies, and its status.
pub fn pod(p: pb::Pod) -> api::Pod {
    api::Pod {
        metadata: object_meta(p.metadata),
        spec: p.spec.map(|s| api::PodSpec {
            init_containers: vec_of(s.init_containers, container),
            containers: convert_all(s.containers, container),
            restart_policy: s_(s.restart_policy),
            termination_grace_period_seconds: s.termination_grace_period_seconds,
            active_deadline_seconds: s.active_deadline_seconds,
            dns_policy: s_(s.dns_policy),
            node_selector: map(s.node_selector),
            service_account_name: s_(s.service_account_name),
            automount_service_account_token: s.automount_service_account_token,
            node_name: s_(s.node_name),
            host_network: b_(s.host_network),
            host_pid: b_(s.host_pid),
            host_ipc: b_(s.host_ipc),
            hostname: s_(s.hostname),
            subdomain: s_(s.subdomain),
            affinity: s.affinity.map(affinity),
            scheduler_name: s_(s.scheduler_name),
            tolerations: vec_of(s.tolerations, |t| api::Toleration {
                key: s_(t.key),
                operator: s_(t.operator),
                value: s_(t.value),
                effect: s_(t.effect),
                toleration_seconds: t.toleration_seconds,
            }),
            priority_class_name: s_(s.priority_class_name),
            priority: s.priority,
            runtime_class_name: s.runtime_class_name,
            preemption_policy: s.preemption_policy,
            overhead: quantities(s.overhead),
            scheduling_gates: vec_of(s.scheduling_gates, |g| api::PodSchedulingGate {
                name: g.name.unwrap_or_default(),
            }),
            resources: s.resources.map(resources),
            ..Default::default()
        }),
        status: p.status.map(|s| api::PodStatus {
            observed_generation: l_(s.observed_generation),
            phase: s_(s.phase),
            conditions: vec_of(s.conditions, |c| api::PodCondition {
                observed_generation: l_(c.observed_generation),
                type_: c.r#type.unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                last_probe_time: opt_time(c.last_probe_time),
                last_transition_time: opt_time(c.last_transition_time),
                reason: s_(c.reason),
                message: s_(c.message),
            }),
            message: s_(s.message),
            reason: s_(s.reason),
            nominated_node_name: s_(s.nominated_node_name),
            host_ip: s_(s.host_ip),
            host_ips: vec_of(s.host_ips, |h| api::HostIP {
                ip: h.ip.unwrap_or_default(),
            }),
            pod_ip: s_(s.pod_ip),
            pod_ips: vec_of(s.pod_ips, |p| api::PodIP {
                ip: p.ip.unwrap_or_default(),
            }),
            start_time: opt_time(s.start_time),
            init_container_statuses: vec_of(s.init_container_statuses, container_status),
            container_statuses: vec_of(s.container_statuses, container_status),
            qos_class: s_(s.qos_class),
            ephemeral_container_statuses: vec_of(s.ephemeral_container_statuses, container_status),
            resize: s_(s.resize),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The tests build the full messages of k8s-pb (every field), encode them as the apiserver
    // would and decode them into the kept fields (super::wire): a wrong tag shows as a field
    // that does not convert.
    use k8s_pb::api::core::v1 as pb;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity as PbQuantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;

    /// A full message as decoded by the kept fields.
    fn wire<W: Message + Default>(full: impl Message) -> W {
        W::decode(full.encode_to_vec().as_slice()).expect("decodes")
    }

    fn t(seconds: i64) -> Option<pbmeta::Time> {
        Some(pbmeta::Time {
            seconds: Some(seconds),
            nanos: Some(0),
        })
    }

    fn zero_time() -> Option<pbmeta::Time> {
        Some(pbmeta::Time {
            seconds: Some(0),
            nanos: Some(0),
        })
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, PbQuantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), PbQuantity { string: s(v) }))
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn meta(name: &str, ns: &str) -> Option<pbmeta::ObjectMeta> {
        Some(pbmeta::ObjectMeta {
            name: s(name),
            generate_name: s(""),
            namespace: s(ns),
            self_link: s(""),
            uid: s("0b5e7c2e-1111-4c3a-9a55-000000000001"),
            resource_version: s("4242"),
            generation: Some(0),
            creation_timestamp: t(1_763_900_000),
            deletion_timestamp: None,
            labels: labels(&[("kubernetes.io/hostname", name)]),
            managed_fields: vec![pbmeta::ManagedFieldsEntry {
                manager: s("kubelet"),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// A node as Go's protobuf marshalling writes it (zero values present) converts into what
    /// the same node's JSON (omitempty) deserializes into, managedFields aside.
    #[test]
    fn a_node_converts_like_its_json() {
        let pb_node = pb::Node {
            metadata: meta("worker-1", ""),
            spec: Some(pb::NodeSpec {
                pod_cidr: s(""),
                provider_id: s(""),
                unschedulable: Some(false),
                taints: vec![
                    pb::Taint {
                        key: s("dedicated"),
                        value: s("gpu"),
                        effect: s("NoSchedule"),
                        time_added: None,
                    },
                    pb::Taint {
                        key: s("node.kubernetes.io/not-ready"),
                        value: s(""),
                        effect: s("NoExecute"),
                        time_added: t(1_763_900_060),
                    },
                ],
                external_id: s(""),
                ..Default::default()
            }),
            status: Some(pb::NodeStatus {
                capacity: q(&[("cpu", "4"), ("memory", "16Gi"), ("pods", "110")]),
                allocatable: q(&[("cpu", "3900m"), ("memory", "15Gi"), ("pods", "110")]),
                phase: s(""),
                conditions: vec![pb::NodeCondition {
                    r#type: s("Ready"),
                    status: s("False"),
                    last_heartbeat_time: t(1_763_900_100),
                    last_transition_time: t(1_763_900_050),
                    reason: s("KubeletNotReady"),
                    message: s(""),
                }],
                addresses: vec![pb::NodeAddress {
                    r#type: s("InternalIP"),
                    address: s("10.0.0.7"),
                }],
                // Not kept (super::wire has no such field): skipped by the decoder.
                images: vec![pb::ContainerImage {
                    names: vec!["registry.example/agent@sha256:00".into()],
                    size_bytes: Some(12_345_678),
                }],
                node_info: Some(pb::NodeSystemInfo {
                    kubelet_version: s("v1.35.4"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let json = serde_json::json!({
            "metadata": {
                "name": "worker-1",
                "uid": "0b5e7c2e-1111-4c3a-9a55-000000000001",
                "resourceVersion": "4242",
                "creationTimestamp": "2025-11-23T12:13:20Z",
                "labels": {"kubernetes.io/hostname": "worker-1"}
            },
            "spec": {
                "taints": [
                    {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute",
                     "timeAdded": "2025-11-23T12:14:20Z"}
                ]
            },
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "3900m", "memory": "15Gi", "pods": "110"},
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "KubeletNotReady",
                    "lastHeartbeatTime": "2025-11-23T12:15:00Z",
                    "lastTransitionTime": "2025-11-23T12:14:10Z"
                }],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}]
            }
        });
        let want: api::Node = serde_json::from_value(json).unwrap();
        assert_eq!(node(wire(pb_node)), want);
    }

    fn container(name: &str, cpu: &str, host_port: i32) -> pb::Container {
        pb::Container {
            name: s(name),
            image: s("registry.example/agent:1"),
            working_dir: s(""),
            ports: vec![pb::ContainerPort {
                name: s(""),
                host_port: Some(host_port),
                container_port: Some(9100),
                protocol: s("TCP"),
                host_ip: s(""),
            }],
            resources: Some(pb::ResourceRequirements {
                requests: q(&[("cpu", cpu)]),
                ..Default::default()
            }),
            termination_message_path: s("/dev/termination-log"),
            termination_message_policy: s("File"),
            image_pull_policy: s("IfNotPresent"),
            stdin: Some(false),
            stdin_once: Some(false),
            tty: Some(false),
            // Not kept: skipped by the decoder.
            env: vec![pb::EnvVar {
                name: s("LOG_LEVEL"),
                value: s("debug"),
                ..Default::default()
            }],
            liveness_probe: Some(pb::Probe {
                period_seconds: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_converts_like_its_json() {
        let pb_pod = pb::Pod {
            metadata: Some(pbmeta::ObjectMeta {
                generate_name: s("agent-"),
                owner_references: vec![pbmeta::OwnerReference {
                    api_version: s("apps/v1"),
                    kind: s("DaemonSet"),
                    name: s("agent"),
                    uid: s("0b5e7c2e-2222-4c3a-9a55-000000000002"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }],
                labels: labels(&[("app", "agent"), ("controller-revision-hash", "5d8f7")]),
                ..meta("agent-x7k2p", "kube-system").unwrap()
            }),
            spec: Some(pb::PodSpec {
                init_containers: vec![pb::Container {
                    restart_policy: s("Always"),
                    ..container("sidecar", "10m", 0)
                }],
                containers: vec![container("agent", "100m", 9100)],
                restart_policy: s("Always"),
                termination_grace_period_seconds: Some(0),
                dns_policy: s("ClusterFirst"),
                service_account_name: s("default"),
                node_name: s(""),
                host_network: Some(false),
                host_pid: Some(false),
                host_ipc: Some(false),
                hostname: s(""),
                subdomain: s(""),
                scheduler_name: s("default-scheduler"),
                priority: Some(0),
                priority_class_name: s(""),
                affinity: Some(pb::Affinity {
                    node_affinity: Some(pb::NodeAffinity {
                        required_during_scheduling_ignored_during_execution: Some(
                            pb::NodeSelector {
                                node_selector_terms: vec![pb::NodeSelectorTerm {
                                    match_fields: vec![pb::NodeSelectorRequirement {
                                        key: s("metadata.name"),
                                        operator: s("In"),
                                        values: vec!["worker-1".into()],
                                    }],
                                    ..Default::default()
                                }],
                            },
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                tolerations: vec![pb::Toleration {
                    key: s("node.kubernetes.io/not-ready"),
                    operator: s("Exists"),
                    value: s(""),
                    effect: s("NoExecute"),
                    toleration_seconds: None,
                }],
                scheduling_gates: vec![pb::PodSchedulingGate { name: s("wait") }],
                ..Default::default()
            }),
            status: Some(pb::PodStatus {
                observed_generation: Some(0),
                phase: s("Pending"),
                conditions: vec![pb::PodCondition {
                    r#type: s("PodScheduled"),
                    status: s("False"),
                    last_probe_time: zero_time(),
                    last_transition_time: t(1_763_900_000),
                    reason: s("SchedulingGated"),
                    message: s("Scheduling is blocked due to non-empty scheduling gates"),
                    observed_generation: Some(0),
                }],
                message: s(""),
                reason: s(""),
                nominated_node_name: s(""),
                host_ip: s(""),
                pod_ip: s(""),
                qos_class: s("Burstable"),
                container_statuses: vec![pb::ContainerStatus {
                    name: s("agent"),
                    state: Some(pb::ContainerState {
                        waiting: Some(pb::ContainerStateWaiting {
                            reason: s("CrashLoopBackOff"),
                            message: s(""),
                        }),
                        ..Default::default()
                    }),
                    last_state: Some(pb::ContainerState {
                        terminated: Some(pb::ContainerStateTerminated {
                            exit_code: Some(1),
                            signal: Some(0),
                            reason: s("Error"),
                            message: s(""),
                            started_at: t(1_763_900_010),
                            finished_at: t(1_763_900_020),
                            container_id: s(""),
                        }),
                        ..Default::default()
                    }),
                    ready: Some(false),
                    restart_count: Some(3),
                    image: s("registry.example/agent:1"),
                    image_id: s(""),
                    container_id: s(""),
                    started: Some(false),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let json = serde_json::json!({
            "metadata": {
                "name": "agent-x7k2p", "generateName": "agent-", "namespace": "kube-system",
                "uid": "0b5e7c2e-1111-4c3a-9a55-000000000001", "resourceVersion": "4242",
                "creationTimestamp": "2025-11-23T12:13:20Z",
                "labels": {"app": "agent", "controller-revision-hash": "5d8f7"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "name": "agent", "uid": "0b5e7c2e-2222-4c3a-9a55-000000000002",
                    "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "initContainers": [{
                    "name": "sidecar", "image": "registry.example/agent:1",
                    "restartPolicy": "Always",
                    "ports": [{"containerPort": 9100, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "10m"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
                }],
                "containers": [{
                    "name": "agent", "image": "registry.example/agent:1",
                    "ports": [{"containerPort": 9100, "hostPort": 9100, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
                }],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
                "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
                "schedulerName": "default-scheduler", "priority": 0,
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [
                        {"key": "metadata.name", "operator": "In", "values": ["worker-1"]}
                    ]}]
                }}},
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute"}],
                "schedulingGates": [{"name": "wait"}]
            },
            "status": {
                "phase": "Pending",
                "conditions": [{
                    "type": "PodScheduled", "status": "False", "lastProbeTime": null,
                    "lastTransitionTime": "2025-11-23T12:13:20Z", "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates"
                }],
                "qosClass": "Burstable",
                "containerStatuses": [{
                    "name": "agent",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": "2025-11-23T12:13:30Z",
                        "finishedAt": "2025-11-23T12:13:40Z"}},
                    "ready": false, "restartCount": 3, "image": "registry.example/agent:1",
                    "imageID": "", "started": false
                }]
            }
        });
        let want: api::Pod = serde_json::from_value(json).unwrap();
        assert_eq!(pod(wire(pb_pod)), want);
    }

    fn envelope(raw: Vec<u8>, encoding: &str) -> Vec<u8> {
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: s("v1"),
                kind: s("List"),
            }),
            raw: Some(raw),
            content_encoding: s(encoding),
            content_type: s(MEDIA_TYPE),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    /// The body fed to a [`PageReader`] in chunks of `chunk` bytes, then ended.
    fn read_all<L: ProtoList>(
        body: &[u8],
        chunk: usize,
    ) -> Result<(PageHead, Vec<L::Item>), ProtoError> {
        let mut reader = PageReader::<L>::default();
        let mut items = Vec::new();
        for part in body.chunks(chunk) {
            reader.feed(part, &mut items, &Some)?;
        }
        reader.finish()?;
        Ok((reader.head().cloned().unwrap(), items))
    }

    /// A page reads the same whatever the chunks its bytes arrive in, one byte at a time
    /// included: its items, its continue token, its resourceVersion.
    #[test]
    fn decodes_a_list_page_its_continue_token_and_resource_version() {
        let list = pb::NodeList {
            metadata: Some(pbmeta::ListMeta {
                r#continue: s("next-page"),
                resource_version: s("99"),
                remaining_item_count: Some(7),
                ..Default::default()
            }),
            items: vec![
                pb::Node {
                    metadata: meta("a", ""),
                    ..Default::default()
                },
                pb::Node {
                    metadata: meta("b", ""),
                    ..Default::default()
                },
            ],
        };
        let body = envelope(list.encode_to_vec(), "");
        for chunk in [1, 2, 7, 64, body.len()] {
            let (head, items) = read_all::<super::pb::NodeList>(&body, chunk).ok().unwrap();
            let names: Vec<_> = items
                .iter()
                .map(|n| n.metadata.name.clone().unwrap())
                .collect();
            assert_eq!(names, ["a", "b"], "chunks of {chunk}");
            assert_eq!(
                head,
                PageHead {
                    continue_: s("next-page"),
                    remaining: Some(7),
                    resource_version: s("99"),
                }
            );
            assert!(items[0].metadata.managed_fields.is_none());
        }

        let last = pb::NodeList {
            metadata: Some(pbmeta::ListMeta {
                r#continue: s(""),
                ..Default::default()
            }),
            items: vec![],
        };
        let (head, items) = read_all::<super::pb::NodeList>(&envelope(last.encode_to_vec(), ""), 3)
            .ok()
            .unwrap();
        assert!(items.is_empty() && head.continue_.is_none());
    }

    /// The head is known from the page's first bytes, before any item has arrived (the next
    /// page is asked for then); items come one by one as each completes.
    #[test]
    fn the_head_is_read_before_the_items_arrive() {
        let item = |name: &str| pb::Pod {
            metadata: meta(name, "ns"),
            ..Default::default()
        };
        let list = pb::PodList {
            metadata: Some(pbmeta::ListMeta {
                r#continue: s("c2"),
                ..Default::default()
            }),
            items: vec![item("a"), item("b")],
        };
        let body = envelope(list.encode_to_vec(), "");
        let mut reader = PageReader::<super::pb::PodList>::default();
        let mut items = Vec::new();
        // The envelope and the list's metadata, not yet the first item's bytes.
        let meta_end = MAGIC.len() + envelope_prefix_len(&body) + list_meta_len(&list);
        reader
            .feed(&body[..meta_end], &mut items, &Some)
            .ok()
            .unwrap();
        assert_eq!(
            reader.head().and_then(|h| h.continue_.as_deref()),
            Some("c2")
        );
        assert!(items.is_empty());
        let second_item_at = body.len() - item("b").encoded_len() - 2 - trailer_len();
        reader
            .feed(&body[meta_end..second_item_at], &mut items, &Some)
            .ok()
            .unwrap();
        assert_eq!(items.len(), 1, "the first item, complete");
        reader
            .feed(&body[second_item_at..], &mut items, &Some)
            .ok()
            .unwrap();
        reader.finish().ok().unwrap();
        assert_eq!(items.len(), 2);
    }

    /// The bytes of `envelope`'s fields before the list's own (typeMeta, raw's header).
    fn envelope_prefix_len(body: &[u8]) -> usize {
        let mut rest = &body[MAGIC.len()..];
        let mut n = 0;
        loop {
            let Ok(Field::Here(tag, _, header, len)) = field(rest) else {
                panic!("no raw field")
            };
            if tag == 2 {
                return n + header;
            }
            n += header + len;
            rest = &rest[header + len..];
        }
    }

    /// The bytes of the list's metadata field.
    fn list_meta_len(list: &pb::PodList) -> usize {
        let m = list.metadata.as_ref().unwrap().encoded_len();
        1 + prost::encoding::encoded_len_varint(m as u64) + m
    }

    /// The bytes of `envelope`'s fields after the list (contentEncoding "", contentType).
    fn trailer_len() -> usize {
        2 + 2 + MEDIA_TYPE.len()
    }

    #[test]
    fn anything_but_a_plain_protobuf_list_is_unusable() {
        let unusable = |body: &[u8]| {
            [1, 5, body.len().max(1)].iter().all(|&chunk| {
                matches!(
                    read_all::<super::pb::PodList>(body, chunk),
                    Err(ProtoError::Unusable)
                )
            })
        };
        assert!(unusable(br#"{"kind": "Status", "code": 403}"#));
        assert!(unusable(b"k8s\0\xff\xff\xff"));
        assert!(unusable(&envelope(vec![1, 2, 3], "gzip")));
        assert!(unusable(&envelope(vec![0x0a, 0xff], "")));
        assert!(unusable(b""));
        // An envelope cut short (its last field runs past the end).
        let whole = envelope(pb::PodList::default().encode_to_vec(), "");
        assert!(!unusable(&whole));
        let list = envelope(vec![0x0a, 0x00, 0x12, 0x00], "");
        assert!(unusable(&list[..list.len() - 3]));
        // A list whose last field runs past the list's own length.
        assert!(unusable(&envelope(vec![0x12, 0x05, 0x0a], "")));
    }
}
