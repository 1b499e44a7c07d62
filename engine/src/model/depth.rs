//! How deep a YAML document's flow collections (`[...]`, `{...}`) nest, found before it
//! is parsed.
//!
//! The YAML parser's time grows with the square of flow nesting (20,000 nested `[` take
//! a second, 100,000 took 18 s), so a document nested deeper than
//! [`MAX_DOCUMENT_DEPTH`] is refused before the parser sees it. JSON needs no such
//! check: its parser stops at the same depth as it goes. The scan follows YAML's
//! lexical rules only as far as they decide what is a bracket: quoted scalars (a quote
//! counts only where a scalar may begin), comments and block scalars (`|`, `>`) are
//! skipped, so brackets written as text never count and a quote inside a word never
//! hides real ones. It never allocates and reads each byte once.

/// Deepest nesting of collections a YAML or JSON document may have (JSON: serde_json's
/// own limit).
pub const MAX_DOCUMENT_DEPTH: usize = 128;

/// The first place where flow collections nest deeper than `max`: `(line, column)`,
/// both from 1.
pub fn yaml_flow_depth_over(text: &str, max: usize) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut line = 1;
    // Indentation of a line that opened a block scalar: deeper lines are its text.
    let mut block_scalar: Option<usize> = None;
    for raw in text.split('\n') {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let content = raw.trim();
        if let Some(parent) = block_scalar {
            if content.is_empty() || indent > parent {
                line += 1;
                continue;
            }
            block_scalar = None;
        }
        let mut quote: Option<char> = None;
        let mut escaped = false;
        // The last character that is not white space, on this line outside quotes.
        let mut last: Option<char> = None;
        let mut previous: Option<char> = None;
        let mut chars = raw.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if let Some(q) = quote {
                match c {
                    '\\' if q == '"' && !escaped => escaped = true,
                    // `''` is a quote inside a single-quoted scalar.
                    '\'' if q == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                        chars.next();
                    }
                    _ if c == q && !escaped => quote = None,
                    _ => escaped = false,
                }
                previous = Some(c);
                continue;
            }
            let after_space = previous.is_none_or(char::is_whitespace);
            match c {
                '#' if after_space => break,
                '"' | '\'' if opens_scalar(last, after_space) => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return Some((line, raw[..i].chars().count() + 1));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if !c.is_whitespace() {
                last = Some(c);
            }
            previous = Some(c);
        }
        // A block scalar indicator (`key: |`, `- >-`) ends its line outside quotes.
        if quote.is_none() && is_block_indicator(content) {
            block_scalar = Some(indent);
        }
        line += 1;
    }
    None
}

/// Whether a quote here begins a quoted scalar: at the start of a line's content, after
/// a flow indicator (`[`, `{`, `,`), or after `:`, `-`, `?` and white space. Elsewhere
/// (inside a word: `Ada's`) it is text.
fn opens_scalar(last: Option<char>, after_space: bool) -> bool {
    match last {
        None => true,
        Some('[' | '{' | ',') => true,
        Some(':' | '-' | '?') => after_space,
        Some(_) => false,
    }
}

/// Whether a line ends with a block scalar indicator: `|` or `>`, with optional chomping
/// and indentation indicators, after `:`, `-` or alone.
fn is_block_indicator(content: &str) -> bool {
    let content = content
        .split_once(" #")
        .map_or(content, |(before, _)| before)
        .trim_end();
    let Some(at) = content.rfind(['|', '>']) else {
        return false;
    };
    let (before, indicator) = content.split_at(at);
    let flags_ok = indicator[1..]
        .chars()
        .all(|c| matches!(c, '-' | '+') || c.is_ascii_digit());
    let before = before.trim_end();
    flags_ok && (before.is_empty() || before.ends_with(':') || before.ends_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_found_where_it_goes_over() {
        let deep = format!("nodes: {}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(yaml_flow_depth_over(&deep, 128), Some((1, 8 + 128)));
        let ok = format!("nodes: {}{}", "[".repeat(128), "]".repeat(128));
        assert_eq!(yaml_flow_depth_over(&ok, 128), None);
        let multi = format!("a:\n  - {}\n{}", "{x: ".repeat(3), "[".repeat(5));
        assert_eq!(yaml_flow_depth_over(&multi, 7), Some((3, 5)));
    }

    #[test]
    fn brackets_as_text_do_not_count() {
        let text = "a: \"[[[[[[[[[[\"\nb: '{{{{{{{{{{'\nc: x # [[[[[[[[[[\nd: |\n  [[[[[[[[[[\n  \"\ne: [1, 2]\n";
        assert_eq!(yaml_flow_depth_over(text, 2), None);
        // Escapes inside double quotes, doubled quotes inside single ones.
        let escaped = "a: \"\\\"[[[[[[\"\nb: 'it''s [[[[[['\n";
        assert_eq!(yaml_flow_depth_over(escaped, 2), None);
    }

    #[test]
    fn a_quote_inside_a_word_hides_nothing() {
        // In flow context `x'` is a plain scalar; the brackets after it are real.
        let sneaky = format!("a: [x'{}", "[".repeat(10));
        assert!(yaml_flow_depth_over(&sneaky, 5).is_some());
        let label = format!("label: Ada's journey\nnodes: {}", "[".repeat(10));
        assert!(yaml_flow_depth_over(&label, 5).is_some());
        // A block scalar's text ends where the indentation does.
        let after_block = format!("d: |\n  \"\ne: {}", "[".repeat(10));
        assert!(yaml_flow_depth_over(&after_block, 5).is_some());
    }

    #[test]
    fn the_examples_are_shallow() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/journeys");
        for entry in std::fs::read_dir(dir).expect("examples") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            assert_eq!(yaml_flow_depth_over(&text, 8), None, "{}", path.display());
        }
    }
}
