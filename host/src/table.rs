//! Plain-text tables for terminal output.

/// Renders rows under a header, columns padded to their widest cell; the last column is not padded.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < columns {
                text.push_str(cell);
                text.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            } else {
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// [`render`], fitted to `width` columns when given: the last column wraps onto continuation lines
/// under its own start (at word boundaries; a word longer than the space is cut); when the other
/// columns leave it less than [`MIN_LAST_COLUMN`], it goes on its own lines, indented.
pub fn render_fitted(header: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    let Some(width) = width else {
        return render(header, rows);
    };
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
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
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate().take(columns.saturating_sub(1)) {
            text.push_str(cell);
            text.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
        }
        let last = cells.get(columns - 1).copied().unwrap_or_default();
        let wrapped = wrap(last, room);
        if indent == start {
            for (n, piece) in wrapped.iter().enumerate() {
                if n > 0 {
                    text.push_str(&" ".repeat(indent));
                }
                text.push_str(piece);
                out.push_str(text.trim_end());
                out.push('\n');
                text.clear();
            }
            if wrapped.is_empty() {
                out.push_str(text.trim_end());
                out.push('\n');
            }
        } else {
            // The other columns alone are wider than the terminal: cut them, the last one follows.
            let fixed = text.trim_end();
            if fixed.chars().count() > width {
                let cut: String = fixed.chars().take(width.saturating_sub(1)).collect();
                out.push_str(&cut);
                out.push('…');
            } else {
                out.push_str(fixed);
            }
            out.push('\n');
            for piece in wrapped {
                out.push_str(&" ".repeat(indent));
                out.push_str(&piece);
                out.push('\n');
            }
        }
    };
    line(header);
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

/// The narrowest the last column of [`render_fitted`] gets beside the others.
pub const MIN_LAST_COLUMN: usize = 20;

/// `text` in lines of at most `room` characters, broken at spaces where possible.
fn wrap(text: &str, room: usize) -> Vec<String> {
    let room = room.max(1);
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = current.chars().count();
            let space = usize::from(used > 0);
            if used + space + word.len() <= room {
                if space == 1 {
                    current.push(' ');
                }
                current.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut current));
                continue;
            }
            let rest = word.split_off(room);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
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
                "a".into(),
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
            &[vec!["mapillary".into(), "enabled".into()]],
        );
        assert_eq!(text, "ID         STATUS\nmapillary  enabled\n");
    }
}
