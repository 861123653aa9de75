//! Text measures: tokenisation, repetition, distinct-n, token F1 and ROUGE-L.
//!
//! Tokens are maximal runs of Unicode alphanumeric characters, lower-cased, so
//! punctuation and spacing differences do not count as disagreement (the same
//! normalisation SQuAD's evaluation script applies, without article removal).

use std::collections::HashMap;
use std::hash::BuildHasher;

/// Most tokens looked at per text; longer texts are measured on their prefix,
/// which keeps ROUGE-L's O(n·m) table at most `MAX_TOKENS²` cells.
pub const MAX_TOKENS: usize = 1024;

/// Splits `text` into lower-case alphanumeric tokens (at most `MAX_TOKENS`).
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(MAX_TOKENS)
        .map(|t| t.to_lowercase())
        .collect()
}

/// Hashes of the same tokens [`tokens`] yields, for the measures that only
/// compare tokens for identity (repetition, diversity). An ASCII token of up
/// to 64 bytes is lower-cased on the stack; nothing is allocated for it.
pub fn token_hashes(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(MAX_TOKENS)
        .map(token_hash)
        .collect()
}

/// Hash of one token, lower-cased. Both paths hash the lower-cased bytes,
/// so a token that lower-cases to ASCII (the Kelvin sign `K` -> `k`)
/// matches its ASCII spelling.
fn token_hash(token: &str) -> u64 {
    const STACK: usize = 64;
    if token.is_ascii() && token.len() <= STACK {
        let mut lower = [0u8; STACK];
        let lower = &mut lower[..token.len()];
        lower.copy_from_slice(token.as_bytes());
        lower.make_ascii_lowercase();
        identity_hasher().hash_one(&*lower)
    } else {
        identity_hasher().hash_one(token.to_lowercase().as_bytes())
    }
}

/// Hash of one n-gram of token hashes.
pub fn ngram_hash(gram: &[u64]) -> u64 {
    identity_hasher().hash_one(gram)
}

/// The hasher behind token and n-gram hashes: seeded once per process, so
/// an answer cannot be crafted to merge distinct n-grams, and the same
/// tokens hash alike for the life of the process (the windows compare
/// hashes taken minutes apart).
fn identity_hasher() -> &'static foldhash::quality::RandomState {
    static STATE: std::sync::OnceLock<foldhash::quality::RandomState> = std::sync::OnceLock::new();
    STATE.get_or_init(foldhash::quality::RandomState::default)
}

/// Repeated n-gram ratio: `1 - distinct n-grams / total n-grams`, over
/// token hashes ([`token_hashes`]).
///
/// 0 for text without repetition, approaching 1 for degenerate output such as
/// "the the the ..." (for n = 3 and k tokens of one word: 1 - 1/(k-2)).
/// Texts with fewer than `n` tokens have no n-grams and score 0.
pub fn repeated_ngram_ratio(tokens: &[u64], n: usize) -> f64 {
    if n == 0 || tokens.len() < n {
        return 0.0;
    }
    let mut grams: Vec<u64> = tokens.windows(n).map(ngram_hash).collect();
    let total = grams.len();
    grams.sort_unstable();
    grams.dedup();
    1.0 - grams.len() as f64 / total as f64
}

