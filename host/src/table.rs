//! Plain-text tables for terminal output.

/// The width of each cell of `header` and `rows` in characters (row by row, `header.len()` per row,
/// the header first), and the widest of each column.
fn measure<R: AsRef<[S]>, S: AsRef<str>>(
    header: &[&str],
    rows: &[R],
) -> (Vec<usize>, Vec<usize>) {
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

/// Appends `cells` (whose widths in characters are `counts`) padded to `widths`, but the last column,
/// which is appended as it is: the line so far, without its trailing whitespace.
fn fixed_columns(out: &mut String, cells: &[&str], counts: &[usize], widths: &[usize]) {
    let columns = widths.len();
    for (i, cell) in cells.iter().enumerate().take(columns.saturating_sub(1)) {
        out.push_str(cell);
        pad(out, widths[i] - counts[i] + 2);
    }
}

/// Renders rows under a header, columns padded to their widest cell; the last column is not padded.
pub fn render<R: AsRef<[S]>, S: AsRef<str>>(header: &[&str], rows: &[R]) -> String {
    let columns = header.len();
    let (counts, widths) = measure(header, rows);
    let start: usize = widths.iter().take(columns.saturating_sub(1)).map(|w| w + 2).sum();
    let last: usize = rows
        .iter()
        .map(|r| r.as_ref().get(columns.wrapping_sub(1)).map_or(0, |c| c.as_ref().len()))
        .sum();
    let mut out = String::with_capacity((rows.len() + 1) * (start + 1) + last);
    let mut line = |cells: &[&str], counts: &[usize]| {
        let from = out.len();
        fixed_columns(&mut out, cells, counts, &widths);
        for cell in cells.iter().skip(columns.saturating_sub(1)) {
            out.push_str(cell);
        }
        trim_end_from(&mut out, from);
        out.push('\n');
    };
    line(header, &counts[..columns]);
    let mut cells: Vec<&str> = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        cells.clear();
        cells.extend(row.as_ref().iter().map(AsRef::as_ref));
        line(&cells, &counts[(n + 1) * columns..(n + 2) * columns]);
    }
    out
}

/// [`render`], fitted to `width` columns when given: the last column wraps onto continuation lines
/// under its own start (at word boundaries; a word longer than the space is cut); when the other
/// columns leave it less than [`MIN_LAST_COLUMN`], it goes on its own lines, indented.
pub fn render_fitted<R: AsRef<[S]>, S: AsRef<str>>(
    header: &[&str],
    rows: &[R],
    width: Option<usize>,
) -> String {
    let Some(width) = width else {
        return render(header, rows);
    };
    let columns = header.len();
    let (counts, widths) = measure(header, rows);
    let start: usize = widths
        .iter()
        .take(columns.saturating_sub(1))
        .map(|w| w + 2)
        .sum();
    let (indent, room) = if width > start + MIN_LAST_COLUMN {
        (start, width - start)
    } else {
        (4, width.saturating_sub(4).max(MIN_LAST_COLUMN))
    };
    let mut out = String::with_capacity((rows.len() + 1) * (width + 1));
    let mut wrapped: Vec<String> = Vec::new();
    let mut line = |cells: &[&str], counts: &[usize]| {
        let from = out.len();
        fixed_columns(&mut out, cells, counts, &widths);
        let last = cells.get(columns.wrapping_sub(1)).copied().unwrap_or_default();
        wrap_into(last, room, &mut wrapped);
        if indent == start {
            for (n, piece) in wrapped.iter().enumerate() {
                let at = if n > 0 {
                    let at = out.len();
                    pad(&mut out, indent);
                    at
                } else {
                    from
                };
                out.push_str(piece);
                trim_end_from(&mut out, at);
                out.push('\n');
            }
            if wrapped.is_empty() {
                trim_end_from(&mut out, from);
                out.push('\n');
            }
        } else {
            // The other columns alone are wider than the terminal: cut them, the last one follows.
            trim_end_from(&mut out, from);
            if out[from..].chars().count() > width {
                let cut = out[from..]
                    .char_indices()
                    .nth(width.saturating_sub(1))
                    .map_or(out.len(), |(at, _)| from + at);
                out.truncate(cut);
                out.push('…');
            }
            out.push('\n');
            for piece in &wrapped {
                pad(&mut out, indent);
                out.push_str(piece);
                out.push('\n');
            }
        }
    };
    line(header, &counts[..columns]);
    let mut cells: Vec<&str> = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        cells.clear();
        cells.extend(row.as_ref().iter().map(AsRef::as_ref));
        line(&cells, &counts[(n + 1) * columns..(n + 2) * columns]);
    }
    out
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
            let at = word.char_indices().nth(room).map_or(word.len(), |(at, _)| at);
            lines.push(word[..at].to_string());
            word = &word[at..];
            chars -= room;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
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
    fn pads_columns() {
        let text = super::render(
            &["ID", "STATUS"],
            &[vec![String::from("mapillary"), "enabled".into()]],
        );
        assert_eq!(text, "ID         STATUS\nmapillary  enabled\n");
    }
}
