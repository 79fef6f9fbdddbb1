//! Config loading: defaults, file, environment, errors, binary lookup.

use std::collections::HashMap;

use super::*;

fn load(home: &Path, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    Config::load_with_env(home, |name| vars.get(name).cloned())
}

fn write(home: &Path, text: &str) -> PathBuf {
    let path = home.join(CONFIG_FILE);
    std::fs::write(&path, text).expect("write config");
    path
}

/// A home whose config.toml reads `text`, and the file's path.
fn home_with(text: &str) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().expect("tempdir");
    let path = write(home.path(), text);
    (home, path)
}

#[test]
fn no_file_no_env_gives_defaults() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = load(home.path(), &[]).expect("load");
    assert_eq!(config, Config::default());
    assert_eq!(config.base_image, "debian:bookworm-slim");
    // As pipelock publishes it: the version without a `v`, the same one the schema is pinned to.
    assert_eq!(
        config.pipelock_image,
        format!(
            "ghcr.io/luckypipewrench/pipelock:{}",
            crate::egress::PIPELOCK_VERSION
        )
    );
}

#[test]
fn file_values_are_read() {
    let (home, path) = home_with(
        "base_image = \"claude-bottle/base:bookworm\"\nbin_dir = \"bin\"\n\
         pipelock_image = \"pipelock:test\"\n[agent]\nmemory = \"512m\"\npids = 64\n",
    );
    let config = load(home.path(), &[]).expect("load");
    assert_eq!(config.base_image, "claude-bottle/base:bookworm");
    assert_eq!(config.pipelock_image, "pipelock:test");
    assert_eq!(config.bin_dir, Some(home.path().join("bin")));
    assert_eq!(config.agent_limits.memory_bytes, 512 << 20);
    assert_eq!(config.agent_limits.pids, 64);
    assert_eq!(config.source, Some(path));
}

#[test]
fn env_overrides_file_and_empty_env_is_unset() {
    let home = tempfile::tempdir().expect("tempdir");
    write(
        home.path(),
        "base_image = \"from-file:1\"\nbin_dir = \"/file\"\n",
    );
    let config = load(
        home.path(),
        &[
            (ENV_BASE_IMAGE, "from-env:2"),
            (ENV_BIN_DIR, "/env/bin"),
            (ENV_PIPELOCK_IMAGE, ""),
        ],
    )
    .expect("load");
    assert_eq!(config.base_image, "from-env:2");
    assert_eq!(config.bin_dir, Some(PathBuf::from("/env/bin")));
    assert_eq!(config.pipelock_image, DEFAULT_PIPELOCK_IMAGE);
}

#[test]
fn bad_env_image_is_an_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let err = load(home.path(), &[(ENV_BASE_IMAGE, "two words")]).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.starts_with("failed to use $CLAUDE_BOTTLE_BASE_IMAGE:"),
        "{msg}"
    );
}

#[test]
fn unknown_key_names_file_and_line() {
    let (home, path) = home_with("base_image = \"a:b\"\n\n[agent]\nmemroy = \"1g\"\n");
    let err = load(home.path(), &[]).expect_err("must fail");
    let msg = err.to_string();
    let want = format!(
        "failed to parse {}:4: unknown field `memroy`",
        path.display()
    );
    assert!(msg.starts_with(&want), "{msg}");
    let hint = crate::error::Diagnose::hint(&err).expect("a hint");
    assert!(hint.contains("docs/images.md"), "{hint}");
}

#[test]
fn all_invalid_values_are_reported_together() {
    let (home, path) = home_with("base_image = \"\"\n[agent]\nmemory = \"4x\"\npids = 3\n");
    let err = load(home.path(), &[]).expect_err("must fail");
    let ConfigError::Invalid(issues) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    let lines: Vec<_> = issues
        .issues
        .iter()
        .map(|i| (i.line, i.key.as_str()))
        .collect();
    assert_eq!(
        lines,
        [(1, "base_image"), (3, "agent.memory"), (4, "agent.pids")]
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}:3: agent.memory: unknown unit", path.display())),
        "{msg}"
    );
}

