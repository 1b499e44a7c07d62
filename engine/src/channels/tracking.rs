//! Click tracking: the links of an email's HTML part rewritten to the engine's redirect
//! (`{public_url}/r/{token}`), which records `message.clicked` and leads on.
//!
//! Owns finding the links (`href` attributes whose value is an absolute `http` or
//! `https` URL, in single or double quotes, HTML entities of `&` decoded) and putting the
//! tracked form in their place. Never touches the text part, other attributes, or the
//! unsubscribe link (a click on it is not interest, and it must keep working as it is).

/// `html` with every tracked link replaced by `track(url)`; `keep` is left as it is.
pub fn track_links(
    html: &str,
    keep: Option<&str>,
    mut track: impl FnMut(&str) -> String,
) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() + 64);
    let mut at = 0;
    while let Some(found) = lower[at..].find("href") {
        let name_start = at + found;
        let mut i = name_start + 4;
        let bytes = html.as_bytes();
        // `href`, then optional spaces, `=`, optional spaces, a quote.
        let is_attribute = name_start == 0 || bytes[name_start - 1].is_ascii_whitespace();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if !is_attribute || bytes.get(i) != Some(&b'=') {
            out.push_str(&html[at..name_start + 4]);
            at = name_start + 4;
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&quote) = bytes.get(i).filter(|q| **q == b'"' || **q == b'\'') else {
            out.push_str(&html[at..i]);
            at = i;
            continue;
        };
        let value_start = i + 1;
        let Some(len) = html[value_start..].find(quote as char) else {
            break;
        };
        let value = &html[value_start..value_start + len];
        let url = value.replace("&amp;", "&").replace("&#38;", "&");
        let scheme = url
            .get(..8)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let tracked = (scheme.starts_with("http://") || scheme.starts_with("https://"))
            && keep != Some(url.as_str());
        out.push_str(&html[at..value_start]);
        if tracked {
            out.push_str(&track(&url));
        } else {
            out.push_str(value);
        }
        at = value_start + len;
    }
    out.push_str(&html[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_links_are_tracked_and_the_rest_kept() {
        let html = "<a href=\"https://shop.example/sale?a=1&amp;b=2\">Sale</a> \
                    <a class=x HREF='http://blog.example/'>Blog</a> \
                    <a href=\"mailto:help@example.com\">Help</a> <a href=\"/relative\">r</a> \
                    <a data-href=\"https://no.example\">n</a> <p>href is a word</p> \
                    <a href=\"https://e.example/unsubscribe/t\">Unsubscribe</a>";
        let mut seen = Vec::new();
        let out = track_links(html, Some("https://e.example/unsubscribe/t"), |u| {
            seen.push(u.to_string());
            format!("https://e.example/r/{}", seen.len())
        });
        assert_eq!(
            seen,
            ["https://shop.example/sale?a=1&b=2", "http://blog.example/"]
        );
        assert_eq!(
            out,
            "<a href=\"https://e.example/r/1\">Sale</a> \
             <a class=x HREF='https://e.example/r/2'>Blog</a> \
             <a href=\"mailto:help@example.com\">Help</a> <a href=\"/relative\">r</a> \
             <a data-href=\"https://no.example\">n</a> <p>href is a word</p> \
             <a href=\"https://e.example/unsubscribe/t\">Unsubscribe</a>"
        );
        // An unterminated attribute leaves the rest as it is.
        assert_eq!(
            track_links("<a href=\"https://x", None, |_| "T".into()),
            "<a href=\"https://x"
        );
    }
}
