//! Plain-text tables for terminal output.

/// The width of each cell of `header` and `rows` in characters (row by row, `header.len()` per row,
/// the header first), and the widest of each column.
fn measure<R: AsRef<[S]>, S: AsRef<str>>(header: &[&str], rows: &[R]) -> (Vec<usize>, Vec<usize>) {
    let columns = header.len();
    let mut cells = Vec::with_capacity(columns * (rows.len() + 1));
    cells.extend(header.iter().map(|h| h.chars().count()));
    for row in rows {
        let row = row.as_ref();
        cells.extend((0..columns).map(|i| row.get(i).map_or(0, |c| c.as_ref().chars().count())));
    }
    let mut widths = vec![0; columns];
    for line in cells.chunks(columns.max(1)) {
        for (width, &cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell);
        }
    }
    (cells, widths)
}

/// Appends `n` spaces.
fn pad(out: &mut String, n: usize) {
    const SPACES: &str = "                                                                ";
    let mut left = n;
    while left > 0 {
        let now = left.min(SPACES.len());
        out.push_str(&SPACES[..now]);
        left -= now;
    }
}

/// Drops the whitespace at the end of `out` after `from`.
fn trim_end_from(out: &mut String, from: usize) {
    let kept = out[from..].trim_end().len();
    out.truncate(from + kept);
}

/// Appends the cells before the last column (whose widths in characters are `counts`), each padded to
/// its column's width in `widths` and two spaces.
fn fixed_columns(out: &mut String, cells: &[&str], counts: &[usize], widths: &[usize]) {
    let columns = widths.len();
    for (i, cell) in cells.iter().enumerate().take(columns.saturating_sub(1)) {
        out.push_str(cell);
        pad(out, widths[i] - counts[i] + 2);
    }
}

/// Renders rows under a header, columns padded to their widest cell; the last column is not padded.
pub fn render<R: AsRef<[S]>, S: AsRef<str>>(header: &[&str], rows: &[R]) -> String {
    render_fitted(header, rows, None)
}

/// [`render`], fitted to `width` columns when given: the last column wraps onto continuation lines
/// under its own start (at word boundaries; a word longer than the space is cut); when the other
/// columns leave it less than [`MIN_LAST_COLUMN`], it goes on its own lines, indented.
pub fn render_fitted<R: AsRef<[S]>, S: AsRef<str>>(
    header: &[&str],
    rows: &[R],
    width: Option<usize>,
) -> String {
    let mut out = String::new();
    let kept: std::io::Result<()> = lines(header, rows, width, &mut out, &mut |_| Ok(()));
    debug_assert!(kept.is_ok(), "keeping lines in a string cannot fail");
    out
}

/// [`render_fitted`], written to `to` as it is made (a few lines at a time): a long table is never
/// held whole.
pub fn write_fitted<R: AsRef<[S]>, S: AsRef<str>>(
    to: &mut impl std::io::Write,
    header: &[&str],
    rows: &[R],
    width: Option<usize>,
) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let mut out = String::with_capacity(CHUNK + 4096);
    lines(header, rows, width, &mut out, &mut |out| {
        if out.len() >= CHUNK {
            to.write_all(out.as_bytes())?;
            out.clear();
        }
        Ok(())
    })?;
    to.write_all(out.as_bytes())?;
    to.flush()
}

/// Appends the lines of the table to `out`, calling `after_row` after each row's (it may take them).
fn lines<R: AsRef<[S]>, S: AsRef<str>>(
    header: &[&str],
    rows: &[R],
    width: Option<usize>,
    out: &mut String,
    after_row: &mut dyn FnMut(&mut String) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let columns = header.len();
    let (counts, widths) = measure(header, rows);
    let start: usize = widths
        .iter()
        .take(columns.saturating_sub(1))
        .map(|w| w + 2)
        .sum();
    let mut wrapped: Vec<String> = Vec::new();
    let mut line = |out: &mut String, cells: &[&str], counts: &[usize]| match width {
        None => plain_line(out, cells, counts, &widths),
        Some(width) => fitted_line(out, cells, counts, &widths, start, width, &mut wrapped),
    };
    line(out, header, &counts[..columns]);
    after_row(out)?;
    let mut cells: Vec<&str> = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        cells.clear();
        cells.extend(row.as_ref().iter().map(AsRef::as_ref));
        line(out, &cells, &counts[(n + 1) * columns..(n + 2) * columns]);
        after_row(out)?;
    }
    Ok(())
}

/// One line of [`render`]: the last column (and any cell after it) as it is.
fn plain_line(out: &mut String, cells: &[&str], counts: &[usize], widths: &[usize]) {
    let from = out.len();
    fixed_columns(out, cells, counts, widths);
    for cell in cells.iter().skip(widths.len().saturating_sub(1)) {
        out.push_str(cell);
    }
    trim_end_from(out, from);
    out.push('\n');
}

