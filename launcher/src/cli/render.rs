//! What the listing verbs (`queue`, `list`, `show`) share: a borderless table and a compact age.

use std::io::IsTerminal as _;
use std::time::Duration;

use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};

/// The width tables are fitted to when stdout is a terminal whose width is unknown.
pub const FALLBACK_WIDTH: u16 = 80;

/// The width to fit a table to: the terminal's when stdout is one, else none (a pipe gets one
/// line per row, whatever its length, for `grep` and `awk`).
pub fn stdout_width() -> Option<u16> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    Some(crossterm::terminal::size().map_or(FALLBACK_WIDTH, |(w, _)| w))
}

/// Columns separated by two spaces, each as wide as its widest cell, lines without trailing
/// spaces. Given a `width`, the last column wraps within it (on words where it can) so that every
/// line fits and the columns stay aligned; the others keep their width. The cells must already
/// be escaped: this only lays them out.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: &[[String; N]],
    width: Option<u16>,
) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_header(header);
    for r in rows {
        t.add_row(r.iter().map(String::as_str));
    }
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 == N { 0 } else { 2 }));
        if i + 1 < N {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    if let Some(w) = width {
        t.set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(w);
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How long `secs` seconds are, in the largest unit only: `42s`, `5m`, `3h`, `2days`, `1month`.
/// A negative span (a clock behind the writer's) is `0s`.
pub fn age(secs: i64) -> String {
    let full = humantime::format_duration(Duration::from_secs(secs.max(0).unsigned_abs()));
    full.to_string()
        .split(' ')
        .next()
        .unwrap_or("0s")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_the_largest_unit() {
        for (secs, shown) in [
            (0, "0s"),
            (42, "42s"),
            (300, "5m"),
            (303, "5m"),
            (3 * 3_600 + 5, "3h"),
            (2 * 86_400, "2days"),
            (86_400 + 7_200, "1day"),
            (40 * 86_400, "1month"),
            (-10, "0s"),
        ] {
            assert_eq!(age(secs), shown, "{secs}");
        }
    }

    #[test]
    fn tables_align_and_do_not_pad_the_last_column() {
        let rows = [
            ["a-1".into(), "5m".into(), "x.org".into()],
            ["b-22".into(), "1day".into(), "apt install jq".into()],
        ];
        assert_eq!(
            table(["ID", "AGE", "SUMMARY"], &rows, None),
            "ID    AGE   SUMMARY\n\
             a-1   5m    x.org\n\
             b-22  1day  apt install jq\n"
        );
    }

    #[test]
    fn a_table_fitted_to_80_columns_wraps_the_last_column_and_stays_aligned() {
        let long = "apt install ripgrep jq; RUN pip install --no-cache-dir ruff==0.6.9 \
                    mypy==1.11 black==24.8.0";
        let rows = [[
            "1795811185-5d1e8a3b".into(),
            "1m".into(),
            "myapp".into(),
            "capability".into(),
            long.into(),
        ]];
        let out = table(["ID", "AGE", "BOTTLE", "KIND", "SUMMARY"], &rows, Some(80));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 2, "{out}");
        let at = lines[0].find("SUMMARY").expect("header");
        for l in &lines {
            assert!(l.chars().count() <= 80, "{l:?}");
        }
        for l in &lines[2..] {
            assert!(l[..at].trim().is_empty(), "{l:?} is not under SUMMARY");
        }
        // Every word is kept, in order.
        let words: Vec<&str> = lines[1..]
            .iter()
            .flat_map(|l| l[at..].split_whitespace())
            .collect();
        assert_eq!(words.join(" "), long);
    }
}
