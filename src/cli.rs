//! The command line: kubectl's flag names and conventions, parsed once by clap.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (rollout-preview --exit-code: nothing would roll)
  1  rollout-preview --exit-code: something would roll
  2  bad command line, file or manifest
  3  kubeconfig, context or apiserver connection problem (incl. --request-timeout)
  4  object not found
  5  refused by the apiserver (RBAC, admission, precondition conflict)
  6  refused by a safety check or declined at the prompt: nothing changed
  7  a mutation ran but its end state could not be verified
  8  migrate: the old DaemonSet reappeared (recreated by its owner)
  9  explain --exit-code: a node has a problem
  10 any other error
  11 status --timeout: the rollout was not done in time
  12 status --fail-on-stuck: the rollout is stuck
  130 interrupted (Ctrl-C)";

/// Explain DaemonSets node by node, preview their rollouts, and replace them without restarts.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl ds",
    bin_name = "kubectl ds",
    version,
    about = "Explain DaemonSets node by node, preview their rollouts, and replace them safely.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// The name usage lines print: `kubectl ds` when run as the plugin (an executable named
/// `kubectl-ds`, as kubectl's plugin lookup and krew name it: kubectl execs it with its path as
/// argv[0]), else the binary's own name from argv[0] (a renamed copy or a symlink).
pub fn display_name(argv0: Option<&std::ffi::OsStr>) -> String {
    let stem = argv0
        .and_then(|a| std::path::Path::new(a).file_stem())
        .map(|s| s.to_string_lossy().into_owned());
    match stem.as_deref() {
        None | Some("") | Some("kubectl-ds") => "kubectl ds".into(),
        Some(other) => other.into(),
    }
}

/// Parses the process's arguments, usage lines named by [`display_name`].
pub fn try_parse() -> Result<Cli, clap::Error> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name = display_name(args.first().map(|a| a.as_os_str()));
    let mut cmd = Cli::command().bin_name(name);
    let matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// kubectl's global flags (`kubectl options`), accepted after any subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalFlags {
    /// Path to the kubeconfig file to use (this file only, as kubectl).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// List across all namespaces (explain without NAME).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Username to impersonate.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// UID to impersonate.
    #[arg(long = "as-uid", global = true, value_name = "UID")]
    pub as_uid: Option<String>,
    /// Bearer token for the apiserver.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The address of the apiserver.
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Do not check the apiserver's certificate (insecure).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Opt out of response compression for all requests to the server (as kubectl; also the
    /// kubeconfig cluster's `disable-compression: true`).
    #[arg(long, global = true)]
    pub disable_compression: bool,
    /// Time to wait for each request: 0 (no limit), or a duration such as 5s, 2m, 1h.
    #[arg(long, global = true, default_value = "0", value_name = "DURATION")]
    pub request_timeout: String,
    /// When to colour output: auto (tty and no NO_COLOR), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Output formats, as kubectl's `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

/// `--dry-run` values, as kubectl's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Print the plan only; send nothing that mutates.
    Client,
    /// Send every mutation with dryRun=All: the apiserver validates, nothing persists.
    Server,
    /// Not a dry run.
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain, node by node, why a DaemonSet pod is present, missing, pending or misplaced.
    #[command(after_help = concat!("Examples:
  # Why does DESIRED differ from the number of nodes?
  kubectl ds explain node-exporter -n monitoring

  # Only the nodes of one pool, with every reason and the pod names
  kubectl ds explain fluent-bit -l pool=gpu -o wide

  # One line per DaemonSet in every namespace
  kubectl ds explain -A

  # Follow its rollout live, node by node (the same as kubectl ds status)
  kubectl ds explain node-exporter -n monitoring --watch

  # From a support bundle, no cluster needed
  kubectl get ds,nodes,pods,controllerrevisions,events -A -o yaml > bundle.yaml
  kubectl ds explain fluent-bit -n logging -f bundle.yaml -o json

  # Gate a pipeline: exit 9 and list the nodes when any node has a problem
  kubectl ds explain agent --problems --exit-code -L topology.kubernetes.io/zone

  # The pending nodes' names, as kubectl jsonpath
  kubectl ds explain agent -o jsonpath='{.nodes[?(@.state==\"Pending\")].name}'

