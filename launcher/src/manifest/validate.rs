//! Bottle validation: raw YAML → [`Bottle`], collecting every semantic problem in one pass.

use std::path::{Path, PathBuf};

use claude_bottle_protocol::git_policy::PushPolicy;
use claude_bottle_protocol::git_policy::upstream::{
    self as upstream_url, Transport, UpstreamUrl, is_remote_name,
};
use claude_bottle_protocol::size;
use serde_saphyr::Location;

use super::diagnostic::{Diagnostic, ManifestError};
use super::raw::{RawBottle, RawEgressProxy, RawGit, RawLimits, RawRoute, Sp};
use super::route::{self, AuthScheme, Route, RouteAuth, TokenRef};
use super::{
    Bottle, EnvEntry, GitRemote, Limits, Runtime, Skill, Source, agent, embedded, frontmatter,
    legacy, read_optional,
};
use crate::home::Home;

/// Collects diagnostics for one file, turning YAML-relative lines into file lines.
pub(super) struct Ctx {
    pub path: PathBuf,
    pub offset: usize,
    pub diags: Vec<Diagnostic>,
}

impl Ctx {
    pub fn line(&self, loc: &Location) -> Option<usize> {
        let l = usize::try_from(loc.line()).ok()?;
        (l > 0).then_some(l + self.offset)
    }

