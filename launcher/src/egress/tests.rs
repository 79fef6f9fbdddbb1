//! Golden tests of the generated files, and token resolution.

use std::collections::BTreeSet;

use super::pipelock::{self, PipelockConfig};
use super::*;
use crate::manifest::{AuthScheme, Route, RouteAuth, TokenRef};
use crate::secret::Secret;

fn bare(host: &str, default: bool) -> Route {
    Route {
        host: host.into(),
        path: None,
        auth: None,
        default,
    }
}

fn routed(host: &str, path: Option<&str>, scheme: AuthScheme, token_ref: &str) -> Route {
    Route {
        host: host.into(),
        path: path.map(Into::into),
        auth: Some(RouteAuth {
            scheme,
            token_ref: TokenRef::parse(token_ref).expect("valid ref"),
        }),
        default: false,
    }
}

/// A bottle with GitHub (prefix), Anthropic and a header-key route sharing a token, plus bare passes.
fn plan_routes() -> Vec<Route> {
    vec![
        routed(
            "api.anthropic.com",
            None,
            AuthScheme::Bearer,
            "env:ANTHROPIC_API_KEY",
        ),
        routed(
            "api.github.com",
            Some("/repos//acme/"),
            AuthScheme::Token,
            "env:GITHUB_TOKEN",
        ),
        routed(
            "uploads.github.com",
            None,
            AuthScheme::Token,
            "env:GITHUB_TOKEN",
        ),
        routed(
            "key.example",
            Some("/v1"),
            AuthScheme::Header("X-Api-Key".into()),
            "file:/run/k",
        ),
        bare("example.com", false),
        bare("statsig.anthropic.com", true),
        bare("sentry.io", true),
    ]
}

fn lookup(name: &str) -> Option<String> {
    match name {
        "ANTHROPIC_API_KEY" => Some("sk-ant-api03-0123456789abcdef\n".into()),
        "GITHUB_TOKEN" => Some(format!("ghp_{}", "Z".repeat(36))),
        _ => None,
    }
}

fn yaml(routes: &[Route], approved: &[String], private: &[String]) -> String {
    let (cert, key) = pipelock::default_ca_paths();
    pipelock_yaml(&PipelockInput {
        slug: "dev",
        routes,
        approved_hosts: approved,
        ca_cert_path: &cert,
        ca_key_path: &key,
        allow_private_cidrs: private,
    })
}

#[test]
fn routes_json_names_slots_never_values() {
    let egress = EgressRoutes::from_routes(&plan_routes());
    let json = egress.routes_json();
    // The DLP table is the pinned one, whole; the snapshot shows the rest.
    let mut doc: serde_json::Value = serde_json::from_str(&json).expect("json");
    let dlp = doc
        .as_object_mut()
        .and_then(|o| o.remove("dlp"))
        .expect("a dlp object");
    assert_eq!(
        dlp,
        serde_json::to_value(dlp_rules()).expect("rules serialize")
    );
    insta::assert_snapshot!(
        "egress_proxy_routes_json",
        serde_json::to_string_pretty(&doc).expect("json")
    );
    assert!(!json.contains("ghp_") && !json.contains("GITHUB_TOKEN"));
    let slots: Vec<_> = egress
        .slots
        .iter()
        .map(|s| (s.env.as_str(), s.hosts.len()))
        .collect();
    assert_eq!(
        slots,
        [
            ("CLAUDE_BOTTLE_TOKEN_0", 1),
            ("CLAUDE_BOTTLE_TOKEN_1", 2),
            ("CLAUDE_BOTTLE_TOKEN_2", 1)
        ]
    );
    assert!(EgressRoutes::from_routes(&[bare("a.example", false)]).is_empty());
}

#[test]
fn agent_routes_and_allowlist() {
    insta::assert_snapshot!("agent_routes_json", agent_routes_json(&plan_routes()));
    let allowlist = vec!["b.example".to_owned(), "a.example".to_owned()];
    let approved = vec!["c.example".to_owned(), "a.example".to_owned()];
    assert_eq!(
        allowlist_text(&allowlist, &approved),
        "a.example\nb.example\nc.example\n"
    );
}

#[test]
fn tokens_resolve_from_env_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("k");
    std::fs::write(&file, "  key-from-file \n").expect("write");
    let mut routes = plan_routes();
    routes[3] = routed(
        "key.example",
        Some("/v1"),
        AuthScheme::Header("X-Api-Key".into()),
        &format!("file:{}", file.display()),
    );
    let resolved = EgressRoutes::from_routes(&routes)
        .resolve(lookup)
        .expect("resolve");
    let env: Vec<_> = resolved
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        env[0],
        ("CLAUDE_BOTTLE_TOKEN_0", "sk-ant-api03-0123456789abcdef")
    );
    assert_eq!(env[2], ("CLAUDE_BOTTLE_TOKEN_2", "key-from-file"));
    assert!(!format!("{resolved:?}").contains("key-from-file"));
}