", "Exit codes: 0 ok, 2 bad input, 3 connection, 4 not found, 5 forbidden, 9 a node has a problem
(with --exit-code), 10 other."))]
    Explain(ExplainArgs),

    /// Preview what a template change would roll out, node by node, before it is applied.
    #[command(
        name = "rollout-preview",
        after_help = "Examples:
  # What would a new manifest roll out?
  kubectl ds rollout-preview node-exporter -f node-exporter.yaml

  # What would an image bump do? Exit 1 if anything would roll (as kubectl diff).
  kubectl ds rollout-preview fluent-bit --image fluent-bit=fluent/fluent-bit:3.1 --exit-code

Exit codes: 0 nothing would roll (with --exit-code) or ok, 1 something would roll (with --exit-code),
2 bad input, 3 connection, 4 not found, 5 forbidden, 10 other."
    )]
    RolloutPreview(RolloutPreviewArgs),

    /// Delete a DaemonSet but keep its pods and ControllerRevisions running (orphaning delete).
    #[command(after_help = "Examples:
  # Show the plan only
  kubectl ds orphan kube-proxy -n kube-system

  # Do it, keeping a backup manifest
  kubectl ds orphan kube-proxy -n kube-system --backup kube-proxy.yaml --yes

Exit codes: 0 done, 2 bad input, 4 not found, 5 forbidden, 6 refused by a check, declined or
locked by another run (nothing changed), 7 could not verify the end state, 10 other.")]
    Orphan(OrphanArgs),

    /// Create a DaemonSet that takes over orphaned pods without restarting them.
    #[command(after_help = "Examples:
  # Check the new manifest against the orphaned pods (changes nothing)
  kubectl ds adopt -f kube-proxy-v2.yaml -n kube-system

  # Create it and verify every pod was adopted with its UID unchanged
  kubectl ds adopt -f kube-proxy-v2.yaml -n kube-system --from-backup kube-proxy.yaml --yes

Exit codes: 0 done, 2 bad input, 5 forbidden, 6 refused by a check or declined (nothing changed),
7 could not verify the end state, 10 other.")]
    Adopt(AdoptArgs),

    /// Replace a DaemonSet (new name, new selector) in one resumable step: orphan, then adopt.
    #[command(after_help = "Examples:
  # Plan only: every pre-flight check runs, nothing changes
  kubectl ds migrate kube-proxy -f kube-proxy-v2.yaml -n kube-system

  # Do it; if interrupted, run the same command again to finish
  kubectl ds migrate kube-proxy -f kube-proxy-v2.yaml -n kube-system --yes

Exit codes: 0 done, 2 bad input, 4 not found, 5 forbidden, 6 refused by a check, declined or
locked by another run (nothing changed), 7 could not verify the end state, 8 done but the old
DaemonSet reappeared (recreated by its owner), 10 other.")]
    Migrate(MigrateArgs),

    /// For one node, every DaemonSet: should it run here, does it, and why not.
    #[command(after_help = "Examples:
  # Why does this new node have no log shipper?
  kubectl ds why worker-17

  # Only the DaemonSets of one namespace, every reason
  kubectl ds why worker-17 -n monitoring -o wide

  # What would run on a node of this shape (the node does not exist yet)?
  kubectl ds why --assume-node gpu-node.yaml -o json

Exit codes: 0 ok, 2 bad input, 3 connection, 4 node not found, 5 forbidden, 10 other.")]
    Why(WhyArgs),

    /// For each node: a DaemonSet's pod, pod IP, host IP, host ports, readiness and Services.
    #[command(after_help = "Examples:
  # How do clients reach node-exporter on each node?
  kubectl ds endpoints node-exporter -n monitoring

  # Every Service membership as JSON
  kubectl ds endpoints node-exporter -n monitoring -o json

Exit codes: 0 ok, 2 bad input, 3 connection, 4 not found, 5 forbidden, 10 other.")]
    Endpoints(EndpointsArgs),

    /// Follow a DaemonSet's rollout live, node by node, until it is done; say why it is stuck.
    #[command(after_help = "Examples:
  # Follow a rollout after kubectl apply (a screen on a terminal, one line per change otherwise)
  kubectl ds status fluent-bit -n logging

  # In CI: fail if not done in 10 minutes, or as soon as it is stuck for 2 minutes
  kubectl ds status fluent-bit -n logging --timeout 10m --stuck-after 2m --fail-on-stuck

  # One JSON object per node change, then a summary
  kubectl ds status fluent-bit -n logging -o json