    pub fn err(
        &mut self,
        loc: &Location,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = Diagnostic::new(&self.path, self.line(loc), key, problem);
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    pub fn push_hint(
        &mut self,
        loc: &Location,
        key: impl Into<String>,
        problem: impl Into<String>,
        hint: &str,
    ) {
        self.err(loc, key, problem).hint = Some(hint.to_string());
    }
}

/// Parse YAML front matter into `T`, mapping a syntax or unknown-key error to a diagnostic.
pub(super) fn parse_yaml<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    yaml: &str,
    offset: usize,
    valid_keys: &str,
) -> Result<T, Diagnostic> {
    if yaml.trim().is_empty() {
        return Ok(T::default());
    }
    serde_saphyr::from_str::<T>(yaml).map_err(|e| {
        let line = e
            .location()
            .and_then(|l| usize::try_from(l.line()).ok())
            .filter(|l| *l > 0)
            .map(|l| l + offset);
        let msg = e.without_snippet().to_string();
        let first = msg.lines().next().unwrap_or("invalid YAML").trim();
        // The parser's own position is YAML-relative; ours (`line`) counts the whole file.
        let first = first.find(" at line ").map_or(first, |i| &first[..i]);
        if let Some(field) = first
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            let expected = first.split_once("expected one of ").map(|(_, list)| {
                list.split(", ")
                    .filter(|k| !LEGACY_KEYS.contains(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let keys = expected.as_deref().unwrap_or(valid_keys);
            return Diagnostic::new(path, line, field, "unknown key").hint(format!(
                "remove the key or fix its spelling; valid keys here: {keys}"
            ));
        }
        Diagnostic::new(path, line, "", first)
            .hint("fix the YAML front matter (between the `---` lines)")
    })
}

/// Known to the raw struct only to produce a migration recipe; never suggested.
const LEGACY_KEYS: &[&str] = &["cred_proxy", "tokens", "egress"];

const BOTTLE_KEYS: &str =
    "agent, env, skills, runtime, dockerfile, supervise, git, egress_proxy, limits";

pub(super) fn load_bottle(home: &Home, name: &str) -> Result<Bottle, ManifestError> {
    super::check_bottle_name(name).map_err(|p| {
        Diagnostic::new(Path::new(name), None, "", p)
            .hint("bottle names are file names under bottles/, without .md")
    })?;
    let file = home.bottle_file(name);
    let (source, text) = match read_optional(&file)? {
        Some(t) => (Source::File(file.clone()), t),
        None => match embedded::bottle(name) {
            Some(t) => (Source::Embedded, t.to_string()),
            None => {
                return Err(
                    Diagnostic::new(&file, None, "", format!("no bottle named {name:?}"))
                        .hint(format!(
                            "create {} or pick one of: {}",
                            file.display(),
                            super::list_names(home).join(", ")
                        ))
                        .into(),
                );
            }
        },
    };
    let path = source.display_path("bottles", name);
    let fm = frontmatter::split(&path, &text)?;
    let raw: RawBottle = parse_yaml(&path, fm.yaml, fm.line_offset, BOTTLE_KEYS)?;
    let mut cx = Ctx {
        path,
        offset: fm.line_offset,
        diags: Vec::new(),
    };
    let bottle = build(&mut cx, home, name, source, raw, fm.yaml, fm.body);
    match bottle {
        Some(b) if cx.diags.is_empty() => Ok(b),
        _ => Err(ManifestError {
            diagnostics: cx.diags,
        }),
    }
}

fn build(
    cx: &mut Ctx,
    home: &Home,
    name: &str,
    source: Source,
    raw: RawBottle,
    yaml: &str,
    body: &str,
) -> Option<Bottle> {
    legacy_keys(cx, &raw, yaml);

    let agent_name = raw
        .agent
        .as_ref()
        .map_or("claude", |a| a.value.as_str())
        .to_string();
    let agent = match agent::load(home, &agent_name) {
        Ok(a) => Some(a),
        Err(agent::LoadError::Missing(file)) => {
            let loc = raw
                .agent
                .as_ref()
                .map_or(Location::UNKNOWN, |a| a.referenced);
            cx.push_hint(
                &loc,
                "agent",
                format!("no agent named {agent_name:?}"),
                &format!(
                    "create {} or use the embedded agent `claude`",
                    file.display()
                ),
            );
            None
        }
        Err(agent::LoadError::Invalid(mut e)) => {
            cx.diags.append(&mut e.diagnostics);
            None
        }
    };

    let env = env_entries(cx, raw.env.as_deref().unwrap_or_default());
    let mut skill_names: Vec<(String, Location)> = raw
        .skills
        .iter()
        .flatten()
        .map(|s| (s.value.clone(), s.referenced))
        .collect();
    if let Some(a) = &agent {
        for s in &a.skills {
            if !skill_names.iter().any(|(n, _)| n == s) {
                skill_names.push((s.clone(), Location::UNKNOWN));
            }
        }
    }
    let skills = skills(cx, home, &skill_names);

    let runtime = match raw
        .runtime
        .as_ref()
        .map(|r| (r.value.as_str(), r.referenced))
    {
        None | Some(("runc", _)) => Runtime::Runc,
        Some(("runsc", _)) => Runtime::Runsc,
        Some((other, loc)) => {
            cx.push_hint(
                &loc,
                "runtime",
                format!("unknown runtime {other:?}"),
                "use `runc` (default) or `runsc` (gVisor)",
            );
            Runtime::Runc
        }
    };

    let dockerfile = raw
        .dockerfile
        .as_ref()
        .and_then(|d| dockerfile(cx, &source, d));
    let git = git_remotes(cx, &source, raw.git.as_deref().unwrap_or_default());
    let routes = raw
        .egress_proxy
        .as_ref()
        .map(|e| routes(cx, &e.value))
        .unwrap_or_default();
    let limits = raw
        .limits
        .as_ref()
        .map(|l| limits(cx, &l.value))
        .unwrap_or_default();

    Some(Bottle {
        name: name.to_string(),
        source,
        agent: agent?,
        env,
        skills,
        runtime,
        dockerfile,
        supervise: raw.supervise.unwrap_or(false),
        git,
        routes,
        limits,
        notes: body.to_string(),
    })
}

/// Legacy keys die with a recipe, reported at the key's own line (a block value's span starts on
/// the line after the key).
fn legacy_keys(cx: &mut Ctx, raw: &RawBottle, yaml: &str) {
    let found = [
        (
            "cred_proxy",
            raw.cred_proxy
                .as_ref()
                .map(|v| legacy::cred_proxy_hint(&v.value)),
        ),
        (
            "tokens",
            raw.tokens.as_ref().map(|v| legacy::tokens_hint(&v.value)),
        ),
        (
            "egress",
            raw.egress.as_ref().map(|v| legacy::egress_hint(&v.value)),
        ),
    ];
    for (key, hint) in found {
        if let Some(hint) = hint {
            let line = top_level_key_line(yaml, key).map(|l| l + cx.offset);
            let d = Diagnostic::new(&cx.path, line, key, "legacy key is no longer supported");
            cx.diags.push(d.hint(hint));
        }
    }
}

/// 1-based line (YAML-relative) of a top-level `key:`.
fn top_level_key_line(yaml: &str, key: &str) -> Option<usize> {
    yaml.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

fn env_entries(cx: &mut Ctx, raw: &[Sp<String>]) -> Vec<EnvEntry> {
    let mut out: Vec<EnvEntry> = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let key = format!("env[{i}]");
        let entry = match e.value.split_once('=') {
            Some((name, value)) => EnvEntry::Literal {
                name: name.to_string(),
                value: value.to_string(),
            },
            None => EnvEntry::Forward(e.value.clone()),
        };
        if !route::is_env_name(entry.name()) {
            cx.push_hint(
                &e.referenced,
                key,
                format!(
                    "{:?} is not `NAME` or `NAME=value` with a valid variable name",
                    e.value
                ),
                "names are letters, digits and '_', not starting with a digit",
            );
            continue;
        }
        if out.iter().any(|o| o.name() == entry.name()) {
            cx.push_hint(
                &e.referenced,
                key,
                format!("{} is set twice", entry.name()),
                "keep one entry per name",
            );
            continue;
        }
        out.push(entry);
    }
    out
}

fn skills(cx: &mut Ctx, home: &Home, names: &[(String, Location)]) -> Vec<Skill> {
    let mut out = Vec::new();
    for (i, (name, loc)) in names.iter().enumerate() {
        let dir = home.skill_dir(name);
        let valid = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
        if !valid {
            cx.push_hint(
                loc,
                format!("skills[{i}]"),
                format!("{name:?} is not a skill name"),
                "name a folder under skills/",
            );
        } else if !dir.is_dir() {
            cx.push_hint(
                loc,
                format!("skills[{i}]"),
                format!("no skill named {name:?}"),
                &format!("create the folder {}", dir.display()),
            );
        } else {
            out.push(Skill {
                name: name.clone(),
                path: dir,
            });
        }
    }
    out
}

fn dockerfile(cx: &mut Ctx, source: &Source, d: &Sp<String>) -> Option<PathBuf> {
    let base = match source {
        Source::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        Source::Embedded => std::env::current_dir().unwrap_or_default(),
    };
    let path = base.join(&d.value);
    if path.is_file() {
        Some(path)
    } else {
        cx.push_hint(
            &d.referenced,
            "dockerfile",
            format!("{} does not exist", path.display()),
            "the path is relative to the bottle file's folder",
        );
        None
    }
}

fn git_remotes(cx: &mut Ctx, source: &Source, raw: &[Sp<RawGit>]) -> Vec<GitRemote> {
    let mut out: Vec<GitRemote> = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        let key = format!("git[{i}]");
        let r = &g.value;
        let name = match &r.name {
            Some(n) if is_remote_name(&n.value) => n.value.clone(),
            Some(n) => {
                cx.push_hint(
                    &n.referenced,
                    format!("{key}.name"),
                    format!("{:?} is not a remote name", n.value),
                    "use letters, digits, '-', '_' or '.'",
                );
                continue;
            }
            None => {
                cx.push_hint(
                    &g.referenced,
                    format!("{key}.name"),
                    "missing",
                    "every git entry needs `name:` (e.g. origin)",
                );
                continue;
            }
        };
        let Some(upstream) = &r.upstream else {
            cx.push_hint(
                &g.referenced,
                format!("{key}.upstream"),
                "missing",
                "the URL the gate pushes to and fetches from",
            );
            continue;
        };
        let url = match upstream_url::parse(&upstream.value) {
            Ok(url) => url,
            Err(e) => {
                cx.push_hint(
                    &upstream.referenced,
                    format!("{key}.upstream"),
                    e,
                    "write https://host/path.git, ssh://user@host/path.git or user@host:path.git",
                );
                continue;
            }
        };
        let token_ref = r.token_ref.as_ref().and_then(|t| token_ref(cx, &key, t));
        let Some((ssh_key, known_hosts)) = git_credential(cx, &key, source, g, &url) else {
            continue;
        };
        if out.iter().any(|o| o.name == name) {
            cx.push_hint(
                &g.referenced,
                format!("{key}.name"),
                format!("remote {name:?} is defined twice"),
                "remote names must be unique",
            );
            continue;
        }
        let push = push_patterns(cx, &key, r.push.as_deref().unwrap_or_default());
        out.push(GitRemote {
            name,
            upstream: upstream.value.clone(),
            transport: url.transport,
            host: url.host,
            token_ref,
            ssh_key,
            known_hosts,
            push,
        });
    }
    out
}

/// The credential keys of one remote, checked against its transport: https takes `token_ref`,
/// ssh takes `ssh_key` (required) and `known_hosts`. `None` when a problem was reported.
#[allow(clippy::type_complexity)]
fn git_credential(
    cx: &mut Ctx,
    key: &str,
    source: &Source,
    g: &Sp<RawGit>,
    url: &UpstreamUrl,
) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
    let r = &g.value;
    let before = cx.diags.len();
    let path = |p: &Sp<String>| host_path(source, &p.value);
    match url.transport {
        Transport::Http => {
            for (name, v) in [("ssh_key", &r.ssh_key), ("known_hosts", &r.known_hosts)] {
                if let Some(v) = v {
                    cx.push_hint(
                        &v.referenced,
                        format!("{key}.{name}"),
                        "an https upstream takes a token (token_ref), not ssh keys",
                        "remove it, or write the upstream as ssh://user@host/path.git",
                    );
                }
            }
            (cx.diags.len() == before).then_some((None, None))
        }
        Transport::Ssh => {
            if let Some(t) = &r.token_ref {
                cx.push_hint(
                    &t.referenced,
                    format!("{key}.token_ref"),
                    "an ssh upstream takes a key (ssh_key), not a token",
                    "name the private key file with ssh_key, or write the upstream as https://",
                );
            }
            let ssh_key = match &r.ssh_key {
                Some(k) => Some(path(k)),
                None => {
                    cx.push_hint(
                        &g.referenced,
                        format!("{key}.ssh_key"),
                        "missing: an ssh upstream needs the private key the gate uses",
                        "add ssh_key: ~/.ssh/<a deploy key of this repository>",
                    );
                    None
                }
            };
            let known_hosts = r.known_hosts.as_ref().map(path);
            (cx.diags.len() == before).then_some((ssh_key, known_hosts))
        }
    }
}

/// A path of the operator's: `~/` is their home, a relative one is relative to the bottle
/// file's folder.
fn host_path(source: &Source, p: &str) -> PathBuf {
    if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        return PathBuf::from(home).join(rest);
    }
    let base = match source {
        Source::File(f) => f.parent().map(Path::to_path_buf).unwrap_or_default(),
        Source::Embedded => std::env::current_dir().unwrap_or_default(),
    };
    base.join(p)
}

