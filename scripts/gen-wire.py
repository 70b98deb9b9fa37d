#!/usr/bin/env python3
"""Writes src/cluster/wire.rs: the protobuf messages of nodes and pods with only the fields
kubectl-ds converts (src/cluster/proto.rs), copied with their tags from the k8s-pb crate's
generated code. prost skips the fields a message does not declare without allocating, so a
node's image list, every object's managedFields, a container's env, probes and volume mounts
are never decoded.

    scripts/gen-wire.py [PATH-TO-k8s-pb-SOURCE] > src/cluster/wire.rs
    scripts/gen-wire.py | diff - src/cluster/wire.rs    (what scripts/test checks)

The default source is the k8s-pb of Cargo.lock in cargo's registry. A field named here that
k8s-pb does not have is an error; re-run after upgrading k8s-pb.
"""
import glob, io, os, re, subprocess, sys

KEEP = {
    # apimachinery meta/v1
    ("meta", "ObjectMeta"): "name generate_name namespace self_link uid resource_version generation "
        "creation_timestamp deletion_timestamp deletion_grace_period_seconds labels annotations "
        "owner_references finalizers",
    ("meta", "OwnerReference"): "api_version kind name uid controller block_owner_deletion",
    ("meta", "Time"): "seconds nanos",
    ("meta", "ListMeta"): "resource_version continue remaining_item_count",
    ("resource", "Quantity"): "string",
    # core/v1: nodes
    ("core", "NodeList"): "metadata items",
    ("core", "Node"): "metadata spec status",
    ("core", "NodeSpec"): "pod_cidr pod_cid_rs provider_id unschedulable taints external_id",
    ("core", "Taint"): "key value effect time_added",
    ("core", "NodeStatus"): "capacity allocatable phase conditions addresses",
    ("core", "NodeCondition"): "type status last_heartbeat_time last_transition_time reason message",
    ("core", "NodeAddress"): "type address",
    # core/v1: pods
    ("core", "PodList"): "metadata items",
    ("core", "Pod"): "metadata spec status",
    ("core", "PodSpec"): "init_containers containers restart_policy termination_grace_period_seconds "
        "active_deadline_seconds dns_policy node_selector service_account_name "
        "automount_service_account_token node_name host_network host_pid host_ipc hostname "
        "subdomain affinity scheduler_name tolerations priority_class_name priority "
        "runtime_class_name preemption_policy overhead scheduling_gates resources",
    ("core", "Container"): "name image command args working_dir ports resources restart_policy "
        "image_pull_policy termination_message_path termination_message_policy stdin stdin_once tty",
    ("core", "ContainerPort"): "name host_port container_port protocol host_ip",
    ("core", "ResourceRequirements"): "limits requests",
    ("core", "Affinity"): "node_affinity",
    ("core", "NodeAffinity"): "required_during_scheduling_ignored_during_execution "
        "preferred_during_scheduling_ignored_during_execution",
    ("core", "NodeSelector"): "node_selector_terms",
    ("core", "NodeSelectorTerm"): "match_expressions match_fields",
    ("core", "NodeSelectorRequirement"): "key operator values",
    ("core", "PreferredSchedulingTerm"): "weight preference",
    ("core", "Toleration"): "key operator value effect toleration_seconds",
    ("core", "PodSchedulingGate"): "name",
    ("core", "PodStatus"): "observed_generation phase conditions message reason nominated_node_name "
        "host_ip host_ips pod_ip pod_ips start_time init_container_statuses container_statuses "
        "qos_class ephemeral_container_statuses resize",
    ("core", "PodCondition"): "observed_generation type status last_probe_time last_transition_time "
        "reason message",
    ("core", "HostIp"): "ip",
    ("core", "PodIp"): "ip",
    ("core", "ContainerStatus"): "name state last_state ready restart_count image image_id "
        "container_id started allocated_resources resources",
    ("core", "ContainerState"): "waiting running terminated",
    ("core", "ContainerStateWaiting"): "reason message",
    ("core", "ContainerStateRunning"): "started_at",
    ("core", "ContainerStateTerminated"): "exit_code signal reason message started_at finished_at "
        "container_id",
}
FILES = {
    "meta": "apimachinery/pkg/apis/meta/v1/mod.rs",
    "resource": "apimachinery/pkg/api/resource/mod.rs",
    "core": "api/core/v1/mod.rs",
}


def source_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    lock = open(os.path.join(os.path.dirname(__file__), "..", "Cargo.lock")).read()
    version = re.search(r'name = "k8s-pb"\nversion = "([^"]+)"', lock).group(1)
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(os.path.join(home, "registry/src/*/k8s-pb-" + version))
    if not found:
        sys.exit(f"gen-wire: k8s-pb {version} is not in cargo's registry (cargo fetch first)")
    return found[0]


def fields_of(text, struct):
    m = re.search(r"\npub struct " + struct + r" \{\n(.*?)\n\}\n", text, re.S)
    if not m:
        sys.exit(f"gen-wire: no struct {struct}")
    body = re.sub(r"^\s*///.*\n", "", m.group(1) + "\n", flags=re.M)
    out = {}
    for chunk in body.split("#[prost(")[1:]:
        f = re.match(r"(.*?)\)\]\s*pub (r#)?(\w+):\s*(.*),\s*$", chunk, re.S)
        if not f:
            sys.exit(f"gen-wire: cannot read a field of {struct}: {chunk[:80]!r}")
        out[f.group(3)] = (f.group(1), " ".join(f.group(4).split()))
    return out


def local_type(ty):
    # super::super::...::X and in-module X become the local X; prost/core paths stay.
    ty = re.sub(r"(super::)+(\w+::)*(\w+)", r"\3", ty)
    return ty.replace(", >", ">").replace("< ", "<")


def main():
    out = io.StringIO()
    real, sys.stdout = sys.stdout, out
    try:
        generate()
    finally:
        sys.stdout = real
    # As `cargo fmt` leaves it (CI checks both).
    fmt = subprocess.run(["rustfmt", "--edition", "2021", "--emit", "stdout", "--quiet"],
                         input=out.getvalue(), capture_output=True, text=True, check=True)
    sys.stdout.write(fmt.stdout)


def generate():
    src = os.path.join(source_dir(), "src")
    texts = {k: open(os.path.join(src, v)).read() for k, v in FILES.items()}
    names = {s for _, s in KEEP}
    version = os.path.basename(os.path.dirname(src))
    print("//! Generated by scripts/gen-wire.py from " + version + ": do not edit by hand.")
    print("//! The protobuf messages of node and pod lists with only the fields")
    print("//! src/cluster/proto.rs converts, under the tags of the Kubernetes API. Decoding")
    print("//! skips every other field without allocating (a node's images, managedFields, a")
    print("//! container's env, probes and mounts).")
    print()
    print("#![allow(missing_docs, clippy::all)]")
    for (mod, struct), keep in KEEP.items():
        have = fields_of(texts[mod], struct)
        print()
        print("#[derive(Clone, PartialEq, ::prost::Message)]")
        print(f"pub struct {struct} {{")
        for name in keep.split():
            if name not in have:
                sys.exit(f"gen-wire: {struct} has no field {name}")
            attr, ty = have[name]
            ty = local_type(ty)
            for t in re.findall(r"\b[A-Z]\w*\b", ty):
                if t not in names | {"Option", "String", "Vec", "BTreeMap"}:
                    sys.exit(f"gen-wire: {struct}.{name} needs {t}, which is not kept")
            raw = "r#" if name in ("type", "continue") else ""
            print(f"    #[prost({attr})]")
            print(f"    pub {raw}{name}: {ty},")
        print("}")


main()
