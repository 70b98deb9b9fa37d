//! Dynamic shell completion, kubectl style: the words typed so far in, what to offer out.
//!
//! kubectl (1.26+) completes `kubectl ds <TAB>` by running the executable `kubectl_complete-ds`
//! with the plugin's words, the last one being the word under the cursor (empty for a new word),
//! and reads Cobra's `__complete` format: one candidate per line, an optional tab and
//! description, then a last line `:<directive>` (mirrors kubectl pkg/cmd/plugin/
//! plugin_completion.go `getPluginCompletions`). `kubectl_complete-ds` execs
//! `kubectl-ds __complete WORDS...`.
//!
//! This module is pure: it walks the clap definition (so subcommands and flags can never drift
//! from `--help`) and either answers at once or names the cluster objects to list. Listing them
//! is `commands::complete`'s job.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

use clap::builder::ValueHint;
use clap::{Arg, ArgAction, Command};

/// A completion request found on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The plugin's words; the last is the word under the cursor.
    pub words: Vec<String>,
    /// Cobra's `__completeNoDesc` asks for bare candidates.
    pub descriptions: bool,
}

/// `kubectl-ds __complete WORDS...` (or `__completeNoDesc`), or the binary itself installed
/// under the name `kubectl_complete-ds`. Checked before clap parses anything, so a keystroke
/// costs no more than the lookup it needs.
pub fn request_from(args: impl IntoIterator<Item = OsString>) -> Option<Request> {
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let argv0 = args.next()?;
    let program = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if program.starts_with("kubectl_complete-") {
        return Some(Request {
            words: args.collect(),
            descriptions: true,
        });
    }
    let descriptions = match args.next()?.as_str() {
        "__complete" => true,
        "__completeNoDesc" => false,
        _ => return None,
    };
    Some(Request {
        words: args.collect(),
        descriptions,
    })
}

/// Cobra's `ShellCompDirective` bits (cobra completions.go), printed as `:<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive(pub u8);

impl Directive {
    /// Let the shell complete file names when no candidate matches.
    pub const DEFAULT: Directive = Directive(0);
    /// Offer only the candidates, never file names.
    pub const NO_FILE_COMP: Directive = Directive(4);
    /// Complete directory names only.
    pub const FILTER_DIRS: Directive = Directive(16);
}

/// One completion choice; the description is shown by zsh and fish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub description: Option<String>,
}

impl Candidate {
    pub fn plain(value: impl Into<String>) -> Candidate {
        Candidate {
            value: value.into(),
            description: None,
        }
    }

    fn described(value: impl Into<String>, description: Option<String>) -> Candidate {
        Candidate {
            value: value.into(),
            description: description.filter(|d| !d.is_empty()),
        }
    }
}

/// The answer: candidates (already filtered by the prefix typed) and a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completions {
    pub candidates: Vec<Candidate>,
    pub directive: Directive,
}

impl Completions {
    /// Nothing to offer, and no file names either (also the answer to every error).
    pub fn none() -> Completions {
        Completions {
            candidates: Vec::new(),
            directive: Directive::NO_FILE_COMP,
        }
    }

    fn files(directive: Directive) -> Completions {
        Completions {
            candidates: Vec::new(),
            directive,
        }
    }

    /// Keeps the names starting with `prefix`, sorted and without duplicates.
    pub fn from_names(names: Vec<String>, prefix: &str) -> Completions {
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names.dedup();
        Completions {
            candidates: names.into_iter().map(Candidate::plain).collect(),
            directive: Directive::NO_FILE_COMP,
        }
    }

    /// Writes Cobra's format. `descriptions: false` is Cobra's `__completeNoDesc`.
    pub fn write_to(&self, out: &mut impl Write, descriptions: bool) -> io::Result<()> {
        for c in &self.candidates {
            match (&c.description, descriptions) {
                (Some(d), true) => writeln!(out, "{}\t{}", c.value, one_line(d))?,
                _ => writeln!(out, "{}", c.value)?,
            }
        }
        writeln!(out, ":{}", self.directive.0)
    }
}

/// A description must not break the line protocol.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    first.trim_end_matches('.').replace('\t', " ")
}

/// Cluster (or kubeconfig) objects whose names complete a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// DaemonSets of the namespace (`-n`, else the context's).
    DaemonSets,
    Namespaces,
    Nodes,
    /// Names from the kubeconfig, no request sent.
    Contexts,
    Clusters,
    Users,
}