#[test]
fn unreadable_file_is_a_read_error() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join(CONFIG_FILE)).expect("mkdir");
    let err = load(home.path(), &[]).expect_err("must fail");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn agent_sizes_are_the_protocols_sizes() {
    // The same parser and minimum as a bottle's `limits:` (protocol's `size`), so `1t` is
    // valid in both and `1m` in neither.
    let home = tempfile::tempdir().expect("tempdir");
    for (memory, bytes) in [
        ("4GB", 4u64 << 30),
        ("1t", 1 << 40),
        ("134217728", 128 << 20),
    ] {
        write(home.path(), &format!("[agent]\nmemory = \"{memory}\"\n"));
        let config = load(home.path(), &[]).expect("load");
        assert_eq!(config.agent_limits.memory_bytes, bytes, "{memory}");
    }
    for (memory, want) in [
        ("1m", "minimum 64m"),
        ("m", "not a size"),
        ("-1g", "not a size"),
    ] {
        write(home.path(), &format!("[agent]\nmemory = \"{memory}\"\n"));
        let e = load(home.path(), &[]).expect_err(memory).to_string();
        assert!(e.contains(want), "{memory}: {e}");
    }
}

#[test]
fn explicit_bin_dir_is_the_only_candidate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe_dir = dir.path().join("exe");
    std::fs::create_dir_all(&exe_dir).expect("mkdir");
    std::fs::write(exe_dir.join("claude-bottle-shim"), b"x").expect("write");
    let config = Config {
        bin_dir: Some(dir.path().join("explicit")),
        ..Config::default()
    };
    let err = config
        .binary_in("claude-bottle-shim", &exe_dir)
        .expect_err("explicit dir has no shim");
    let msg = err.to_string();
    assert!(msg.contains("explicit"), "{msg}");
    assert!(!msg.contains("exe,"), "{msg}");
}

#[test]
fn search_path_prefers_the_static_builds_over_cargos_copies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe_dir = dir.path().join("target").join("debug");
    let static_dir = dir.path().join("target").join("static");
    std::fs::create_dir_all(&exe_dir).expect("mkdir");
    std::fs::create_dir_all(&static_dir).expect("mkdir");
    std::fs::write(static_dir.join("claude-bottle-supervise"), b"x").expect("write");
    // As the search names it: beside the launcher's folder, not canonicalized.
    let static_copy = exe_dir
        .join("..")
        .join("static")
        .join("claude-bottle-supervise");
    let config = Config::default();
    let found = config
        .binary_in("claude-bottle-supervise", &exe_dir)
        .expect("found in ../static");
    assert_eq!(found, static_copy);

    // cargo's dynamically linked copy next to the launcher does not win over the static one.
    std::fs::write(exe_dir.join("claude-bottle-supervise"), b"x").expect("write");
    let found = config
        .binary_in("claude-bottle-supervise", &exe_dir)
        .expect("still the static one");
    assert_eq!(found, static_copy);
    // Without a static folder, the copy next to the launcher (an installed release) is used.
    std::fs::remove_dir_all(&static_dir).expect("rm static");
    let found = config
        .binary_in("claude-bottle-supervise", &exe_dir)
        .expect("found next to exe");
    assert_eq!(found, exe_dir.join("claude-bottle-supervise"));

    let err = config
        .binary_in("claude-bottle-nothing", &exe_dir)
        .expect_err("absent");
    assert!(
        crate::error::Diagnose::hint(&err)
            .is_some_and(|h| h.starts_with("run scripts/build-static.sh")),
        "{err}"
    );
}

