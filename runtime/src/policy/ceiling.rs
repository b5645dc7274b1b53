//! A tenant's ceiling: the most any of its initialisers may be granted, and the highest limits
//! any may run under.
//!
//! The operator writes one per tenant (`tenants: [{name, ceiling: {grants, limits}}]`); every
//! entry of the tenant's own file must lie within it, or it is refused before it is loaded.
//! "Within" is checked item by item, so a refusal names the one grant or limit that exceeds:
//! a workspace pattern lies within a ceiling pattern when every workspace it matches does
//! (`acme-eu-*` and `acme-1` within `acme-*`; `*` not), an origin when the ceiling lists it,
//! a file when the ceiling lists it or a directory above it (written with a trailing `/`).

use std::path::{Component, Path, PathBuf};

use super::{Grants, Limits, WorkspacePattern, reserved};

/// The most a tenant's initialisers may be granted and consume. The default grants nothing
/// and allows the default limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ceiling {
    /// Each grant's widest form. A `files` item written with a trailing `/` allows every file
    /// below that directory.
    pub grants: Grants,
    pub limits: Limits,
}

/// One grant or limit beyond a ceiling: the field (as in an entry, `grants.config.write`,
/// `limits.fuel`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeds {
    pub field: &'static str,
    pub message: String,
}

impl Ceiling {
    /// The limits an entry that leaves some out gets: each default, capped by the ceiling.
    pub fn default_limits(&self) -> Limits {
        self.limits.min(&Limits::default())
    }

    /// Whether `grants` lie within the ceiling; the first that does not, if any.
    pub fn admit_grants(&self, grants: &Grants) -> Result<(), Exceeds> {
        let ceiling = &self.grants;
        patterns_within("grants.config.read", &grants.config_read, &ceiling.config_read)?;
        patterns_within("grants.config.write", &grants.config_write, &ceiling.config_write)?;
        patterns_within("grants.flow", &grants.flow, &ceiling.flow)?;
        patterns_within("grants.iam", &grants.iam, &ceiling.iam)?;
        if let Some(origin) = grants.http.iter().find(|origin| !ceiling.http.contains(origin)) {
            let message = format!("'{origin}' is beyond the tenant's ceiling (allowed: {})", list(&ceiling.http));
            return Err(Exceeds { field: "grants.http", message });
        }
        for file in &grants.files {
            file_within(file, &ceiling.files).map_err(|message| Exceeds { field: "grants.files", message })?;
        }
        Ok(())
    }

    /// Whether `limits` lie within the ceiling's; the first that does not, if any.
    pub fn admit_limits(&self, limits: &Limits) -> Result<(), Exceeds> {
        let above = limits.above(&self.limits);
        let Some(index) = above.iter().position(|(_, above)| *above) else { return Ok(()) };
        let (asked, allowed) = (&limits.rows()[index].1, &self.limits.rows()[index].1);
        let message = format!("{asked} is above the tenant's ceiling of {allowed}");
        Err(Exceeds { field: above[index].0, message })
    }
}

impl Limits {
    /// Each limit the lower of the two.
    pub fn min(&self, other: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(other.fuel),
            timeout: self.timeout.min(other.timeout),
            memory: self.memory.min(other.memory),
            value_size: self.value_size.min(other.value_size),
            put_entries: self.put_entries.min(other.put_entries),
            written: self.written.min(other.written),
            host_calls: self.host_calls.min(other.host_calls),
            log_lines: self.log_lines.min(other.log_lines),
            log_line_size: self.log_line_size.min(other.log_line_size),
        }
    }

    /// For each limit, in [`Limits::rows`]'s order, its field (`limits.fuel`) and whether it
    /// is above `ceiling`'s.
    fn above(&self, ceiling: &Limits) -> [(&'static str, bool); 9] {
        [
            ("limits.fuel", self.fuel > ceiling.fuel),
            ("limits.timeout", self.timeout > ceiling.timeout),
            ("limits.memory", self.memory > ceiling.memory),
            ("limits.value_size", self.value_size > ceiling.value_size),
            ("limits.put_entries", self.put_entries > ceiling.put_entries),
            ("limits.written", self.written > ceiling.written),
            ("limits.host_calls", self.host_calls > ceiling.host_calls),
            ("limits.log_lines", self.log_lines > ceiling.log_lines),
            ("limits.log_line_size", self.log_line_size > ceiling.log_line_size),
        ]
    }
}

impl WorkspacePattern {
    /// Whether every workspace this pattern matches is matched by `ceiling`.
    pub fn within(&self, ceiling: &WorkspacePattern) -> bool {
        match (self.0.strip_suffix('*'), ceiling.0.strip_suffix('*')) {
            (Some(mine), Some(allowed)) => mine.starts_with(allowed),
            (None, _) => ceiling.matches(&self.0),
            (Some(_), None) => false,
        }
    }
}

fn patterns_within(
    field: &'static str,
    asked: &[WorkspacePattern],
    ceiling: &[WorkspacePattern],
) -> Result<(), Exceeds> {
    for pattern in asked {
        if let Some(why) = pattern.exact().and_then(reserved) {
            return Err(Exceeds { field, message: format!("'{}' is {why}", pattern.as_str()) });
        }
        if !ceiling.iter().any(|allowed| pattern.within(allowed)) {
            let allowed = list(&ceiling.iter().map(WorkspacePattern::as_str).collect::<Vec<_>>());
            let message = format!("'{}' is beyond the tenant's ceiling (allowed: {allowed})", pattern.as_str());
            return Err(Exceeds { field, message });
        }
    }
    Ok(())
}