/// Token-level F1 (SQuAD): harmonic mean of precision and recall of the
/// multiset of tokens shared by prediction and reference. Two empty texts
/// agree (1.0); one empty text scores 0.
pub fn token_f1(prediction: &[String], reference: &[String]) -> f64 {
    if prediction.is_empty() && reference.is_empty() {
        return 1.0;
    }
    if prediction.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in reference {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let mut common = 0usize;
    for t in prediction {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / prediction.len() as f64;
    let recall = common as f64 / reference.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Length of the longest common subsequence of two token sequences
/// (dynamic programming with two rows, O(n·m) time, O(m) memory).
pub fn lcs_len(a: &[String], b: &[String]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                current[j].max(previous[j + 1])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// ROUGE-L F-measure (Lin, 2004, "ROUGE: A Package for Automatic Evaluation of
/// Summaries", section 3.1) with β = 1, as Google's `rouge-score` reports it:
/// P = LCS/|prediction|, R = LCS/|reference|, F = 2PR/(P+R).
pub fn rouge_l(prediction: &[String], reference: &[String]) -> f64 {
    if prediction.is_empty() && reference.is_empty() {
        return 1.0;
    }
    let lcs = lcs_len(prediction, reference);
    if lcs == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / prediction.len() as f64;
    let recall = lcs as f64 / reference.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Vec<String> {
        tokens(text)
    }

    #[test]
    fn tokenises_on_non_alphanumerics() {
        assert_eq!(
            t("Mark: 12, at (0.5,0.3)!"),
            ["mark", "12", "at", "0", "5", "0", "3"]
        );
        assert!(t("  ...  ").is_empty());
    }

    #[test]
    fn repetition_of_degenerate_output() {
        let words = token_hashes(&"the ".repeat(20));
        let ratio = repeated_ngram_ratio(&words, 3);
        assert!((ratio - (1.0 - 1.0 / 18.0)).abs() < 1e-12, "{ratio}");
        let normal = token_hashes(
            "The robot should move the gripper to the left of the red block and then close it",
        );
        assert_eq!(repeated_ngram_ratio(&normal, 3), 0.0);
        assert_eq!(repeated_ngram_ratio(&token_hashes("the the"), 3), 0.0);
        // "a b a b a b": grams aba, bab, aba, bab -> 2 distinct of 4.
        assert_eq!(repeated_ngram_ratio(&token_hashes("a b a b a b"), 3), 0.5);
    }

    #[test]
    fn token_hashes_follow_the_tokens() {
        let hashes = token_hashes("Mark: MARK, mark! Straße STRASSE \u{212A}elvin kelvin");
        assert_eq!(
            hashes.len(),
            tokens("Mark: MARK, mark! Straße STRASSE \u{212A}elvin kelvin").len()
        );
        assert_eq!(hashes[0], hashes[1]);
        assert_eq!(hashes[1], hashes[2]);
        assert_ne!(hashes[3], hashes[4], "lower-casing does not fold ß into ss");
        assert_eq!(hashes[5], hashes[6], "the Kelvin sign lower-cases to k");
        let long = "A".repeat(100);
        assert_eq!(token_hashes(&long), token_hashes(&long.to_lowercase()));
        assert_ne!(token_hashes("ab"), token_hashes("ba"));
    }

    #[test]
    fn token_f1_matches_hand_computation() {
        // prediction: a b c d ; reference: a b e -> common 2, P=2/4, R=2/3, F1=4/7
        let f1 = token_f1(&t("a b c d"), &t("a b e"));
        assert!((f1 - 4.0 / 7.0).abs() < 1e-12, "{f1}");
        assert_eq!(token_f1(&t("x"), &t("y")), 0.0);
        assert_eq!(token_f1(&t(""), &t("")), 1.0);
        assert_eq!(token_f1(&t("a a a"), &t("a")), 0.5);
    }

    #[test]
    fn rouge_l_matches_hand_computation() {
        // Lin (2004)'s example: reference "police killed the gunman",
        // candidate "police kill the gunman": LCS = 3, P = R = 3/4.
        let r = rouge_l(&t("police kill the gunman"), &t("police killed the gunman"));
        assert!((r - 0.75).abs() < 1e-12, "{r}");
        // "the gunman kill police": LCS("the gunman") = 2 -> 0.5
        let r = rouge_l(&t("the gunman kill police"), &t("police killed the gunman"));
        assert!((r - 0.5).abs() < 1e-12, "{r}");
        assert_eq!(lcs_len(&t("a b c"), &t("")), 0);
    }
}
