//! Secret masking on a byte stream.
//!
//! Every occurrence of every secret value (of four characters or more) becomes
//! `***` before a byte is spooled or sent. The rule is defined on the whole
//! stream: mark every byte covered by any occurrence of any secret, then write each
//! maximal run of marked bytes as one `***`. Marking, rather than replacing
//! occurrences one by one, is what makes overlapping secrets safe: with secrets
//! `abcd` and `cdef`, `abcdef` becomes `***`, not `***ef` (which would leak part of
//! `cdef`).
//!
//! The stream arrives in reads of any size, so a secret can be split across two of
//! them. [`Masker`] therefore holds back the tail of the input that could still be
//! the start of a secret (at most `longest − 1` bytes) until more arrives or the
//! stream ends ([`Masker::finish`]). Only such a tail: output that ends in
//! something no secret starts with (a newline, usually) goes out at once, so
//! masking does not delay a quiet job's last line. It also keeps the last
//! `longest` bytes it already emitted as context, so an occurrence that starts
//! there and runs into new input is found, and a run of marks that continues
//! across the boundary is written as one `***`, not two. The output is therefore
//! byte-for-byte the same however the input is split (a test checks that against
//! random splits).
//!
//! Values shorter than four characters are not masked: `***` in place of every
//! `1` or `yes` would make logs unreadable and hides nothing. Each line of a
//! multi-line secret (a PEM key) is also masked on its own, since programs often
//! print such values line by line or with other line endings, as GitHub Actions
//! does.

/// Secrets shorter than this many characters are not masked.
const MIN_CHARS: usize = 4;
/// What a masked run becomes.
pub(crate) const MASK: &[u8] = b"***";

/// A streaming masker for one job's output.
#[derive(Debug, Default)]
pub(crate) struct Masker {
    /// Distinct values to mask, as bytes.
    secrets: Vec<Vec<u8>>,
    /// The longest secret's length in bytes (0: nothing to mask).
    longest: usize,
    /// The last `longest` bytes already emitted (raw, before masking).
    context: Vec<u8>,
    /// Bytes received but not emitted yet: fewer than `longest`.
    pending: Vec<u8>,
    /// Scratch: which bytes of `context + pending + input` are covered.
    marks: Vec<bool>,
}

impl Masker {
    /// A masker for these secret values.
    pub(crate) fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<Vec<u8>> = Vec::new();
        let mut add = |value: &str| {
            if value.chars().count() >= MIN_CHARS && !secrets.iter().any(|s| s == value.as_bytes())
            {
                secrets.push(value.as_bytes().to_vec());
            }
        };
        for value in values {
            add(value);
            if value.contains('\n') {
                for line in value.lines() {
                    add(line.trim_end_matches('\r'));
                }
            }
        }
        let longest = secrets.iter().map(Vec::len).max().unwrap_or(0);
        Self {
            secrets,
            longest,
            ..Self::default()
        }
    }

    /// Masks `input`, appending what can be emitted so far to `out`.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.process(input, false, out);
    }

    /// Emits everything held back (end of the stream).
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        self.process(&[], true, out);
    }

    fn process(&mut self, input: &[u8], eof: bool, out: &mut Vec<u8>) {
        if self.secrets.is_empty() {
            out.extend_from_slice(input);
            return;
        }
        let mut buf = std::mem::take(&mut self.context);
        let emitted = buf.len();
        buf.append(&mut self.pending);
        buf.extend_from_slice(input);
        let len = buf.len();

        self.marks.clear();
        self.marks.resize(len, false);
        for secret in &self.secrets {
            mark_occurrences(&buf, secret, &mut self.marks);
        }

        // No occurrence that starts before `end` runs past the end of `buf`, so
        // every byte before `end` is decided; the rest waits for more input.
        let end = if eof {
            len
        } else {
            self.undecided_tail(&buf).max(emitted)
        };
        let mut i = emitted;
        while i < end {
            let start = i;
            if self.marks[i] {
                while i < end && self.marks[i] {
                    i += 1;
                }
                // A run that began in the context was already written as `***`.
                let continues = start == emitted && start > 0 && self.marks[start - 1];
                if !continues {
                    out.extend_from_slice(MASK);
                }
            } else {
                while i < end && !self.marks[i] {
                    i += 1;
                }
                out.extend_from_slice(&buf[start..i]);
            }
        }

        self.pending = buf[end..].to_vec();
        buf.truncate(end);
        let keep_from = end.saturating_sub(self.longest);
        buf.drain(..keep_from);
        self.context = buf;
    }
}

impl Masker {
    /// Where the tail of `buf` that may be the start of a secret begins (`buf.len()`
    /// if none): the first position from which the rest of `buf` is a proper
    /// prefix of some secret.
    fn undecided_tail(&self, buf: &[u8]) -> usize {
        let len = buf.len();
        let window = len.saturating_sub(self.longest - 1);
        (window..len)
            .find(|&p| {
                let rest = &buf[p..];
                self.secrets
                    .iter()
                    .any(|s| s.len() > rest.len() && s.starts_with(rest))
            })
            .unwrap_or(len)
    }
}