/// A granted file against the ceiling's files: the same path, or below a directory the
/// ceiling lists with a trailing `/`. Paths are compared as written (absolute, made so at
/// load), so one that climbs out with `..` is refused outright.
fn file_within(file: &Path, ceiling: &[PathBuf]) -> Result<(), String> {
    if file.components().any(|part| part == Component::ParentDir) {
        return Err(format!("'{}': a granted path must not contain '..'", file.display()));
    }
    let allowed = ceiling.iter().any(|rule| {
        let is_directory = rule.as_os_str().as_encoded_bytes().ends_with(b"/");
        rule == file || (is_directory && file.starts_with(rule))
    });
    if allowed {
        return Ok(());
    }
    let rules = ceiling.iter().map(|rule| rule.display().to_string()).collect::<Vec<_>>();
    Err(format!("'{}' is beyond the tenant's ceiling (allowed: {})", file.display(), list(&rules)))
}

/// `a, b` or `nothing`.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "nothing".to_owned();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::Origin;

    fn ceiling() -> Ceiling {
        let acme = vec![WorkspacePattern::new("acme-*")];
        Ceiling {
            grants: Grants {
                config_read: acme.clone(),
                config_write: acme.clone(),
                flow: vec![WorkspacePattern::new("acme-1")],
                iam: acme,
                http: vec![Origin::parse("https://api.acme.example").unwrap()],
                files: vec![PathBuf::from("/srv/seed/acme/"), PathBuf::from("/srv/shared.json")],
            },
            limits: Limits { fuel: 1_000, timeout: Duration::from_secs(5), ..Limits::default() },
        }
    }

    #[test]
    fn patterns_lie_within_wider_ones() {
        let within = |a: &str, b: &str| WorkspacePattern::new(a).within(&WorkspacePattern::new(b));
        assert!(within("acme-1", "acme-*") && within("acme-eu-*", "acme-*") && within("acme-*", "acme-*"));
        assert!(within("acme", "acme") && within("anything", "*") && within("x-*", "*"));
        assert!(!within("*", "acme-*") && !within("acme-*", "acme-1") && !within("beta-1", "acme-*"));
        assert!(!within("acme", "acme-*"), "acme-* matches acme-..., not acme itself");
    }

    #[test]
    fn each_grant_beyond_the_ceiling_is_named() {
        let ceiling = ceiling();
        let refused = |grants: Grants| ceiling.admit_grants(&grants).unwrap_err();
        let write = |w: &str| Grants { config_write: vec![WorkspacePattern::new(w)], ..Grants::default() };
        assert_eq!(refused(write("beta-1")).field, "grants.config.write");
        assert!(refused(write("__system__")).message.contains("reserved for the runtime"));
        assert!(refused(write("__workspaces__")).message.contains("reserved"));
        assert!(refused(write("*")).message.contains("allowed: acme-*"));
        let flow = Grants { flow: vec![WorkspacePattern::new("acme-2")], ..Grants::default() };
        assert_eq!(refused(flow).field, "grants.flow");
        let http = Grants { http: vec![Origin::parse("https://evil.example").unwrap()], ..Grants::default() };
        assert_eq!(refused(http).field, "grants.http");
        let files = |f: &str| Grants { files: vec![PathBuf::from(f)], ..Grants::default() };
        assert_eq!(refused(files("/etc/shadow")).field, "grants.files");
        assert!(refused(files("/srv/seed/acme/../beta/x")).message.contains(".."));
        assert!(ceiling.admit_grants(&files("/srv/seed/acme/a/b.json")).is_ok());
        assert!(ceiling.admit_grants(&files("/srv/shared.json")).is_ok());
        assert!(ceiling.admit_grants(&files("/srv/shared.json/x")).is_err(), "a file rule is not a directory");
        assert!(ceiling.admit_grants(&write("acme-eu-*")).is_ok());
        assert!(ceiling.admit_grants(&Grants::default()).is_ok());
        assert!(Ceiling::default().admit_grants(&write("acme-1")).is_err(), "no ceiling, no grants");
    }

    #[test]
    fn limits_above_the_ceiling_are_named_and_defaults_capped() {
        let ceiling = ceiling();
        let limits = ceiling.default_limits();
        assert_eq!((limits.fuel, limits.timeout), (1_000, Duration::from_secs(5)));
        assert_eq!(limits.memory, Limits::default().memory);
        assert!(ceiling.admit_limits(&limits).is_ok());
        let refused = ceiling.admit_limits(&Limits { fuel: 1_001, ..limits }).unwrap_err();
        assert_eq!(refused.field, "limits.fuel");
        assert!(refused.message.contains("1001") && refused.message.contains("1000"), "{}", refused.message);
        let refused = ceiling.admit_limits(&Limits { memory: 1 << 30, ..limits }).unwrap_err();
        assert_eq!(
            (refused.field, refused.message.as_str()),
            ("limits.memory", "1 GiB is above the tenant's ceiling of 256 MiB")
        );
        assert_eq!(
            ceiling.admit_limits(&Limits { timeout: Duration::from_secs(6), ..limits }).unwrap_err().field,
            "limits.timeout"
        );
    }
}