/// Which argument ids name objects to look up. Tested against the CLI definition so a renamed
/// field fails a test instead of silently losing completion.
pub const LOOKUPS: &[(&str, Lookup)] = &[
    ("name", Lookup::DaemonSets),
    ("namespace", Lookup::Namespaces),
    ("nodes", Lookup::Nodes),
    // `why NODE`
    ("node", Lookup::Nodes),
    ("context", Lookup::Contexts),
    ("cluster", Lookup::Clusters),
    ("user", Lookup::Users),
];

fn lookup_for(arg: &Arg) -> Option<Lookup> {
    LOOKUPS
        .iter()
        .find(|(id, _)| arg.get_id().as_str() == *id)
        .map(|(_, l)| *l)
}

/// What to do with the words typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The answer, computed from the command line definition alone.
    Done(Completions),
    /// List these objects, then keep the names starting with `prefix`. `global_args` are the
    /// kubeconfig/namespace flags typed so far (`--context=x`), to reach the same cluster
    /// the command would.
    Lookup {
        what: Lookup,
        prefix: String,
        global_args: Vec<String>,
    },
}

/// The state of the walk over the words before the one being completed.
struct Walk<'a> {
    cmd: &'a Command,
    /// Flags given so far (arg ids), to stop offering flags that cannot repeat.
    used: Vec<String>,
    /// Global flags as typed, normalized to `--long=value` / `--long`.
    global_args: Vec<String>,
    positionals: usize,
    /// After `--`: every word is positional.
    only_positionals: bool,
    /// An unknown subcommand or flag: offer nothing rather than guess.
    lost: bool,
}

/// Plans the completion of `words` (the last one is the word under the cursor) against the
/// built command line definition `root` (call `Command::build` first).
pub fn plan(root: &Command, words: &[String]) -> Plan {
    let (to_complete, typed) = match words.split_last() {
        Some((last, rest)) => (last.as_str(), rest),
        None => ("", &[][..]),
    };
    let mut walk = Walk {
        cmd: root,
        used: Vec::new(),
        global_args: Vec::new(),
        positionals: 0,
        only_positionals: false,
        lost: false,
    };
    let mut pending: Option<&Arg> = None;
    for word in typed {
        if let Some(arg) = pending.take() {
            walk.record(arg, Some(word));
            continue;
        }
        pending = walk.step(word);
        if walk.lost {
            return Plan::Done(Completions::none());
        }
    }
    if let Some(arg) = pending {
        return walk.complete_value(arg, to_complete);
    }
    if !walk.only_positionals && to_complete.starts_with('-') {
        if let Some((flag, value)) = to_complete.split_once('=') {
            // `--flag=val` or `-n=val`: Cobra completes the value alone and the shell scripts
            // keep the `--flag=` part.
            return match walk.find_flag(flag) {
                Some(arg) if arg.get_action().takes_values() => walk.complete_value(arg, value),
                _ => Plan::Done(Completions::none()),
            };
        }
        return Plan::Done(walk.flag_names(to_complete));
    }
    walk.complete_positional(to_complete)
}