/// Marks every byte of every (possibly overlapping) occurrence of `secret`.
fn mark_occurrences(buf: &[u8], secret: &[u8], marks: &mut [bool]) {
    let Some((&first, _)) = secret.split_first() else {
        return;
    };
    if buf.len() < secret.len() {
        return;
    }
    let last_start = buf.len() - secret.len();
    let mut from = 0;
    while from <= last_start {
        let Some(offset) = buf[from..=last_start].iter().position(|&b| b == first) else {
            return;
        };
        let at = from + offset;
        if &buf[at..at + secret.len()] == secret {
            marks[at..at + secret.len()].fill(true);
        }
        from = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};

    use super::*;

    fn mask_all(secrets: &[&str], reads: &[&[u8]]) -> String {
        let mut masker = Masker::new(secrets.iter().copied());
        let mut out = Vec::new();
        for read in reads {
            masker.feed(read, &mut out);
        }
        masker.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_occurrence_of_a_secret_becomes_three_stars() {
        assert_eq!(
            mask_all(&["hunter2"], &[b"pw=hunter2 again hunter2.\n"]),
            "pw=*** again ***.\n"
        );
    }

    #[test]
    fn a_secret_split_across_two_reads_is_still_masked_at_every_split_point() {
        let text = b"token: s3cr3tvalue end";
        for split in 0..=text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(
                mask_all(&["s3cr3tvalue"], &[a, b]),
                "token: *** end",
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_secret_arriving_one_byte_per_read_is_masked() {
        let text = b"xx-abcdefgh-yy";
        let reads: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(mask_all(&["abcdefgh"], &reads), "xx-***-yy");
    }

    #[test]
    fn overlapping_secrets_are_masked_as_one_run_without_leaking_either() {
        assert_eq!(mask_all(&["abcd", "cdef"], &[b"<abcdef>"]), "<***>");
        // One secret inside another: the longer one is covered whole.
        assert_eq!(
            mask_all(&["pass", "password1"], &[b"password1 pass"]),
            "*** ***"
        );
        // A secret overlapping itself.
        assert_eq!(mask_all(&["aaaa"], &[b"baaaaaab"]), "b***b");
    }

    #[test]
    fn values_shorter_than_four_characters_are_not_masked() {
        assert_eq!(mask_all(&["abc", "1", ""], &[b"abc 1 abcd"]), "abc 1 abcd");
        // Four characters (not bytes) is the rule: "é" is two bytes.
        assert_eq!(
            mask_all(&["éé"], &[b"x\xc3\xa9\xc3\xa9x"]),
            "x\u{e9}\u{e9}x"
        );
        assert_eq!(mask_all(&["éééé"], &["<éééé>".as_bytes()]), "<***>");
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_masked_on_its_own() {
        let key = "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA\n-----END KEY-----";
        assert_eq!(
            mask_all(&[key], &[b"line: MIIEpAIBAAKCAQEA\n"]),
            "line: ***\n"
        );
        assert!(!mask_all(&[key], &[key.as_bytes()]).contains("MIIE"));
    }

    #[test]
    fn without_secrets_output_passes_through_at_once() {
        let mut masker = Masker::new([]);
        let mut out = Vec::new();
        masker.feed(b"partial line", &mut out);
        assert_eq!(out, b"partial line");
    }

    #[test]
    fn only_a_tail_that_could_start_a_secret_is_held_back() {
        let mut masker = Masker::new(["secret", "other-value"]);
        let mut out = Vec::new();
        masker.feed(b"line one\n", &mut out);
        assert_eq!(out, b"line one\n", "nothing could start a secret here");
        masker.feed(b"key: sec", &mut out);
        assert_eq!(
            out, b"line one\nkey: ",
            "`sec` may be the start of `secret`"
        );
        masker.feed(b"ret; oth", &mut out);
        assert_eq!(out, b"line one\nkey: ***; ");
        masker.finish(&mut out);
        assert_eq!(out, b"line one\nkey: ***; oth");
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_output_as_one_read() {
        let secrets = ["abab", "babba", "zzzzzz", "ab\nba"];
        let alphabet = b"abz\n ";
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let len = rng.gen_range(0..80);
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let whole = mask_all(&secrets, &[&text]);
            let mut reads = Vec::new();
            let mut rest = &text[..];
            while !rest.is_empty() {
                let (a, b) = rest.split_at(rng.gen_range(1..=rest.len()));
                reads.push(a);
                rest = b;
            }
            assert_eq!(mask_all(&secrets, &reads), whole, "input {text:?}");
            for secret in &secrets[..3] {
                assert!(!whole.contains(secret), "{secret} leaked in {whole:?}");
            }
        }
    }
}
