//! The release as krew users get it, offline: `scripts/release` builds the linux/amd64 archive and
//! renders the manifest; krew's own validator accepts the manifest (it installs every platform,
//! downloading from a local HTTP server); the real krew installs the plugin from the archive into
//! a throwaway KREW_ROOT; then `kubectl ds --help` runs through kubectl's plugin mechanism and
//! kubectl completes `kubectl ds ex` through `kubectl_complete-ds`, set up as the caveats say.
//!
//! Needs `scripts/install-release-tools` (scripts/test runs it): a missing tool fails the test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Where scripts/install-release-tools put krew, kubectl-krew and validate-krew-manifest.
fn release_tools() -> PathBuf {
    let out = Command::new(repo().join("scripts/install-release-tools"))
        .arg("bin-dir")
        .output()
        .expect("run scripts/install-release-tools");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn path_with(dirs: &[&Path]) -> String {
    let mut all: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    all.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(all)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn check(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Serves the files of `dir` over HTTP on 127.0.0.1, as a release page would (the validator
/// downloads each platform's `uri`). Returns the base URL.
fn serve(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = respond(stream, &dir);
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn respond(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let name = request
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("");
    match std::fs::read(dir.join(name)) {
        Ok(body) if !name.is_empty() => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)
        }
        _ => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

/// A dynamically linked ELF file names its loader in a PT_INTERP program header.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn krew_installs_the_release_archive_offline() {
    let tools = release_tools();
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    let url = serve(dist.clone());

    // 1. The release: archive, sums and both manifests for linux/amd64 (.krew.yaml rendered by
    //    krew-release-bot's own `template` command, built by install-release-tools).
    let bot = tools.join("krew-release-bot");
    assert!(
        bot.is_file(),
        "{} missing: run scripts/install-release-tools",
        bot.display()
    );
    let release = Command::new(repo().join("scripts/release"))
        .args(["--platform", "linux/amd64", "--url", &url, "--out"])
        .arg(&dist)
        .env("KREW_RELEASE_BOT", &bot)
        .output()
        .unwrap();
    let release_log = String::from_utf8_lossy(&release.stderr).into_owned();
    check("scripts/release", release);
    assert!(
        release_log.contains("manifest: ") && release_log.contains("/.krew.yaml (krew-release-bot"),
        "{release_log}"
    );
    let archive_name = format!("kubectl-ds_{}_linux_amd64.tar.gz", version());
    let archive = dist.join(&archive_name);
    let manifest = dist.join("ds.yaml");
    let listing = check(
        "tar -tzf",
        Command::new("tar")
            .arg("-tzf")
            .arg(&archive)
            .output()
            .unwrap(),
    );
    let mut files: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .filter(|l| !l.is_empty())
        .collect();
    files.sort();
    assert_eq!(files, vec!["LICENSE", "kubectl-ds", "kubectl_complete-ds"]);
    let sums =
        std::fs::read_to_string(dist.join(format!("kubectl-ds_{}_sha256sums.txt", version())))
            .unwrap();
    let sum = sums
        .lines()
        .find(|l| l.ends_with(&archive_name))
        .and_then(|l| l.split_whitespace().next())
        .expect("sum of the archive");
    let rendered = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        rendered.contains(&format!("sha256: \"{sum}\"")),
        "{rendered}"
    );
    assert!(rendered.contains(&format!("version: v{}", version())));
    assert!(!rendered.contains("{{"), "placeholder left:\n{rendered}");
    assert_eq!(rendered.matches("- selector:").count(), 1, "{rendered}");

    // The bot's rendering: the same platform, its uri and the sha256 it computed by
    // downloading the archive.
    let by_bot = std::fs::read_to_string(dist.join(".krew.yaml")).unwrap();
    assert!(!by_bot.contains("{{"), "placeholder left:\n{by_bot}");
    assert_eq!(scalar(&by_bot, "version"), format!("v{}", version()));
    assert_eq!(by_bot.matches("- selector:").count(), 1, "{by_bot}");
    assert!(
        by_bot.contains(&format!("uri: {url}/{archive_name}")),
        "{by_bot}"
    );
    assert!(by_bot.contains(&format!("sha256: {sum}")), "{by_bot}");
    assert_eq!(platforms(&by_bot).len(), 1, "{by_bot}");
    // krew's validator wants the file named after the plugin.
    let bot_dir = tmp.path().join("bot");
    std::fs::create_dir_all(&bot_dir).unwrap();
    let bot_manifest = bot_dir.join("ds.yaml");
    std::fs::write(&bot_manifest, &by_bot).unwrap();

    // 2. krew's validator on both: structure, selectors, and an install of each platform with a
    //    LICENSE extracted (it downloads from `uri`, served above).
    for m in [&manifest, &bot_manifest] {
        check(
            "validate-krew-manifest",
            Command::new(tools.join("validate-krew-manifest"))
                .arg("-manifest")
                .arg(m)
                .env("PATH", path_with(&[&tools]))
                .output()
                .unwrap(),
        );
    }

    // 3. Install from the archive, offline, into a throwaway KREW_ROOT.
    let krew_root = tmp.path().join("krew");
    let path = path_with(&[&krew_root.join("bin"), &tools]);
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(args)
            .env("KREW_ROOT", &krew_root)
            .env("KREW_NO_UPGRADE_CHECK", "1")
            .env("PATH", &path)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let manifest_arg = format!("--manifest={}", manifest.display());
    let archive_arg = format!("--archive={}", archive.display());
    check(
        "kubectl krew install",
        kubectl(&["krew", "install", &manifest_arg, &archive_arg]),
    );
    let help = check("kubectl ds --help", kubectl(&["ds", "--help"]));
    assert!(help.contains("Usage: kubectl ds"), "{help}");
    assert!(help.contains("Exit codes:"), "{help}");
    // Installed as krew records it (`krew list` itself needs the git index, not offline).
    assert!(krew_root.join("receipts/ds.yaml").is_file());
    // kubectl exits non-zero when another plugin on PATH draws a warning: read stdout only.
    let plugins = kubectl(&["plugin", "list", "--name-only"]);
    let plugins = String::from_utf8_lossy(&plugins.stdout);
    assert!(
        plugins.lines().any(|l| l.trim() == "kubectl-ds"),
        "{plugins}"
    );

    // The binary users get is static.
    let store = krew_root.join("store/ds").join(format!("v{}", version()));
    let binary = std::fs::read(store.join("kubectl-ds")).unwrap();
    assert!(
        !has_interpreter(&binary),
        "kubectl-ds is dynamically linked"
    );

    // 4. Completion through kubectl, set up with the command in the manifest's caveats.
    let setup = caveats_command(&rendered);
    let sh = Command::new("sh")
        .args(["-c", &setup])
        .env("KREW_ROOT", &krew_root)
        .env("PATH", &path)
        .output()
        .unwrap();
    check(&setup, sh);
    let completed = check(
        "kubectl __complete ds ex",
        kubectl(&["__complete", "ds", "ex"]),
    );
    let lines: Vec<&str> = completed.lines().collect();
    assert!(lines[0].starts_with("explain\t"), "{completed}");
    assert_eq!(lines.last(), Some(&":4"), "{completed}");
}

/// The shell command the caveats give to put kubectl_complete-ds on PATH (`cp ...`, with its
/// continuation lines).
fn caveats_command(manifest: &str) -> String {
    let mut lines = manifest
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("cp "));
    let mut command = String::new();
    for line in lines.by_ref() {
        match line.strip_suffix('\\') {
            Some(part) => command.push_str(part),
            None => {
                command.push_str(line);
                break;
            }
        }
    }
    assert!(
        command.contains("kubectl_complete-ds"),
        "no setup command in the caveats"
    );
    command
}

/// The text of a `key: |` block of a manifest, its indentation removed.
fn block(manifest: &str, key: &str) -> Vec<String> {
    let start = format!("  {key}: |");
    manifest
        .lines()
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.trim_start_matches("    ").to_string())
        .collect()
}

fn scalar<'m>(manifest: &'m str, key: &str) -> &'m str {
    let prefix = format!("  {key}: ");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}"))
}

