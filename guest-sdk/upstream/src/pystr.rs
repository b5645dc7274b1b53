//! Python's `str` methods that TrustGraph's code applies to what bootstrap-wasm passes on:
//! [`title`], with which TrustGraph's WorkspaceInit names the workspace it registers with IAM.
//!
//! Rust's standard library has no titlecase mapping and no `Cased` property, so both are here:
//! the characters whose titlecase differs from their uppercase are listed (`push_titlecase`,
//! 135 of them, checked against CPython's tables), and `Cased` is Rust's `Lowercase` and
//! `Uppercase` with the titlecase letters (`Lt`) added, as Unicode defines it.

/// `text.title()`, as Python 3 computes it: a character that follows a cased one is lowered,
/// any other is titlecased, so every run of cased characters starts with a capital.
///
/// ```
/// use bootstrap_upstream::pystr::title;
/// assert_eq!(title("acme-corp"), "Acme-Corp");
/// assert_eq!(title("my_ws2x"), "My_Ws2X");
/// ```
pub fn title(text: &str) -> String {
    let mut titled = String::with_capacity(text.len());
    let mut lowered_whole: Option<String> = None;
    let mut previous_is_cased = false;
    for (at, c) in text.char_indices() {
        if !previous_is_cased {
            push_titlecase(&mut titled, c);
        } else if c == CAPITAL_SIGMA {
            // Python lowers a capital sigma by its context (Unicode's Final_Sigma: `ς` at the
            // end of a word, `σ` elsewhere), as `str::to_lowercase` does. Every other
            // character lowers alone, and both sigmas take two bytes, so the sigma's place in
            // the whole text lowered is where the text before it ends, lowered.
            let lowered = lowered_whole.get_or_insert_with(|| text.to_lowercase());
            let offset = text[..at].to_lowercase().len();
            titled.push_str(&lowered[offset..offset + CAPITAL_SIGMA.len_utf8()]);
        } else {
            titled.extend(c.to_lowercase());
        }
        previous_is_cased = is_cased(c);
    }
    titled
}

const CAPITAL_SIGMA: char = '\u{3a3}';

/// Unicode's `Cased`: lowercase, uppercase or titlecase.
fn is_cased(c: char) -> bool {
    c.is_lowercase() || c.is_uppercase() || is_titlecase_letter(c)
}

/// Unicode's titlecase letters (general category `Lt`), all 31 of them.
fn is_titlecase_letter(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}'
            | '\u{1c8}'
            | '\u{1cb}'
            | '\u{1f2}'
            | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}'
            | '\u{1fa8}'..='\u{1faf}'
            | '\u{1fbc}'
            | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// Push `c`'s full titlecase mapping: its uppercase, except for the characters where Unicode's
/// titlecase differs.
fn push_titlecase(out: &mut String, c: char) {
    let code = u32::from(c);
    let single = |code: u32| char::from_u32(code).expect("a titlecase letter");
    match code {
        // Latin digraphs: `ǅ`, not `Ǆ`.
        0x1c4..=0x1c6 => out.push('\u{1c5}'),
        0x1c7..=0x1c9 => out.push('\u{1c8}'),
        0x1ca..=0x1cc => out.push('\u{1cb}'),
        0x1f1..=0x1f3 => out.push('\u{1f2}'),
        // Georgian Mkhedruli letters are their own titlecase (their uppercase is Mtavruli).
        0x10d0..=0x10fa | 0x10fd..=0x10ff => out.push(c),
        // Greek with ypogegrammeni: one titlecase letter each, where uppercase spells the iota.
        0x1f80..=0x1f87 | 0x1f90..=0x1f97 | 0x1fa0..=0x1fa7 => out.push(single(code + 8)),
        0x1f88..=0x1f8f | 0x1f98..=0x1f9f | 0x1fa8..=0x1faf | 0x1fbc | 0x1fcc | 0x1ffc => out.push(c),
        0x1fb3 | 0x1fc3 | 0x1ff3 => out.push(single(code + 9)),
        // ... or the uppercase letter with the iota kept as the combining ypogegrammeni.
        0x1fb2 | 0x1fb4 | 0x1fb7 | 0x1fc2 | 0x1fc4 | 0x1fc7 | 0x1ff2 | 0x1ff4 | 0x1ff7 => {
            let upper: String = c.to_uppercase().collect();
            out.push_str(upper.strip_suffix('\u{399}').unwrap_or(&upper));
            out.push('\u{345}');
        }
        // Ligatures and `ß`: a capital, then small letters (`Ss`, `Ffi`, `Եւ`).
        0xdf | 0x587 | 0xfb00..=0xfb06 | 0xfb13..=0xfb17 => {
            let mut upper = c.to_uppercase();
            out.extend(upper.next());
            out.extend(upper.flat_map(char::to_lowercase));
        }
        _ => out.extend(c.to_uppercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::title;

    #[test]
    fn words_start_with_a_capital_after_anything_uncased() {
        assert_eq!(title("acme-corp"), "Acme-Corp");
        assert_eq!(title("my_ws2x"), "My_Ws2X");
        assert_eq!(title("default"), "Default");
        assert_eq!(title("ACME corp"), "Acme Corp");
        assert_eq!(title("they're bill's"), "They'Re Bill'S");
        assert_eq!(title("3d-printing"), "3D-Printing");
        assert_eq!(title(""), "");
        assert_eq!(title("--"), "--");
    }

    /// Each compared with what CPython 3.11 gives.
    #[test]
    fn non_ascii_letters_take_their_titlecase_not_their_uppercase() {
        assert_eq!(title("straße ßa"), "Straße Ssa");
        assert_eq!(title("ǆemal ǉubljana"), "ǅemal ǈubljana");
        assert_eq!(title("ﬁne ﬃx"), "Fine Ffix");
        assert_eq!(title("ᾳ ᾀ ᾷ"), "ᾼ ᾈ \u{391}\u{342}\u{345}");
        assert_eq!(title("ქართული"), "ქართული");
        assert_eq!(title("éCOLE"), "École");
        assert_eq!(title("ǅx"), "ǅx", "a titlecase letter is cased: the next one is lowered");
    }

    #[test]
    fn a_capital_sigma_lowers_by_its_place_in_the_word() {
        assert_eq!(title("ΟΔΟΣ"), "Οδος");
        assert_eq!(title("ΟΔΟΣ ΣΑΣ"), "Οδος Σας");
        assert_eq!(title("ΑΣΑ"), "Ασα");
        assert_eq!(title("ΑΣ'Α"), "Ασ'Α", "an apostrophe is case-ignorable: a cased letter follows");
        assert_eq!(title("ΑΣΣ"), "Ασς");
    }
}
