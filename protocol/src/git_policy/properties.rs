//! Exhaustive property tests over a small alphabet: every pattern and ref name, matched by the
//! glob engine and by a plain model of the documented language, must agree; options and entries
//! only ever widen what is allowed; nothing is deleted or rewritten without its option.

use super::tests::{create, delete, modify, policy};
use super::*;

/// Segments of ref names: enough to tell a star within a segment from one across segments.
const NAME_SEGMENTS: &[&str] = &["a", "b", "ab", "ba", "x-a"];

/// Segments of patterns.
const PATTERN_SEGMENTS: &[&str] = &["a", "b", "*", "a*", "*a", "*b*", "**"];

/// Every sequence of 1..=max items from `alphabet`.
fn sequences<'a>(alphabet: &[&'a str], max: usize) -> Vec<Vec<&'a str>> {
    let mut out: Vec<Vec<&str>> = vec![];
    let mut layer: Vec<Vec<&str>> = vec![vec![]];
    for _ in 0..max {
        layer = layer
            .iter()
            .flat_map(|prefix| {
                alphabet.iter().map(move |s| {
                    let mut v = prefix.clone();
                    v.push(*s);
                    v
                })
            })
            .collect();
        out.extend(layer.iter().cloned());
    }
    out
}

/// The documented language, written plainly: `*` any part of one segment, `**` any number of
/// whole segments (at the end, at least one).
fn model(pattern: &[&str], name: &[&str]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((&"**", [])), _) => !name.is_empty(),
        (Some((&"**", rest)), _) => {
            model(rest, name) || name.split_first().is_some_and(|(_, n)| model(pattern, n))
        }
        (Some((p, prest)), Some((n, nrest))) => segment(p, n) && model(prest, nrest),
        _ => false,
    }
}

fn segment(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((literal, rest)) => {
            name.starts_with(literal)
                && (literal.len()..=name.len()).any(|i| segment(rest, &name[i..]))
        }
    }
}

/// Ref names under `prefix` (segments after it), and the prefixes patterns are written under.
const PLACES: &[(&str, &str)] = &[
    ("", "refs/heads/"),
    ("refs/heads/", "refs/heads/"),
    ("refs/tags/", "refs/tags/"),
    ("refs/", "refs/"),
];

#[test]
fn the_glob_engine_agrees_with_the_model_on_every_small_pattern_and_name() {
    let names = sequences(NAME_SEGMENTS, 3);
    let mut checked = 0usize;
    for (written, full) in PLACES {
        for pattern in sequences(PATTERN_SEGMENTS, 3) {
            let entry = format!("{written}{}", pattern.join("/"));
            let Ok(rule) = PushRule::parse(&entry) else {
                continue;
            };
            let full_segments: Vec<&str> = full
                .trim_end_matches('/')
                .split('/')
                .chain(pattern.iter().copied())
                .collect();
            for under in ["refs/heads/", "refs/tags/", "refs/notes/"] {
                for name in &names {
                    let refname = format!("{under}{}", name.join("/"));
                    let segments: Vec<&str> = refname.split('/').collect();
                    let is_tag = under == "refs/tags/";
                    let want = model(&full_segments, &segments) && (!is_tag || rule.names_tags());
                    assert_eq!(rule.matches(&refname), want, "{entry:?} vs {refname}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

/// Every policy of up to two entries over a few patterns and all option sets, on every kind of
/// update: the default refuses, what is allowed is allowed by a matching entry with the option
/// it needs, and adding options or entries never takes an allowance away.
#[test]
fn options_and_entries_only_widen_what_is_allowed() {
    let patterns = ["claude/*", "claude/**", "*", "refs/tags/*", "refs/**"];
    let options = ["", " force", " delete", " force delete"];
    let entries: Vec<String> = patterns
        .iter()
        .flat_map(|p| options.iter().map(move |o| format!("{p}{o}")))
        .collect();
    let refs = [
        "refs/heads/claude/x",
        "refs/heads/claude/x/y",
        "refs/heads/main",
        "refs/tags/v1",
        "refs/notes/commits",
    ];
    let updates: Vec<(RefUpdate, bool)> = refs
        .iter()
        .flat_map(|r| {
            [
                (create(r), false),
                (modify(r), true),
                (modify(r), false),
                (delete(r), false),
            ]
        })
        .collect();
    let mut policies: Vec<Vec<&str>> = vec![vec![]];
    policies.extend(entries.iter().map(|e| vec![e.as_str()]));
    for a in &entries {
        for b in &entries {
            if PushPolicy::parse(&[a.as_str(), b.as_str()]).is_ok() {
                policies.push(vec![a.as_str(), b.as_str()]);
            }
        }
    }
    for list in &policies {
        let p = policy(list);
        // Wider: the same list with every option, and with one more entry.
        let widened: Vec<String> = list
            .iter()
            .map(|e| {
                let pattern = e.split(' ').next().unwrap_or_default();
                format!("{pattern} force delete")
            })
            .collect();
        let mut wider = vec![policy(&widened)];
        wider.extend(patterns.iter().filter_map(|extra| {
            let mut more = list.clone();
            more.push(extra);
            PushPolicy::parse(&more).ok()
        }));
        for (u, ff) in &updates {
            let d = p.decide(u, *ff);
            if list.is_empty() {
                assert_eq!(d, Decision::Refused(Refusal::NoPatterns));
            }
            let Decision::Allowed { rule } = &d else {
                continue;
            };
            let r = PushRule::parse(rule).expect("a rule's text parses");
            assert!(r.matches(u.refname()), "{rule} allowed {}", u.refname());
            match u.change() {
                Change::Delete => assert!(r.allows_delete(), "{rule}"),
                Change::Update if u.is_tag() || !ff => assert!(r.allows_force(), "{rule}"),
                _ => {}
            }
            if u.is_tag() {
                assert!(r.names_tags(), "{rule}");
            }
            for w in &wider {
                assert!(w.decide(u, *ff).is_allowed(), "{list:?} widened to {w:?}");
            }
        }
    }
}

#[test]
fn a_push_never_deletes_or_rewrites_without_the_option() {
    for entry in ["claude/*", "**", "refs/**", "refs/tags/*"] {
        let p = policy(&[entry]);
        for refname in ["refs/heads/claude/x", "refs/heads/main", "refs/tags/v1"] {
            assert!(
                !p.decide(&delete(refname), true).is_allowed(),
                "{entry} {refname}"
            );
            assert!(
                !p.decide(&modify(refname), false).is_allowed(),
                "{entry} {refname}"
            );
        }
    }
}