impl<'a> Walk<'a> {
    /// Consumes one typed word; returns the flag whose value is the next word, if any.
    fn step(&mut self, word: &str) -> Option<&'a Arg> {
        if self.only_positionals {
            self.positionals += 1;
            return None;
        }
        if word == "--" {
            self.only_positionals = true;
            return None;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let Some(arg) = self.find_long(name) else {
                self.lost = true;
                return None;
            };
            return self.flag(arg, value);
        }
        if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            return self.shorts(shorts);
        }
        self.word(word);
        None
    }

    /// `-n`, `-nkube-system`, `-n=kube-system`, `-yA`.
    fn shorts(&mut self, shorts: &str) -> Option<&'a Arg> {
        for (i, c) in shorts.char_indices() {
            let Some(arg) = self.find_short(c) else {
                self.lost = true;
                return None;
            };
            if arg.get_action().takes_values() {
                let rest = &shorts[i + c.len_utf8()..];
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                let value = (!rest.is_empty()).then_some(rest);
                return self.flag(arg, value);
            }
            self.record(arg, None);
        }
        None
    }

    fn flag(&mut self, arg: &'a Arg, value: Option<&str>) -> Option<&'a Arg> {
        if value.is_some() || !needs_value(arg) {
            self.record(arg, value);
            return None;
        }
        Some(arg)
    }

    /// A word that is neither a flag nor a flag's value: a subcommand or a positional.
    fn word(&mut self, word: &str) {
        if self.cmd.has_subcommands() && self.positionals == 0 {
            let sub = self
                .cmd
                .get_subcommands()
                .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word));
            match sub {
                Some(sub) => {
                    self.cmd = sub;
                    self.positionals = 0;
                }
                None => self.lost = true,
            }
            return;
        }
        self.positionals += 1;
    }

    fn record(&mut self, arg: &Arg, value: Option<&str>) {
        let id = arg.get_id().as_str().to_string();
        let is_info = matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        );
        if arg.is_global_set() && !is_info {
            if let Some(long) = arg.get_long() {
                self.global_args.push(match value {
                    Some(v) => format!("--{long}={v}"),
                    None => format!("--{long}"),
                });
            }
        }
        self.used.push(id);
    }

    fn find_long(&self, name: &str) -> Option<&'a Arg> {
        self.cmd.get_arguments().find(|a| {
            a.get_long() == Some(name)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name))
        })
    }

    fn find_short(&self, c: char) -> Option<&'a Arg> {
        self.cmd.get_arguments().find(|a| {
            a.get_short() == Some(c)
                || a.get_all_short_aliases()
                    .is_some_and(|aliases| aliases.contains(&c))
        })
    }

    fn find_flag(&self, flag: &str) -> Option<&'a Arg> {
        if let Some(long) = flag.strip_prefix("--") {
            return self.find_long(long);
        }
        let mut chars = flag.strip_prefix('-')?.chars();
        // `-abn=x` completes the value of the last short flag (cobra issue 1257).
        self.find_short(chars.next_back()?)
    }

    /// `--long\thelp` and `-s\thelp` for each flag of the current command that matches the
    /// prefix and may still be given (as Cobra: a set flag is offered again only if repeatable).
    fn flag_names(&self, prefix: &str) -> Completions {
        let mut candidates = Vec::new();
        for arg in self.cmd.get_arguments() {
            if arg.is_positional() || arg.is_hide_set() {
                continue;
            }
            let repeatable = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
            if !repeatable && self.used.iter().any(|u| u == arg.get_id().as_str()) {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string());
            if let Some(long) = arg.get_long() {
                let name = format!("--{long}");
                if name.starts_with(prefix) {
                    candidates.push(Candidate::described(name, help.clone()));
                }
            }
            if let Some(short) = arg.get_short() {
                let name = format!("-{short}");
                if name.starts_with(prefix) {
                    candidates.push(Candidate::described(name, help));
                }
            }
        }
        Completions {
            candidates,
            directive: Directive::NO_FILE_COMP,
        }
    }

    fn complete_value(&self, arg: &Arg, prefix: &str) -> Plan {
        let possible: Vec<Candidate> = arg
            .get_possible_values()
            .into_iter()
            .filter(|v| !v.is_hide_set() && v.get_name().starts_with(prefix))
            .map(|v| Candidate::described(v.get_name(), v.get_help().map(|h| h.to_string())))
            .collect();
        if !possible.is_empty() || !arg.get_possible_values().is_empty() {
            return Plan::Done(Completions {
                candidates: possible,
                directive: Directive::NO_FILE_COMP,
            });
        }
        if let Some(what) = lookup_for(arg) {
            return Plan::Lookup {
                what,
                prefix: prefix.to_string(),
                global_args: self.global_args.clone(),
            };
        }
        Plan::Done(match arg.get_value_hint() {
            ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => {
                Completions::files(Directive::DEFAULT)
            }
            ValueHint::DirPath => Completions::files(Directive::FILTER_DIRS),
            _ => Completions::none(),
        })
    }

    /// The next subcommand, or the value of the next positional argument.
    fn complete_positional(&self, prefix: &str) -> Plan {
        if self.cmd.has_subcommands() {
            if self.positionals > 0 {
                return Plan::Done(Completions::none());
            }
            let candidates = self
                .cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name().starts_with(prefix))
                .map(|s| Candidate::described(s.get_name(), s.get_about().map(|a| a.to_string())))
                .collect();
            return Plan::Done(Completions {
                candidates,
                directive: Directive::NO_FILE_COMP,
            });
        }
        let mut positionals: Vec<&Arg> = self.cmd.get_positionals().collect();
        positionals.sort_by_key(|a| a.get_index());
        match positionals.get(self.positionals) {
            Some(arg) => self.complete_value(arg, prefix),
            None => Plan::Done(Completions::none()),
        }
    }
}

