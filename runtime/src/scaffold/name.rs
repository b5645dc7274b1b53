//! Which names a new project may take: each names its directory, its crate or package, its
//! initialiser and its workspace at once, so it must suit all four.

use super::ScaffoldError;

/// Names cargo refuses for a package, or that would clash with the project's own parts.
const RESERVED: &[&str] = &[
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "bootstrap-guest",
    "bootstrap_guest",
    "bootstrap-upstream",
    "bootstrap_upstream",
    "wit",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
];

/// Checks that `name` can name the project's directory, crate or package, initialiser and
/// workspace: 1 to 64 characters, lowercase ASCII letters, digits, `-` and `_`, starting with
/// a letter, not a Rust keyword or a name cargo reserves.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why: String| Err(ScaffoldError::BadName(why));
    if name.is_empty() || name.len() > 64 {
        return bad(format!("'{name}' must be 1 to 64 characters long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad(format!("'{name}' must start with a lowercase letter"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')) {
        return bad(format!("'{name}' has '{c}': use lowercase letters, digits, '-' and '_'"));
    }
    if name.ends_with(['-', '_']) {
        return bad(format!("'{name}' must end with a letter or digit"));
    }
    if RESERVED.contains(&name) {
        return bad(format!("'{name}' is reserved (a Rust keyword, or a name the project uses)"));
    }
    Ok(())
}