/// `<key>.push` as written, each entry checked by the push policy the git gate enforces.
fn push_patterns(cx: &mut Ctx, key: &str, raw: &[Sp<String>]) -> Vec<String> {
    let push: Vec<String> = raw.iter().map(|p| p.value.clone()).collect();
    if let Err(problems) = PushPolicy::parse(&push) {
        for p in problems {
            cx.push_hint(
                &raw[p.index].referenced,
                format!("{key}.push[{}]", p.index),
                p.error.to_string(),
                &p.error.hint(),
            );
        }
    }
    push
}

/// Parse `<key>.token_ref`, reporting a bad reference.
fn token_ref(cx: &mut Ctx, key: &str, t: &Sp<String>) -> Option<TokenRef> {
    match TokenRef::parse(&t.value) {
        Ok(tr) => Some(tr),
        Err(p) => {
            cx.push_hint(
                &t.referenced,
                format!("{key}.token_ref"),
                p,
                "use env:NAME or file:PATH",
            );
            None
        }
    }
}

fn routes(cx: &mut Ctx, raw: &RawEgressProxy) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for (i, r) in raw.routes.iter().flatten().enumerate() {
        if let Some(route) = one_route(cx, &format!("egress_proxy.routes[{i}]"), r, &out) {
            out.push(route);
        }
    }
    out
}

