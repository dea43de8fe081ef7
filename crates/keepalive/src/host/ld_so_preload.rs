//! `/etc/ld.so.preload`: the libraries the dynamic loader preloads into
//! every dynamically linked program. This module edits its text (adds or
//! removes one entry) and touches no file: the caller reads and writes.
//!
//! glibc's loader reads the file as names separated by spaces, tabs,
//! newlines or colons, where `#` starts a comment that runs to the end of
//! the line (glibc `elf/rtld.c`, `dl_main`, "Parse the file"; see also
//! ld.so(8)). Edits keep every other entry, comment and line byte for byte,
//! and are idempotent: adding an entry that is there, or removing one that
//! is not, changes nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the dynamic loader looks for the file.
pub const LD_SO_PRELOAD: &str = "/etc/ld.so.preload";

/// The bytes glibc's loader splits entries on.
const SEPARATORS: &[u8] = b" \t\n:";

fn is_separator(b: &u8) -> bool {
    SEPARATORS.contains(b)
}

/// A path that cannot be written as one entry: it is empty or holds a
/// separator (space, tab, newline, colon) or a `#`, so the loader would read
/// it as something else.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} cannot be an ld.so.preload entry: the loader splits entries on spaces, \
     tabs, newlines and colons and reads # as a comment"
)]
pub struct InvalidEntry {
    /// The refused path.
    pub entry: PathBuf,
}

/// The text of an `ld.so.preload` file.
///
/// ```
/// use std::path::Path;
/// let ours = Path::new("/usr/local/lib/keepalive/libkeepalive.so");
/// let mut file = keepalive::host::LdSoPreload::new(b"# site\n/usr/lib/libfoo.so\n".to_vec());
/// assert!(file.add(ours)?);
/// assert!(!file.add(ours)?); // already there: nothing changes
/// assert_eq!(
///     file.as_bytes(),
///     b"# site\n/usr/lib/libfoo.so\n/usr/local/lib/keepalive/libkeepalive.so\n"
/// );
/// assert!(file.remove(ours));
/// assert_eq!(file.as_bytes(), b"# site\n/usr/lib/libfoo.so\n");
/// # Ok::<(), keepalive::host::InvalidEntry>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LdSoPreload {
    text: Vec<u8>,
}

impl LdSoPreload {
    /// The file's text as read (an absent file is empty text).
    pub fn new(text: Vec<u8>) -> LdSoPreload {
        LdSoPreload { text }
    }

    /// The text, edits included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// The text, edits included.
    pub fn into_bytes(self) -> Vec<u8> {
        self.text
    }

    /// The entries the loader would preload, in order (comments skipped).
    pub fn entries(&self) -> impl Iterator<Item = &Path> {
        self.text
            .split(|b| *b == b'\n')
            .flat_map(|line| tokens(code(line)))
            .map(|(start, end, line)| Path::new(OsStr::from_bytes(&line[start..end])))
    }

    /// True when `entry` is one of the [`entries`](Self::entries) (exactly:
    /// no path normalisation; a commented-out entry does not count).
    pub fn contains(&self, entry: &Path) -> bool {
        self.entries().any(|e| e == entry)
    }

    /// True when the text holds nothing but whitespace: no entry, no
    /// comment. Such a file is better removed than written.
    pub fn is_blank(&self) -> bool {
        self.text.iter().all(u8::is_ascii_whitespace)
    }

    /// Appends `entry` on a line of its own, unless it is already an entry.
    /// Returns whether the text changed.
    pub fn add(&mut self, entry: &Path) -> Result<bool, InvalidEntry> {
        let bytes = valid(entry)?;
        if self.contains(entry) {
            return Ok(false);
        }
        if self.text.last().is_some_and(|b| *b != b'\n') {
            self.text.push(b'\n');
        }
        self.text.extend_from_slice(bytes);
        self.text.push(b'\n');
        Ok(true)
    }

    /// Removes every occurrence of `entry`, keeping the other entries of
    /// its line and their separators, and the line's comment; a line left
    /// with nothing on it is removed. Returns whether the text changed.
    pub fn remove(&mut self, entry: &Path) -> bool {
        let Ok(entry) = valid(entry) else {
            // No entry of the file can hold a separator.
            return false;
        };
        let mut out = Vec::with_capacity(self.text.len());
        let mut changed = false;
        for line in self.text.split_inclusive(|b| *b == b'\n') {
            let (body, newline) = match line.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (line, false),
            };
            match remove_from_line(body, entry) {
                None => out.extend_from_slice(line),
                Some(edited) => {
                    changed = true;
                    if !edited.is_empty() {
                        out.extend_from_slice(&edited);
                        if newline {
                            out.push(b'\n');
                        }
                    }
                }
            }
        }
        if changed {
            self.text = out;
        }
        changed
    }
}