#[test]
fn private_cidrs_are_checked_like_pipelock_does() {
    let home = tempfile::tempdir().expect("tempdir");
    write(
        home.path(),
        "allow_private_cidrs = [\"10.20.0.0/16\", \"fd00::/8\"]\n",
    );
    let config = load(home.path(), &[]).expect("load");
    assert_eq!(config.allow_private_cidrs, ["10.20.0.0/16", "fd00::/8"]);
    for bad in [
        "10.20.0.1/16",
        "0.0.0.0/0",
        "10.0.0.0",
        "x/8",
        "10.0.0.0/33",
    ] {
        assert!(crate::config::check_cidr(bad).is_err(), "{bad}");
    }
    write(home.path(), "allow_private_cidrs = [\"10.20.0.1/16\"]\n");
    let err = load(home.path(), &[]).expect_err("host bits").to_string();
    assert!(err.contains(":1: allow_private_cidrs:"), "{err}");
    assert!(err.contains("host bits set"), "{err}");
    let home = tempfile::tempdir().expect("tempdir");
    let config = load(
        home.path(),
        &[(ENV_ALLOW_PRIVATE_CIDRS, "172.16.0.0/12, 192.168.0.0/16")],
    )
    .expect("env");
    assert_eq!(
        config.allow_private_cidrs,
        ["172.16.0.0/12", "192.168.0.0/16"]
    );
    assert!(load(home.path(), &[(ENV_ALLOW_PRIVATE_CIDRS, "nope")]).is_err());
}

#[test]
fn snapshot_limit_has_a_default_a_key_and_an_override() {
    let home = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        load(home.path(), &[]).expect("load").snapshot_max_bytes,
        8 << 30
    );
    write(home.path(), "snapshot_max_bytes = \"16GiB\"\n");
    assert_eq!(
        load(home.path(), &[]).expect("load").snapshot_max_bytes,
        16 << 30
    );
    let config = load(home.path(), &[(ENV_SNAPSHOT_MAX_BYTES, "64m")]).expect("load");
    assert_eq!(config.snapshot_max_bytes, 64 << 20);
}

#[test]
fn the_disk_bound_is_implicit_by_default_and_explicit_when_set() {
    let home = tempfile::tempdir().expect("tempdir");
    let implicit = DiskLimit::Bytes {
        bytes: 20 << 30,
        explicit: false,
    };
    assert_eq!(
        load(home.path(), &[]).expect("load").agent_limits.disk,
        implicit
    );
    write(home.path(), "[agent]\ndisk = \"8g\"\n");
    assert_eq!(
        load(home.path(), &[]).expect("load").agent_limits.disk,
        DiskLimit::Bytes {
            bytes: 8 << 30,
            explicit: true
        }
    );
    let env = load(home.path(), &[(ENV_AGENT_DISK, "none")]).expect("load");
    assert_eq!(env.agent_limits.disk, DiskLimit::Unbounded);
}

#[test]
fn a_size_too_small_or_unreadable_is_an_error() {
    // (the file, where its error points, the minimum, the variable that overrides the key)
    for (text, at, minimum, var) in [
        (
            "snapshot_max_bytes = \"10k\"\n",
            "1: snapshot_max_bytes",
            "minimum 1m",
            ENV_SNAPSHOT_MAX_BYTES,
        ),
        (
            "[agent]\ndisk = \"1m\"\n",
            "2: agent.disk",
            "minimum 256m",
            ENV_AGENT_DISK,
        ),
    ] {
        let (home, path) = home_with(text);
        let msg = load(home.path(), &[]).expect_err("too small").to_string();
        assert!(
            msg.contains(&format!("{}:{at}: ", path.display())) && msg.contains(minimum),
            "{msg}"
        );
        std::fs::remove_file(&path).expect("rm");
        let msg = load(home.path(), &[(var, "lots")])
            .expect_err("not a size")
            .to_string();
        assert!(msg.starts_with(&format!("failed to use ${var}:")), "{msg}");
    }
}