fn one_route(cx: &mut Ctx, key: &str, r: &Sp<RawRoute>, seen: &[Route]) -> Option<Route> {
    let v: &RawRoute = &r.value;
    let Some(host) = &v.host else {
        cx.push_hint(
            &r.referenced,
            format!("{key}.host"),
            "missing",
            "every route needs `host:`",
        );
        return None;
    };
    let mut ok = true;
    let host_lc = match route::check_host(&host.value) {
        Ok(h) => h,
        Err(p) => {
            cx.push_hint(
                &host.referenced,
                format!("{key}.host"),
                p,
                "write a bare host name such as api.github.com",
            );
            ok = false;
            String::new()
        }
    };
    if let Some(p) = &v.path
        && let Err(problem) = route::check_path(&p.value)
    {
        cx.push_hint(
            &p.referenced,
            format!("{key}.path"),
            problem,
            "write a path prefix such as /repos/acme/",
        );
        ok = false;
    }
    let scheme = v
        .auth_scheme
        .as_ref()
        .and_then(|s| match AuthScheme::parse(&s.value) {
            Ok(a) => Some(a),
            Err(p) => {
                cx.push_hint(
                    &s.referenced,
                    format!("{key}.auth_scheme"),
                    p,
                    "use bearer, token, basic or header:<Name>",
                );
                ok = false;
                None
            }
        });
    let token_ref = v.token_ref.as_ref().and_then(|t| token_ref(cx, key, t));
    ok &= v.token_ref.is_none() || token_ref.is_some();
    match (&v.auth_scheme, &v.token_ref) {
        (Some(s), None) => {
            cx.push_hint(
                &s.referenced,
                format!("{key}.auth_scheme"),
                "set without `token_ref`",
                "add `token_ref: env:NAME` or remove `auth_scheme`",
            );
            ok = false;
        }
        (None, Some(t)) => {
            cx.push_hint(
                &t.referenced,
                format!("{key}.token_ref"),
                "set without `auth_scheme`",
                "add `auth_scheme: bearer` (or token, basic, header:<Name>)",
            );
            ok = false;
        }
        _ => {}
    }
    let path = v.path.as_ref().map(|p| p.value.clone());
    if ok && seen.iter().any(|s| s.host == host_lc && s.path == path) {
        cx.push_hint(
            &r.referenced,
            key.to_string(),
            format!(
                "duplicate route for {host_lc}{}",
                path.as_deref().unwrap_or("")
            ),
            "each host and path prefix may appear once",
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    let auth = match (scheme, token_ref) {
        (Some(scheme), Some(token_ref)) => Some(RouteAuth { scheme, token_ref }),
        _ => None,
    };
    Some(Route {
        host: host_lc,
        path,
        auth,
        default: false,
    })
}

fn limits(cx: &mut Ctx, raw: &RawLimits) -> Limits {
    let mut l = Limits::default();
    if let Some(m) = &raw.memory {
        // One parser and minimum with config.toml's `[agent] memory` (protocol's `size`).
        let bytes = size::agent_memory(&m.value).and_then(|b| {
            i64::try_from(b).map_err(|_| size::LimitError::TooLarge {
                text: m.value.clone(),
            })
        });
        match bytes {
            Ok(b) => l.memory_bytes = Some(b),
            Err(e) => cx.push_hint(&m.referenced, "limits.memory", e.to_string(), e.hint()),
        }
    }
    if let Some(p) = &raw.pids {
        match size::agent_pids(p.value) {
            Ok(n) => l.pids = Some(n),
            Err(e) => cx.push_hint(&p.referenced, "limits.pids", e.to_string(), e.hint()),
        }
    }
    if let Some(c) = &raw.cpus {
        if c.value > 0.0 && c.value <= 1024.0 {
            l.cpus = Some(c.value);
        } else {
            cx.push_hint(
                &c.referenced,
                "limits.cpus",
                format!("{} is not a CPU count", c.value),
                "write e.g. 2 or 0.5",
            );
        }
    }
    l
}