/// (os, arch, bin, archive file name) of each platform.
fn platforms(manifest: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    for l in manifest
        .lines()
        .skip_while(|l| *l != "  platforms:")
        .skip(1)
    {
        let l = l.trim();
        if l.starts_with("- selector:") && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(l.to_string());
    }
    out.push(cur);
    out.iter()
        .map(|p| {
            let get = |k: &str| {
                p.iter()
                    .find_map(|l| l.strip_prefix(k))
                    .unwrap_or_else(|| panic!("{k} missing in {p:?}"))
                    .trim()
                    .to_string()
            };
            let uri = p
                .iter()
                .find(|l| l.contains("uri: ") || l.contains("addURIAndSha"))
                .unwrap();
            let file = uri
                .split(['/', '"', ' '])
                .find(|s| s.ends_with(".tar.gz"))
                .unwrap()
                .to_string();
            (get("os: "), get("arch: "), get("bin: "), file)
        })
        .collect()
}

/// krew-index's review rules (its bot and the reviewers' checklist) on both manifests, and the
/// krew-release-bot template rendered with the bot's template semantics (TagName; inside
/// addURIAndSha's URL only TagName, so `slice .TagName 1` for the version) agreeing with
/// scripts/release's template field by field. The bot itself renders it in
/// `krew_installs_the_release_archive_offline`.
#[test]
fn manifest_follows_the_index_rules() {
    let ds = std::fs::read_to_string(repo().join("krew/ds.yaml")).unwrap();
    let bot = std::fs::read_to_string(repo().join("krew/.krew.yaml")).unwrap();
    for (name, m) in [("ds.yaml", &ds), (".krew.yaml", &bot)] {
        let short = scalar(m, "shortDescription");
        assert!(
            short.chars().count() <= 50,
            "{name}: shortDescription over 50: {short}"
        );
        let description = block(m, "description");
        assert!(description.len() >= 3, "{name}: a description");
        for line in &description {
            assert!(
                line.chars().count() <= 80,
                "{name}: description over 80 columns: {line}"
            );
            assert!(
                !line.contains("--") && !line.trim_start().starts_with('-'),
                "{name}: the description lists no flags: {line}"
            );
            for cmd in [
                "kubectl ds ",
                "rollout-preview",
                "orphan",
                "adopt",
                "migrate",
            ] {
                assert!(
                    !line.contains(cmd),
                    "{name}: the description lists no commands: {line}"
                );
            }
        }
        let caveats = block(m, "caveats").join("\n");
        assert!(
            !caveats.contains("RBAC") && !caveats.contains("Exit codes"),
            "{name}: {caveats}"
        );
        assert!(
            caveats.contains("kubectl_complete-ds"),
            "{name}: the completion step"
        );
        assert_eq!(
            scalar(m, "name").trim(),
            "ds",
            "{name}: the plugin stays `ds`"
        );
    }
    for key in ["description", "caveats"] {
        assert_eq!(
            block(&ds, key),
            block(&bot, key),
            "{key} differs between the templates"
        );
    }
    assert_eq!(
        scalar(&ds, "shortDescription"),
        scalar(&bot, "shortDescription")
    );

    // Rendered as krew-release-bot does (pkg/source/template.go RenderTemplate): the URL inside
    // addURIAndSha is a template over {TagName} alone in every released bot (v0.0.46 to
    // v0.0.51): `.Version` there would fail the release.
    assert!(
        !bot.contains(".Version"),
        "the released bot has no .Version"
    );
    let tag = format!("v{}", version());
    let rendered: String = bot
        .replace("{{ slice .TagName 1 }}", &tag[1..])
        .replace("{{ .TagName }}", &tag)
        .lines()
        .map(|l| match l.trim().strip_prefix("{{addURIAndSha \"") {
            Some(rest) => {
                let url = rest.split('"').next().unwrap();
                format!("    uri: {url}\n    sha256: {}\n", "0".repeat(64))
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert!(!rendered.contains("{{"), "{rendered}");
    assert_eq!(scalar(&rendered, "version"), tag);
    let ds_rendered = ds.replace("{{VERSION}}", version());
    assert_eq!(platforms(&ds_rendered), platforms(&rendered));
}