/// The line(s) of one row of [`render_fitted`] at `width`, the last column starting at `start` when it
/// has room there (`wrapped` is scratch space).
fn fitted_line(
    out: &mut String,
    cells: &[&str],
    counts: &[usize],
    widths: &[usize],
    start: usize,
    width: usize,
    wrapped: &mut Vec<String>,
) {
    let columns = widths.len();
    let (indent, room) = if width > start + MIN_LAST_COLUMN {
        (start, width - start)
    } else {
        (4, width.saturating_sub(4).max(MIN_LAST_COLUMN))
    };
    let from = out.len();
    fixed_columns(out, cells, counts, widths);
    let last = cells
        .get(columns.wrapping_sub(1))
        .copied()
        .unwrap_or_default();
    wrap_into(last, room, wrapped);
    if indent == start {
        for (n, piece) in wrapped.iter().enumerate() {
            let at = if n > 0 {
                let at = out.len();
                pad(out, indent);
                at
            } else {
                from
            };
            out.push_str(piece);
            trim_end_from(out, at);
            out.push('\n');
        }
        if wrapped.is_empty() {
            trim_end_from(out, from);
            out.push('\n');
        }
    } else {
        // The other columns alone are wider than the terminal: cut them, the last one follows.
        trim_end_from(out, from);
        if out[from..].chars().count() > width {
            let cut = out[from..]
                .char_indices()
                .nth(width.saturating_sub(1))
                .map_or(out.len(), |(at, _)| from + at);
            out.truncate(cut);
            out.push('…');
        }
        out.push('\n');
        for piece in wrapped.iter() {
            pad(out, indent);
            out.push_str(piece);
            out.push('\n');
        }
    }
}

/// The narrowest the last column of [`render_fitted`] gets beside the others.
pub const MIN_LAST_COLUMN: usize = 20;

/// `text` in lines of at most `room` characters, broken at spaces where possible (a word longer
/// than `room` is cut), into `lines` (cleared first). Words are joined by one space.
fn wrap_into(text: &str, room: usize, lines: &mut Vec<String>) {
    let room = room.max(1);
    lines.clear();
    let mut current = String::new();
    let mut used = 0;
    for word in text.split_whitespace() {
        let mut word = word;
        let mut chars = word.chars().count();
        loop {
            let space = usize::from(used > 0);
            if used + space + chars <= room {
                if space == 1 {
                    current.push(' ');
                }
                current.push_str(word);
                used += space + chars;
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut current));
                used = 0;
                continue;
            }
            let at = word
                .char_indices()
                .nth(room)
                .map_or(word.len(), |(at, _)| at);
            lines.push(word[..at].to_string());
            word = &word[at..];
            chars -= room;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
}

/// `text` fitted to `width` columns when given: wrapped at word boundaries, continuation lines
/// indented by `indent` spaces (a terminal never gets a line of kilobytes; a pipe gets it whole).
pub fn fold(text: &str, width: Option<usize>, indent: usize) -> String {
    let Some(width) = width else {
        return text.to_string();
    };
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut lines = Vec::new();
    wrap_into(
        text,
        width.saturating_sub(indent).max(MIN_LAST_COLUMN),
        &mut lines,
    );
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(text.len() + lines.len() * (indent + 1));
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(line);
    }
    out
}

/// The width to fit terminal output to: `COLUMNS` when set, else the terminal's width when stdout is
/// one; `None` (no limit) for a pipe or a file, so scripts get whole lines.
pub fn output_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return Some(columns);
    }
    console::Term::stdout()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fold_wraps_long_lines_under_an_indent_and_leaves_pipes_whole() {
        use super::fold;
        let long = "walk / mapillary: dry_run: would publish ".to_string()
            + &"0123456789abcdef ".repeat(12);
        assert_eq!(fold(&long, None, 2), long);
        let folded = fold(&long, Some(60), 2);
        assert!(folded.lines().count() > 2, "{folded}");
        assert!(folded.lines().all(|l| l.chars().count() <= 60), "{folded}");
        assert!(
            folded.lines().skip(1).all(|l| l.starts_with("  ")),
            "{folded}"
        );
        let words: Vec<&str> = folded.split_whitespace().collect();
        assert_eq!(words, long.split_whitespace().collect::<Vec<_>>());
        assert_eq!(fold("short", Some(60), 2), "short");
    }

    #[test]
    fn wraps_the_last_column_to_the_width() {
        let text = super::render_fitted(
            &["ID", "DETAIL"],
            &[vec![
                String::from("a"),
                "one two three four five six seven eight nine ten eleven".into(),
            ]],
            Some(30),
        );
        for line in text.lines() {
            assert!(line.chars().count() <= 30, "{text}");
        }
        assert!(text.contains("\n    "), "{text}");
        assert_eq!(
            text.split_whitespace()
                .filter(|w| *w != "ID" && *w != "DETAIL" && *w != "a")
                .count(),
            11,
            "{text}"
        );
    }

    #[test]
    fn writing_gives_the_rendered_table_across_chunks() {
        let rows: Vec<[String; 3]> = (0..5000)
            .map(|i| {
                [
                    format!("row {i}"),
                    "x".repeat(i % 7),
                    format!("detail {i} ").repeat(3),
                ]
            })
            .collect();
        for width in [None, Some(40), Some(12)] {
            let mut written = Vec::new();
            super::write_fitted(&mut written, &["A", "B", "C"], &rows, width).unwrap();
            let rendered = super::render_fitted(&["A", "B", "C"], &rows, width);
            assert!(
                rendered.len() > 128 * 1024,
                "{width:?}: more than one chunk"
            );
            assert_eq!(String::from_utf8(written).unwrap(), rendered, "{width:?}");
        }
    }

    #[test]
    fn pads_columns() {
        let text = super::render(
            &["ID", "STATUS"],
            &[vec![String::from("mapillary"), "enabled".into()]],
        );
        assert_eq!(text, "ID         STATUS\nmapillary  enabled\n");
    }
}
