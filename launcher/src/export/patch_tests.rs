use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use super::*;

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn patch(source: &Path, work: &Path) -> (Vec<u8>, Summary) {
    let ignore = crate::export::source_ignore(source).expect("ignore");
    let mut out = Vec::new();
    let sum = write_patch(source, &ignore, work, &mut out).expect("patch");
    (out, sum)
}

/// `git apply` of `patch` in `dir` (outside any repository, as `patch -p1` would).
fn git_apply(dir: &Path, patch: &[u8]) {
    let file = dir.parent().expect("parent").join("p.diff");
    std::fs::write(&file, patch).expect("patch file");
    let out = Command::new("git")
        .args(["apply", "--verbose"])
        .arg(&file)
        .current_dir(dir)
        .env("GIT_CEILING_DIRECTORIES", dir.parent().expect("parent"))
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git apply failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(patch)
    );
}

#[test]
fn a_patch_of_changes_additions_removals_and_modes_applies_with_git() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, work) = (tmp.path().join("src"), tmp.path().join("work"));
    let base: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    write(&src, "keep.txt", b"same\n");
    write(&src, "edit.txt", base.as_bytes());
    write(&src, "gone.txt", b"bye\n");
    write(&src, "dir/no-newline", b"a\nb");
    write(&src, "run.sh", b"#!/bin/sh\n");
    write(&src, "empty-gone", b"");
    write(&src, "ignored.log", b"not copied\n");
    write(&src, ".dockerignore", b"*.log\n");
    write(&src, ".git/HEAD", b"ref: refs/heads/main\n");
    write(&work, "keep.txt", b"same\n");
    write(
        &work,
        "edit.txt",
        base.replace("line 10\n", "line ten\n").as_bytes(),
    );
    write(&work, "dir/no-newline", b"a\nc");
    write(&work, "new dir/new file.txt", b"hello\n");
    write(&work, "tab\tname", b"odd\n");
    write(&work, "empty-new", b"");
    write(&work, "run.sh", b"#!/bin/sh\n");
    write(&work, ".dockerignore", b"*.log\n");
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::os::unix::fs::symlink("keep.txt", work.join("link")).expect("symlink");

    let (p, sum) = patch(&src, &work);
    let text = String::from_utf8_lossy(&p);
    assert!(
        text.contains(
            "diff --git a/edit.txt b/edit.txt\n--- a/edit.txt\n+++ b/edit.txt\n@@ -7,7 +7,7 @@"
        ),
        "{text}"
    );
    assert!(text.contains("\\ No newline at end of file"), "{text}");
    assert!(text.contains("diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n"), "{text}");
    assert!(
        text.contains("old mode 100644\nnew mode 100755\n"),
        "{text}"
    );
    assert!(
        text.contains("diff --git \"a/tab\\tname\" \"b/tab\\tname\"\n"),
        "{text}"
    );
    assert!(text.contains("new file mode 120000\n"), "{text}");
    assert!(
        !text.contains("ignored.log") && !text.contains(".git/"),
        "{text}"
    );
    assert_eq!(sum.added, 4, "{text}");
    assert_eq!(sum.removed, 2, "{text}");
    assert_eq!(sum.changed, 3, "{text}");

    git_apply(&src, &p);
    let (again, sum) = patch(&src, &work);
    assert!(again.is_empty(), "{}", String::from_utf8_lossy(&again));
    assert_eq!(sum, Summary::default());
    assert_eq!(
        std::fs::read_link(src.join("link")).expect("link"),
        Path::new("keep.txt")
    );
}

#[test]
fn binary_files_are_named_not_diffed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, work) = (tmp.path().join("src"), tmp.path().join("work"));
    write(&src, "blob", b"\0\x01\x02");
    write(&work, "blob", b"\0\x01\x03");
    write(&work, "new.bin", b"\xff\xfe");
    std::fs::create_dir_all(&src).expect("src");
    let (p, sum) = patch(&src, &work);
    let text = String::from_utf8_lossy(&p);
    assert!(
        text.contains("Binary files a/blob and b/blob differ\n"),
        "{text}"
    );
    assert!(
        text.contains("new file mode 100644\nBinary files /dev/null and b/new.bin differ\n"),
        "{text}"
    );
    assert_eq!(sum.binary, 2);
}

#[test]
fn names_are_quoted_as_git_quotes_them() {
    assert_eq!(quote("a/", Path::new("plain name")), b"a/plain name");
    assert_eq!(quote("a/", Path::new("q\"b\\")), b"\"a/q\\\"b\\\\\"");
    assert_eq!(
        quote("b/", Path::new("\x1b[31mé")),
        b"\"b/\\033[31m\\303\\251\""
    );
}