Exit codes: 0 done, 2 bad input, 3 connection, 4 not found, 5 forbidden, 10 other,
11 not done before --timeout, 12 stuck (with --fail-on-stuck), 130 interrupted.")]
    Status(StatusArgs),

    /// Print a shell completion script for kubectl-ds run directly (bash, zsh or fish).
    #[command(
        after_help = "`kubectl ds <TAB>` is completed by kubectl itself (1.26+, with kubectl's completion
enabled): it runs kubectl_complete-ds, shipped beside kubectl-ds, which must be on PATH. These
scripts complete the kubectl-ds executable when run directly.

Examples:
  # kubectl ds <TAB>, for a krew install (once)
  cp \"$(dirname \"$(readlink -f \"$(command -v kubectl-ds)\")\")/kubectl_complete-ds\" ~/.krew/bin/

  # bash
  source <(kubectl ds completion bash)

  # zsh
  kubectl ds completion zsh > \"${fpath[1]}/_kubectl-ds\"

  # fish
  kubectl ds completion fish > ~/.config/fish/completions/kubectl-ds.fish

Exit codes: 0 ok, 2 bad input."
    )]
    Completion(CompletionArgs),
}

impl Command {
    /// A command that reads the cluster once, prints, and ends: it runs on one thread (a
    /// current-thread runtime). On a multi-thread runtime the HTTP connection's task ran on a
    /// worker that the decoding thread woke for every few kilobytes: futex, epoll and context
    /// switches were about a sixth of `explain`'s CPU at 5,000 nodes (perf), for no overlap
    /// worth having (the worker's own work was under 2 %). The workflows and `status` keep two
    /// workers: a lease renewer and watches must run while the main task waits on a prompt or
    /// works.
    pub fn reads_once(&self) -> bool {
        match self {
            Command::Explain(args) => !args.watch,
            Command::RolloutPreview(_)
            | Command::Why(_)
            | Command::Endpoints(_)
            | Command::Completion(_) => true,
            Command::Orphan(_) | Command::Adopt(_) | Command::Migrate(_) | Command::Status(_) => {
                false
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The DaemonSet. Without it: one line per DaemonSet in the namespace (or all with -A).
    pub name: Option<String>,
    /// Only these nodes (repeatable).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Only nodes matching this label selector (e.g. pool=gpu,zone!=a).
    #[arg(short = 'l', long = "node-selector", value_name = "SELECTOR")]
    pub node_selector: Option<String>,
    /// Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE, jsonpath-file=FILE,
    /// jsonpath-as-json=TEMPLATE, custom-columns=SPEC, custom-columns-file=FILE (as kubectl get).
    #[arg(short = 'o', long, default_value = "table", value_name = "FORMAT", value_parser = OutputFormatParser)]
    pub output: String,
    /// Explain from a saved List (kubectl get ds,nodes,pods,controllerrevisions,events -o yaml).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub print: PrintFlags,
    /// Exit 9 when a node that should run a pod lacks an available current one (or runs one
    /// it should not): a pipeline or cron gate.
    #[arg(long)]
    pub exit_code: bool,
    /// Show only the nodes with a problem (not Running and not NotEligible).
    #[arg(long)]
    pub problems: bool,
    /// With one --node: print the DaemonSet manifest with the suggested template fixes for that
    /// node applied (feed it to rollout-preview -f, then kubectl apply -f).
    #[arg(long, requires = "nodes")]
    pub fix: bool,
    /// Follow the DaemonSet's rollout live: the same as `kubectl ds status NAME`.
    #[arg(short = 'w', long, conflicts_with_all = ["file", "nodes", "node_selector"])]
    pub watch: bool,
}

/// `-o` for the list printers: any text (resolved by `render::printer::Format::parse`, which
/// reads the `-file` forms), with kubectl's format names offered to completion and help.
#[derive(Debug, Clone, Copy)]
pub struct OutputFormatParser;

impl clap::builder::TypedValueParser for OutputFormatParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        let names = [
            "table",
            "wide",
            "json",
            "yaml",
            "name",
            "jsonpath=",
            "jsonpath-file=",
            "jsonpath-as-json=",
            "custom-columns=",
            "custom-columns-file=",
        ];
        Some(Box::new(
            names.into_iter().map(clap::builder::PossibleValue::new),
        ))
    }
}

/// kubectl get's printing flags, for the commands that print lists.
#[derive(Debug, Args, Clone, Default)]
pub struct PrintFlags {
    /// Print no header lines (table, wide and custom-columns).
    #[arg(long)]
    pub no_headers: bool,
    /// Sort the rows by this JSONPath over each row's JSON (e.g. .name, '{.pod.restarts}').
    #[arg(long, value_name = "JSONPATH")]
    pub sort_by: Option<String>,
    /// Node labels to show as columns (e.g. -L topology.kubernetes.io/zone,pool); repeatable.
    #[arg(short = 'L', long = "label-columns", value_name = "KEY,...")]
    pub label_columns: Vec<String>,
    /// Show each node's labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The DaemonSet to follow.
    pub name: String,
    /// Output: table (a screen on a terminal, else one line per change) or json (one
    /// NodeChange object per line, then a StatusSummary).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Give up when not done after this long (exit 11); 0 waits forever.
    #[arg(long, default_value = "0", value_name = "DURATION")]
    pub timeout: String,
    /// No progress for this long is "stuck": say why (and exit 12 with --fail-on-stuck).
    #[arg(long, default_value = "2m", value_name = "DURATION")]
    pub stuck_after: String,
    /// Exit 12 as soon as the rollout is stuck (for CI after kubectl apply).
    #[arg(long)]
    pub fail_on_stuck: bool,
}

#[derive(Debug, Args)]
pub struct RolloutPreviewArgs {
    /// The DaemonSet to change.
    pub name: String,
    /// The new manifest (a DaemonSet), as for kubectl apply.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with = "images"
    )]
    pub file: Option<PathBuf>,
    /// Set a container's image: CONTAINER=IMAGE (repeatable), as kubectl set image.
    #[arg(long = "image", value_name = "CONTAINER=IMAGE")]
    pub images: Vec<String>,
    /// Output format: table, wide, json, yaml, name (the nodes that would change),
    /// jsonpath=TEMPLATE, jsonpath-file=FILE, custom-columns=SPEC, custom-columns-file=FILE.
    #[arg(short = 'o', long, default_value = "table", value_name = "FORMAT", value_parser = OutputFormatParser)]
    pub output: String,
    /// Sort the nodes by this JSONPath over each node's JSON (e.g. .name, .action).
    #[arg(long, value_name = "JSONPATH")]
    pub sort_by: Option<String>,
    /// Print no header line (custom-columns).
    #[arg(long)]
    pub no_headers: bool,
    /// Node labels to show as columns of the node table (e.g. -L topology.kubernetes.io/zone).
    #[arg(short = 'L', long = "label-columns", value_name = "KEY,...")]
    pub label_columns: Vec<String>,
    /// Show each node's labels as a column of the node table.
    #[arg(long)]
    pub show_labels: bool,
    /// Exit 1 when anything would roll, 0 when nothing would (as kubectl diff).
    #[arg(long)]
    pub exit_code: bool,
}

