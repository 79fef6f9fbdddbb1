//! Keys of the Python tool that no longer exist: each is a hard error with a migration recipe that
//! shows the equivalent `egress_proxy.routes` YAML, built from what the old key held.

use serde_json::Value;

/// A route recovered from a legacy key, for the recipe only.
#[derive(Debug, PartialEq, Eq)]
struct Recovered {
    host: String,
    scheme: Option<String>,
    token_ref: Option<String>,
}

/// The hint for `cred_proxy:`.
pub fn cred_proxy_hint(value: &Value) -> String {
    let routes = match value.get("routes") {
        Some(r) => collect(r),
        None => collect(value),
    };
    recipe(
        "`cred_proxy` became `egress_proxy.routes` with a `token_ref` per route",
        &routes,
    )
}

/// The hint for `tokens:`.
pub fn tokens_hint(value: &Value) -> String {
    let mut routes = Vec::new();
    match value {
        // tokens: { GITHUB_TOKEN: api.github.com }  or  { GITHUB_TOKEN: [a, b] }
        Value::Object(map) => {
            for (name, hosts) in map {
                for host in strings(hosts) {
                    routes.push(Recovered {
                        host,
                        scheme: Some("bearer".into()),
                        token_ref: Some(format!("env:{name}")),
                    });
                }
            }
        }
        other => routes = collect(other),
    }
    recipe(
        "`tokens` became `egress_proxy.routes` entries with `token_ref: env:NAME`",
        &routes,
    )
}

/// The hint for top-level `egress:`.
pub fn egress_hint(value: &Value) -> String {
    let hosts = value
        .get("allowlist")
        .map(strings)
        .unwrap_or_else(|| strings(value));
    let routes: Vec<Recovered> = hosts
        .into_iter()
        .map(|host| Recovered {
            host,
            scheme: None,
            token_ref: None,
        })
        .collect();
    recipe(
        "`egress.allowlist` became bare-pass routes (`- host: NAME`) under `egress_proxy.routes`",
        &routes,
    )
}

fn recipe(what: &str, routes: &[Recovered]) -> String {
    let mut out = format!("{what}; replace it with:\negress_proxy:\n  routes:");
    if routes.is_empty() {
        out.push_str("\n    - host: api.example.com\n      auth_scheme: bearer\n      token_ref: env:EXAMPLE_TOKEN");
    }
    for r in routes {
        out.push_str(&format!("\n    - host: {}", r.host));
        if let Some(tr) = &r.token_ref {
            let scheme = r.scheme.as_deref().unwrap_or("bearer");
            out.push_str(&format!(
                "\n      auth_scheme: {scheme}\n      token_ref: {tr}"
            ));
        }
    }
    out.push_str("\n(see docs/manifest.md, \"Legacy keys\")");
    out
}

/// Objects with a `host` key anywhere in a list or map of routes.
fn collect(value: &Value) -> Vec<Recovered> {
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for item in items {
                out.extend(collect(item));
            }
        }
        Value::Object(map) if map.contains_key("host") => {
            let host = map
                .get("host")
                .and_then(Value::as_str)
                .unwrap_or("HOST")
                .to_string();
            let scheme = ["auth_scheme", "scheme", "auth"]
                .iter()
                .find_map(|k| map.get(*k).and_then(Value::as_str))
                .map(str::to_string);
            let token_ref = map
                .get("token_ref")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    ["token_env", "env", "token", "name"]
                        .iter()
                        .find_map(|k| map.get(*k).and_then(Value::as_str))
                        .map(|n| format!("env:{n}"))
                });
            out.push(Recovered {
                host,
                scheme,
                token_ref,
            });
        }
        // { api.github.com: { env: GITHUB_TOKEN } }
        Value::Object(map) => {
            for (host, v) in map {
                let mut inner = collect(&with_host(v, host));
                out.append(&mut inner);
            }
        }
        _ => {}
    }
    out
}

fn with_host(v: &Value, host: &str) -> Value {
    let mut obj = match v {
        Value::Object(m) => m.clone(),
        Value::String(s) => {
            let mut m = serde_json::Map::new();
            m.insert("env".into(), Value::String(s.clone()));
            m
        }
        _ => serde_json::Map::new(),
    };
    obj.insert("host".into(), Value::String(host.to_string()));
    Value::Object(obj)
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn egress_allowlist_becomes_bare_routes() {
        let hint = egress_hint(&json!({"allowlist": ["packages.example.org", "example.com"]}));
        assert!(
            hint.contains("    - host: packages.example.org\n    - host: example.com\n"),
            "{hint}"
        );
    }

    #[test]
    fn tokens_map_becomes_credentialed_routes() {
        let hint = tokens_hint(&json!({"GITHUB_TOKEN": "api.github.com"}));
        assert!(
            hint.contains("- host: api.github.com\n      auth_scheme: bearer\n      token_ref: env:GITHUB_TOKEN"),
            "{hint}"
        );
    }

    #[test]
    fn cred_proxy_routes_keep_scheme_and_env() {
        let hint = cred_proxy_hint(
            &json!({"routes": [{"host": "api.github.com", "scheme": "token", "env": "GH"}]}),
        );
        assert!(
            hint.contains("auth_scheme: token\n      token_ref: env:GH"),
            "{hint}"
        );
    }

    #[test]
    fn unknown_shape_still_gets_a_template() {
        let hint = cred_proxy_hint(&json!(true));
        assert!(hint.contains("token_ref: env:EXAMPLE_TOKEN"), "{hint}");
    }
}