#[test]
fn token_errors_name_the_ref_never_the_value() {
    let routes = vec![
        routed("a.example", None, AuthScheme::Bearer, "env:MISSING"),
        routed(
            "b.example",
            None,
            AuthScheme::Bearer,
            "file:/nonexistent/token",
        ),
        routed("c.example", None, AuthScheme::Bearer, "env:MULTILINE"),
        routed("d.example", None, AuthScheme::Bearer, "env:BLANK"),
    ];
    let err = EgressRoutes::from_routes(&routes)
        .resolve(|n| match n {
            "MULTILINE" => Some("secret-line-1\nsecret-line-2".into()),
            "BLANK" => Some("  \n".into()),
            _ => None,
        })
        .expect_err("must fail");
    let text = err.to_string();
    // Every token's problem, and no token's value.
    crate::testing::says_all(
        &text,
        &[
            "failed to resolve token env:MISSING: $MISSING is not set",
            "failed to resolve token file:/nonexistent/token: cannot read",
            "env:MULTILINE: it contains a line break",
            "env:BLANK: it is empty",
        ],
    );
    assert!(!text.contains("secret-line"), "{text}");
}

#[test]
fn pipelock_yaml_with_credentialed_routes() {
    let routes = plan_routes();
    let approved = vec!["pypi.org".to_owned()];
    insta::assert_snapshot!(
        "pipelock_credentialed",
        yaml(&routes, &approved, &["172.30.0.0/16".to_owned()])
    );
}

#[test]
fn pipelock_yaml_bare_passes_only() {
    let routes = vec![bare("example.com", false), bare("sentry.io", true)];
    insta::assert_snapshot!("pipelock_bare", yaml(&routes, &[], &[]));
}

#[test]
fn request_body_scanning_always_blocks_and_credentialed_hosts_pass_through() {
    let doc = pipelock::build(&PipelockInput {
        slug: "x",
        routes: &plan_routes(),
        approved_hosts: &[],
        ca_cert_path: "/c",
        ca_key_path: "/k",
        allow_private_cidrs: &[],
    });
    assert_eq!(doc.mode, "strict");
    assert_eq!(doc.request_body_scanning.action, "block");
    assert!(doc.request_body_scanning.scan_headers);
    assert_eq!(
        doc.tls_interception.passthrough_domains,
        [
            "api.anthropic.com",
            "api.github.com",
            "key.example",
            "uploads.github.com"
        ]
    );
    assert!(doc.api_allowlist.contains(&"api.anthropic.com".to_owned()));
    assert!(doc.ssrf.is_none(), "pipelock's SSRF protection stays whole");
}

/// Every key the generator writes is a key of the pinned pipelock's schema.
#[test]
fn validate_against_schema() {
    let known: BTreeSet<&str> = include_str!("testdata/pipelock-2.3.0-keys.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let routes = plan_routes();
    let text = yaml(
        &routes,
        &["pypi.org".to_owned()],
        &["10.1.0.0/16".to_owned()],
    );
    let value: serde_json::Value = serde_saphyr::from_str(&text).expect("generated YAML parses");
    let mut keys = Vec::new();
    collect_keys(&value, "", &mut keys);
    assert!(keys.len() > 18, "{keys:?}");
    for key in &keys {
        assert!(
            known.contains(key.as_str()),
            "{key} is not in pipelock {PIPELOCK_VERSION}'s schema"
        );
    }
    // And it reads back into the typed (deny_unknown_fields) form unchanged.
    let typed: PipelockConfig = serde_saphyr::from_str(&text).expect("typed");
    assert_eq!(
        typed,
        pipelock::build(&PipelockInput {
            slug: "dev",
            routes: &routes,
            approved_hosts: &["pypi.org".to_owned()],
            ca_cert_path: &pipelock::default_ca_paths().0,
            ca_key_path: &pipelock::default_ca_paths().1,
            allow_private_cidrs: &["10.1.0.0/16".to_owned()],
        })
    );
}

fn collect_keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                collect_keys(v, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_keys(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn secrets_stay_out_of_generated_files() {
    let routes = plan_routes();
    let egress = EgressRoutes::from_routes(&routes[..3]);
    let resolved = egress.resolve(lookup).expect("resolve");
    let text = yaml(&routes, &[], &[]);
    for (_, v) in &resolved.env {
        assert!(!text.contains(v.expose()));
        assert!(!egress.routes_json().contains(v.expose()));
    }
    let _ = Secret::new("unused");
}