/// Flags shared by the mutating commands.
#[derive(Debug, Args, Clone)]
pub struct MutationFlags {
    /// Act without asking.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// none (act), server (send with dryRun=All: validated, nothing persists), client (plan only).
    #[arg(long = "dry-run", value_enum, num_args = 0..=1, default_missing_value = "client", default_value_t = DryRun::None)]
    pub dry_run: DryRun,
    /// How long to wait for the garbage collector and the DaemonSet controller.
    #[arg(long, default_value = "120s", value_name = "DURATION")]
    pub timeout: String,
    /// Output format for the plan and the result: table, json or yaml.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Overrides of the checks that guard an orphaning delete (orphan, migrate).
#[derive(Debug, Args, Clone, Default)]
pub struct OrphaningFlags {
    /// Proceed although another controller (ReplicaSet, ReplicationController, StatefulSet, Job,
    /// DaemonSet) selects pods that will be orphaned: it adopts them, and may delete them.
    #[arg(long)]
    pub allow_competing_controllers: bool,
    /// Proceed although Helm, Argo CD, Flux or an operator manages the DaemonSet (hand it over
    /// first: the plan prints the steps).
    #[arg(long)]
    pub allow_managed: bool,
}

#[derive(Debug, Args)]
pub struct OrphanArgs {
    /// The DaemonSet to delete while keeping its pods.
    pub name: String,
    /// Where to write the backup manifest (default: ./NAMESPACE-NAME.daemonset.yaml).
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    #[command(flatten)]
    pub orphaning: OrphaningFlags,
    #[command(flatten)]
    pub mutation: MutationFlags,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The new DaemonSet manifest.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The backup `orphan` wrote (or any manifest of the old DaemonSet): its selector and
    /// journal say which pods were its own, so those the new selector misses are listed.
    /// Without it, the controller-less pods matching the new selector are adopted, and
    /// controller-less DaemonSet pods sharing a label with the new template count as left behind.
    #[arg(long, value_name = "FILE")]
    pub from_backup: Option<PathBuf>,
    /// Proceed although some matching pods would be left behind (duplicates beside them).
    #[arg(long)]
    pub allow_leftover_pods: bool,
    /// Proceed although some adopted pods would be deleted (nodes the new DaemonSet no longer covers).
    #[arg(long)]
    pub allow_pod_deletion: bool,
    /// Proceed although adopted pods would be restarted (template differs).
    #[arg(long)]
    pub allow_restarts: bool,
    #[command(flatten)]
    pub mutation: MutationFlags,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The DaemonSet to replace.
    pub name: String,
    /// The new DaemonSet manifest (new name and/or selector).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Where to write the backup of the old DaemonSet (default: ./NAMESPACE-NAME.daemonset.yaml).
    #[arg(long, value_name = "FILE")]
    pub backup: Option<PathBuf>,
    /// Proceed although some matching pods would be left behind.
    #[arg(long)]
    pub allow_leftover_pods: bool,
    /// Proceed although some pods would be deleted.
    #[arg(long)]
    pub allow_pod_deletion: bool,
    /// Proceed although pods would be restarted.
    #[arg(long)]
    pub allow_restarts: bool,
    #[command(flatten)]
    pub orphaning: OrphaningFlags,
    /// After the migration, how long to watch for the old DaemonSet reappearing (recreated by
    /// its owner); 0 skips the watch.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub watch_recreate: String,
    #[command(flatten)]
    pub mutation: MutationFlags,
}

#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The node.
    #[arg(
        required_unless_present = "assume_node",
        conflicts_with = "assume_node"
    )]
    pub node: Option<String>,
    /// A Node manifest (labels, taints, allocatable): what would run on a node of this shape.
    #[arg(long, value_name = "FILE")]
    pub assume_node: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct EndpointsArgs {
    /// The DaemonSet.
    pub name: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_commands_that_read_once_run_on_one_thread() {
        let reads_once = |args: &[&str]| {
            let mut argv = vec!["kubectl-ds"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).unwrap().command.reads_once()
        };
        assert!(reads_once(&["explain", "agent"]));
        assert!(reads_once(&["explain", "-A"]));
        assert!(reads_once(&[
            "rollout-preview",
            "agent",
            "--image",
            "a=b:2"
        ]));
        assert!(reads_once(&["why", "node-1"]));
        assert!(reads_once(&["endpoints", "agent"]));
        // A lease renewer or watches run beside the main task: two workers.
        assert!(!reads_once(&["explain", "agent", "--watch"]));
        assert!(!reads_once(&["status", "agent"]));
        assert!(!reads_once(&["orphan", "agent"]));
        assert!(!reads_once(&["adopt", "-f", "new.yaml"]));
        assert!(!reads_once(&["migrate", "agent", "-f", "new.yaml"]));
    }
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_after_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-ds",
            "explain",
            "x",
            "-n",
            "kube-system",
            "--context",
            "c",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("kube-system"));
        assert_eq!(cli.global.context.as_deref(), Some("c"));
        match cli.command {
            Command::Explain(a) => assert_eq!(a.output, "json"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_names_the_plugin_or_the_binary() {
        use std::ffi::OsStr;
        for (argv0, name) in [
            ("/home/u/.krew/bin/kubectl-ds", "kubectl ds"),
            ("kubectl-ds.exe", "kubectl ds"),
            ("/usr/local/bin/kds", "kds"),
        ] {
            assert_eq!(display_name(Some(OsStr::new(argv0))), name);
        }
        assert_eq!(display_name(None), "kubectl ds");
    }

    #[test]
    fn dry_run_without_value_means_client() {
        let cli = Cli::try_parse_from(["kubectl-ds", "orphan", "x", "--dry-run"]).unwrap();
        match cli.command {
            Command::Orphan(a) => assert_eq!(a.mutation.dry_run, DryRun::Client),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["kubectl-ds", "orphan", "x", "--dry-run=server"]).unwrap();
        match cli.command {
            Command::Orphan(a) => assert_eq!(a.mutation.dry_run, DryRun::Server),
            other => panic!("{other:?}"),
        }
    }
}