fn valid(entry: &Path) -> Result<&[u8], InvalidEntry> {
    let bytes = entry.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.iter().any(|b| is_separator(b) || *b == b'#') {
        return Err(InvalidEntry {
            entry: entry.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The part of a line before its comment.
fn code(line: &[u8]) -> &[u8] {
    match line.iter().position(|b| *b == b'#') {
        Some(hash) => &line[..hash],
        None => line,
    }
}

/// The `(start, end, code)` spans of the entries in `code`.
fn tokens(code: &[u8]) -> impl Iterator<Item = (usize, usize, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + code[at..].iter().position(|b| !is_separator(b))?;
        let end = code[start..]
            .iter()
            .position(is_separator)
            .map_or(code.len(), |n| start + n);
        at = end;
        Some((start, end, code))
    })
}

/// `line` (without its newline) with every `entry` taken out, or `None`
/// when it holds none. Each kept entry keeps the separators that followed
/// it, except the last kept one, which gets the line's trailing separators;
/// the indentation and the comment stay. An empty result means: drop the
/// line.
fn remove_from_line(line: &[u8], entry: &[u8]) -> Option<Vec<u8>> {
    let code = code(line);
    let comment = &line[code.len()..];
    let spans: Vec<(usize, usize)> = tokens(code).map(|(s, e, _)| (s, e)).collect();
    if !spans.iter().any(|&(s, e)| &code[s..e] == entry) {
        return None;
    }
    // Each span with the separators after it, up to the next span.
    let pieces: Vec<(&[u8], &[u8])> = spans
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| {
            let next = spans.get(i + 1).map_or(code.len(), |&(s, _)| s);
            (&code[s..e], &code[e..next])
        })
        .collect();
    let kept: Vec<&(&[u8], &[u8])> = pieces.iter().filter(|(t, _)| *t != entry).collect();
    let mut out = Vec::with_capacity(line.len());
    if let Some((last, rest)) = kept.split_last() {
        out.extend_from_slice(&code[..spans[0].0]);
        for (token, separators) in rest {
            out.extend_from_slice(token);
            out.extend_from_slice(separators);
        }
        out.extend_from_slice(last.0);
        // The separators after the line's last entry.
        out.extend_from_slice(pieces.last().map_or(&[][..], |p| p.1));
    }
    // A comment alone on its line keeps its place; bare separators do not.
    out.extend_from_slice(comment);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "/usr/local/lib/keepalive/libkeepalive.so";

    fn ours() -> &'static Path {
        Path::new(OURS)
    }

    fn added(text: &str) -> String {
        let mut file = LdSoPreload::new(text.into());
        assert_eq!(file.add(ours()), Ok(true), "{text:?}");
        String::from_utf8(file.into_bytes()).unwrap()
    }

    fn removed(text: &str) -> String {
        let mut file = LdSoPreload::new(text.into());
        assert!(file.remove(ours()), "{text:?}");
        String::from_utf8(file.into_bytes()).unwrap()
    }

    #[test]
    fn add_to_empty() {
        assert_eq!(added(""), format!("{OURS}\n"));
    }

    #[test]
    fn add_after_other_entries_and_comments() {
        let text = "# site libraries\n/usr/lib/libfoo.so  /opt/bar.so:/x.so # tail\n\n";
        assert_eq!(added(text), format!("{text}{OURS}\n"));
    }

    #[test]
    fn add_to_text_without_trailing_newline() {
        assert_eq!(
            added("/usr/lib/libfoo.so"),
            format!("/usr/lib/libfoo.so\n{OURS}\n")
        );
        assert_eq!(
            added("# only a comment"),
            format!("# only a comment\n{OURS}\n")
        );
    }

    #[test]
    fn add_present_among_others_on_one_line_changes_nothing() {
        for text in [
            format!("/a.so {OURS} /b.so\n"),
            format!("/a.so:{OURS}\n"),
            format!("\t{OURS}# trailing comment"),
            OURS.to_owned(),
        ] {
            let mut file = LdSoPreload::new(text.clone().into());
            assert_eq!(file.add(ours()), Ok(false), "{text:?}");
            assert_eq!(file.as_bytes(), text.as_bytes());
        }
    }

    #[test]
    fn add_when_only_commented_out() {
        let text = format!("# {OURS}\n");
        assert_eq!(added(&text), format!("{text}{OURS}\n"));
    }

    #[test]
    fn add_refuses_entries_the_loader_would_split() {
        for bad in [
            "",
            "/my lib.so",
            "/a.so:/b.so",
            "/x#y.so",
            "/a\t.so",
            "/a\n.so",
        ] {
            let mut file = LdSoPreload::new(b"/a.so\n".to_vec());
            assert_eq!(
                file.add(Path::new(bad)),
                Err(InvalidEntry { entry: bad.into() })
            );
            assert_eq!(file.as_bytes(), b"/a.so\n");
        }
    }

    #[test]
    fn add_then_add_again_is_idempotent() {
        let mut file = LdSoPreload::new(b"/a.so\n".to_vec());
        assert_eq!(file.add(ours()), Ok(true));
        let once = file.clone();
        assert_eq!(file.add(ours()), Ok(false));
        assert_eq!(file, once);
    }

    #[test]
    fn prefix_and_suffix_are_other_entries() {
        let text = format!("{OURS}.1 /x{OURS}\n");
        let mut file = LdSoPreload::new(text.clone().into());
        assert!(!file.contains(ours()));
        assert!(!file.remove(ours()));
        assert_eq!(file.as_bytes(), text.as_bytes());
    }

    #[test]
    fn entries_skip_comments_and_separators() {
        let file = LdSoPreload::new(b" /a.so:/b.so\t/c.so # /d.so\n#/e.so\n::/f.so#x".to_vec());
        let entries: Vec<&Path> = file.entries().collect();
        assert_eq!(entries, ["/a.so", "/b.so", "/c.so", "/f.so"].map(Path::new));
    }

    #[test]
    fn remove_our_line_keeps_the_others() {
        let text = "# site\n/usr/lib/libfoo.so\n\n# end\n";
        assert_eq!(removed(&added(text)), text);
    }

    #[test]
    fn remove_the_only_line_leaves_blank_text() {
        let mut file = LdSoPreload::new(format!("{OURS}\n").into());
        assert!(file.remove(ours()));
        assert_eq!(file.as_bytes(), b"");
        assert!(file.is_blank());
    }

    #[test]
    fn remove_from_a_line_with_several_entries() {
        assert_eq!(removed(&format!("/a.so {OURS} /b.so\n")), "/a.so /b.so\n");
        assert_eq!(removed(&format!("{OURS}:/a.so /b.so\n")), "/a.so /b.so\n");
        assert_eq!(removed(&format!("/a.so:{OURS}\n")), "/a.so\n");
        assert_eq!(removed(&format!("  /a.so\t{OURS}  \n")), "  /a.so  \n");
        assert_eq!(
            removed(&format!("/a.so {OURS} {OURS}:/b.so\n")),
            "/a.so /b.so\n"
        );
    }

    #[test]
    fn remove_keeps_the_comment_of_its_line() {
        assert_eq!(removed(&format!("{OURS} # keepalive\n")), "# keepalive\n");
        assert_eq!(removed(&format!("/a.so {OURS} # keep\n")), "/a.so # keep\n");
    }

    #[test]
    fn remove_every_occurrence() {
        let text = format!("{OURS}\n/a.so\n{OURS}");
        assert_eq!(removed(&text), "/a.so\n");
    }

    #[test]
    fn remove_last_line_without_newline() {
        assert_eq!(removed(&format!("/a.so\n{OURS}")), "/a.so\n");
    }

    #[test]
    fn remove_absent_changes_nothing() {
        for text in [
            "",
            "/a.so\n",
            "# /usr/local/lib/keepalive/libkeepalive.so\n",
        ] {
            let mut file = LdSoPreload::new(text.into());
            assert!(!file.remove(ours()), "{text:?}");
            assert_eq!(file.as_bytes(), text.as_bytes());
        }
        let mut file = LdSoPreload::new(b"/a.so\n".to_vec());
        assert!(!file.remove(Path::new("/my lib.so")));
    }

    #[test]
    fn blank_is_whitespace_only() {
        assert!(LdSoPreload::new(b" \n\t\n".to_vec()).is_blank());
        assert!(!LdSoPreload::new(b"# note\n".to_vec()).is_blank());
        assert!(!LdSoPreload::new(b"/a.so".to_vec()).is_blank());
    }
}
