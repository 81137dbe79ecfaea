//! Text helpers shared by the SVG and HTML writers: escaping, number
//! formatting, line wrapping and width estimates.

/// Escapes text for XML and HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in XML.
            c if c.is_control() && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Formats a count-like value for people: no decimals from 10 up, one below
/// 10, two below 1, trailing zeros dropped.
pub(crate) fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 10.0 {
        0
    } else if magnitude >= 1.0 {
        1
    } else if magnitude >= 0.1 || magnitude == 0.0 {
        2
    } else {
        3
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    if text == "-0" { "0".to_owned() } else { text }
}

/// Appends `value` with two decimals (trailing zeros dropped), the precision
/// of page coordinates. Much faster than `format!("{value:.2}")`, which
/// matters for maps with thousands of cells. `value` must be finite and below
/// 10^16 in magnitude.
pub(crate) fn push_coordinate(out: &mut String, value: f64) {
    let hundredths = (value * 100.0).round() as i64;
    if hundredths < 0 {
        out.push('-');
    }
    let magnitude = hundredths.unsigned_abs();
    let whole = magnitude / 100;
    let fraction = magnitude % 100;
    let mut digits = [0u8; 20];
    let mut n = whole;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[..len].iter().rev().map(|&d| d as char));
    if fraction != 0 {
        out.push('.');
        out.push((b'0' + (fraction / 10) as u8) as char);
        if !fraction.is_multiple_of(10) {
            out.push((b'0' + (fraction % 10) as u8) as char);
        }
    }
}

/// Formats a fraction (0.8) as a percentage ("80%").
pub(crate) fn format_percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// Average advance width of DejaVu Sans glyphs in ems, a little generous, so
/// that estimated text boxes contain the rendered text.
const AVERAGE_EM: f64 = 0.6;

/// Estimated width of `text` at `font_size`.
pub(crate) fn text_width(text: &str, font_size: f64) -> f64 {
    text.chars().count() as f64 * font_size * AVERAGE_EM
}

/// Splits `text` into lines that fit `width` at `font_size`, breaking at
/// spaces (a word longer than a line is broken inside).
pub(crate) fn wrap(text: &str, width: f64, font_size: f64) -> Vec<String> {
    let max_chars = ((width / (font_size * AVERAGE_EM)).floor() as usize).max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let line_chars = line.chars().count();
            let needed = if line.is_empty() { word.len() } else { line_chars + 1 + word.len() };
            if needed <= max_chars {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a whole line.
            let rest = word.split_off(max_chars);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<b a=\"1\">Tom & 'Jerry'</b>"),
            "&lt;b a=&quot;1&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("a\u{0}b\tc"), "a b\tc");
    }

    #[test]
    fn format_value_cases() {
        let check = |value: f64, expected: &str| assert_eq!(format_value(value), expected, "{value}");
        check(0.0, "0");
        check(-0.0001, "0");
        check(1234.4, "1234");
        check(12.6, "13");
        check(3.27, "3.3");
        check(3.0, "3");
        check(0.456, "0.46");
        check(0.0123, "0.012");
    }

    #[test]
    fn push_coordinate_cases() {
        let check = |value: f64, expected: &str| {
            let mut out = String::new();
            push_coordinate(&mut out, value);
            assert_eq!(out, expected, "{value}");
        };
        check(0.0, "0");
        check(-0.001, "0");
        check(12.345, "12.35");
        check(12.3, "12.3");
        check(-7.05, "-7.05");
        check(1200.0, "1200");
        check(0.5, "0.5");
        check(-1234567.891, "-1234567.89");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_inside_long_words() {
        assert_eq!(wrap("one two three", 6.0 * 10.0 * 0.6 * 10.0, 1.0), vec!["one two three"]);
        let lines = wrap("alpha beta gamma delta", 12.0 * 0.6 * 10.0, 10.0);
        assert_eq!(lines, vec!["alpha beta", "gamma delta"]);
        let lines = wrap("abcdefghijklmnopqrstuvwxyz", 10.0 * 0.6 * 10.0, 10.0);
        assert_eq!(lines, vec!["abcdefghij", "klmnopqrst", "uvwxyz"]);
        assert_eq!(wrap("", 100.0, 10.0), vec![""]);
    }
}