/// A flag whose value must follow (kubectl/Cobra: optional values need `--flag=value`).
fn needs_value(arg: &Arg) -> bool {
    arg.get_action().takes_values() && arg.get_num_args().is_none_or(|r| r.min_values() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    fn root() -> Command {
        let mut cmd = Cli::command();
        cmd.build();
        cmd
    }

    fn plan_of(words: &[&str]) -> Plan {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        plan(&root(), &words)
    }

    fn values(words: &[&str]) -> (Vec<String>, u8) {
        match plan_of(words) {
            Plan::Done(c) => (
                c.candidates.into_iter().map(|c| c.value).collect(),
                c.directive.0,
            ),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn lookup(words: &[&str]) -> (Lookup, String, Vec<String>) {
        match plan_of(words) {
            Plan::Lookup {
                what,
                prefix,
                global_args,
            } => (what, prefix, global_args),
            other => panic!("expected a lookup, got {other:?}"),
        }
    }

    #[test]
    fn subcommands_by_prefix() {
        assert_eq!(values(&["ex"]), (vec!["explain".to_string()], 4));
        let (all, _) = values(&[""]);
        for sub in [
            "explain",
            "rollout-preview",
            "status",
            "orphan",
            "adopt",
            "migrate",
            "completion",
            "why",
            "endpoints",
        ] {
            assert!(all.contains(&sub.to_string()), "{sub} missing: {all:?}");
        }
        assert!(all.iter().all(|s| !s.starts_with("__")));
        // No words at all (kubectl never sends that, but be safe).
        assert!(values(&[]).0.contains(&"explain".to_string()));
    }

    #[test]
    fn subcommands_after_global_flags() {
        assert_eq!(
            values(&["-n", "kube-system", "--context=c", "or"]).0,
            vec!["orphan"]
        );
    }

    #[test]
    fn daemonset_names_with_the_flags_typed() {
        assert_eq!(
            lookup(&["explain", ""]),
            (Lookup::DaemonSets, String::new(), vec![])
        );
        assert_eq!(
            lookup(&[
                "--kubeconfig",
                "/k",
                "orphan",
                "-n",
                "kube-system",
                "--yes",
                "kube-"
            ]),
            (
                Lookup::DaemonSets,
                "kube-".into(),
                vec!["--kubeconfig=/k".into(), "--namespace=kube-system".into()]
            )
        );
        assert_eq!(
            lookup(&["migrate", "-nkube-system", "k"]).2,
            vec!["--namespace=kube-system".to_string()]
        );
        // The one positional is taken: nothing more.
        assert_eq!(values(&["explain", "a", ""]), (vec![], 4));
    }

    #[test]
    fn flag_values() {
        assert_eq!(lookup(&["explain", "-n", ""]).0, Lookup::Namespaces);
        assert_eq!(lookup(&["explain", "x", "--node", "w"]).0, Lookup::Nodes);
        assert_eq!(lookup(&["--context", ""]).0, Lookup::Contexts);
        let (what, prefix, _) = lookup(&["explain", "--node=wor"]);
        assert_eq!((what, prefix.as_str()), (Lookup::Nodes, "wor"));
        assert_eq!(lookup(&["explain", "-n=kube"]).1, "kube");
        assert_eq!(
            values(&["explain", "-o", ""]).0[..5],
            ["table", "wide", "json", "yaml", "name"]
        );
        assert_eq!(values(&["rollout-preview", "x", "-o", ""]).0.len(), 10);
        assert_eq!(values(&["orphan", "x", "-o", ""]).0.len(), 4);
        assert_eq!(
            values(&["explain", "-o", "j"]).0,
            vec!["json", "jsonpath=", "jsonpath-file=", "jsonpath-as-json="]
        );
        assert_eq!(values(&["orphan", "x", "--dry-run=s"]).0, vec!["server"]);
        assert_eq!(values(&["completion", "z"]).0, vec!["zsh"]);
        // Files: let the shell complete file names.
        assert_eq!(values(&["adopt", "-f", ""]), (vec![], 0));
        assert_eq!(values(&["--kubeconfig", ""]), (vec![], 0));
        // Free text: nothing, and no file names.
        assert_eq!(values(&["explain", "-l", ""]), (vec![], 4));
    }

    #[test]
    fn flag_names_from_the_definition() {
        let (flags, directive) = values(&["explain", "--no"]);
        assert_eq!(flags, vec!["--node", "--node-selector", "--no-headers"]);
        assert_eq!(directive, 4);
        let (flags, _) = values(&["explain", "-"]);
        for f in ["--namespace", "-n", "--context", "-o", "--help"] {
            assert!(flags.contains(&f.to_string()), "{f} missing: {flags:?}");
        }
        // Given once, not offered again; repeatable flags are.
        let (flags, _) = values(&["explain", "-o", "json", "--node", "a", "--"]);
        assert!(!flags.contains(&"--output".to_string()));
        assert!(flags.contains(&"--node".to_string()));
        // Descriptions come from the doc comments.
        match plan_of(&["explain", "--node-s"]) {
            Plan::Done(c) => assert_eq!(
                c.candidates[0].description.as_deref(),
                Some("Only nodes matching this label selector (e.g. pool=gpu,zone!=a)")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_words_offer_nothing() {
        assert_eq!(values(&["nope", ""]), (vec![], 4));
        assert_eq!(values(&["explain", "--bogus", ""]), (vec![], 4));
        assert_eq!(values(&["explain", "--bogus=", ""]), (vec![], 4));
        assert_eq!(values(&["explain", "--bogus=x"]), (vec![], 4));
    }

    #[test]
    fn after_double_dash_only_positionals() {
        assert_eq!(lookup(&["explain", "--", "-x"]).1, "-x");
    }

    #[test]
    fn why_completes_node_names_and_endpoints_daemon_sets() {
        assert_eq!(
            lookup(&["why", "wor"]),
            (Lookup::Nodes, "wor".into(), vec![])
        );
        assert_eq!(
            lookup(&["endpoints", "-n", "mon", ""]),
            (
                Lookup::DaemonSets,
                String::new(),
                vec!["--namespace=mon".into()]
            )
        );
        // --assume-node takes a file: the shell completes file names.
        assert_eq!(values(&["why", "--assume-node", ""]), (vec![], 0));
    }

    #[test]
    fn every_lookup_names_an_argument() {
        let root = root();
        let mut ids = Vec::new();
        let mut stack = vec![&root];
        while let Some(cmd) = stack.pop() {
            ids.extend(cmd.get_arguments().map(|a| a.get_id().as_str().to_string()));
            stack.extend(cmd.get_subcommands());
        }
        for (id, _) in LOOKUPS {
            assert!(ids.iter().any(|i| i == id), "no argument {id:?} in the CLI");
        }
    }

    #[test]
    fn requests() {
        let req = |args: &[&str]| request_from(args.iter().map(OsString::from));
        assert_eq!(req(&["kubectl-ds", "explain"]), None);
        assert_eq!(req(&["kubectl-ds"]), None);
        assert_eq!(
            req(&["/bin/kubectl-ds", "__complete", "explain", ""]),
            Some(Request {
                words: vec!["explain".into(), "".into()],
                descriptions: true
            })
        );
        assert!(
            !req(&["kubectl-ds", "__completeNoDesc", ""])
                .unwrap()
                .descriptions
        );
        assert_eq!(
            req(&["/usr/local/bin/kubectl_complete-ds", "ex"])
                .unwrap()
                .words,
            vec!["ex"]
        );
    }

    #[test]
    fn cobra_format() {
        let c = Completions {
            candidates: vec![
                Candidate::described("explain", Some("Explain.\nMore".into())),
                Candidate::plain("x"),
            ],
            directive: Directive::NO_FILE_COMP,
        };
        let mut out = Vec::new();
        c.write_to(&mut out, true).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "explain\tExplain\nx\n:4\n");
        let mut out = Vec::new();
        c.write_to(&mut out, false).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "explain\nx\n:4\n");
    }

    #[test]
    fn names_filtered_sorted_unique() {
        let c =
            Completions::from_names(vec!["b".into(), "a2".into(), "a1".into(), "a1".into()], "a");
        assert_eq!(
            c.candidates
                .iter()
                .map(|c| c.value.as_str())
                .collect::<Vec<_>>(),
            vec!["a1", "a2"]
        );
    }
}
