//! The one error type for everything wrong with an init file, as an operator reads it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with the init file or with something it names (a component, a param), found
/// before anything runs. Its message names the file, then the entry and the field when known:
///
/// `init.yaml: initialiser 'seed' (entry 2), field 'flag': missing`
///
/// or, in a tenant's file, `tenant 'acme': tenants/acme.yaml: initialiser ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The tenant whose file it is, for a tenant's file.
    pub tenant: Option<Box<str>>,
    pub file: PathBuf,
    /// The entry's name (may be empty when the name itself is the problem) and position.
    pub entry: Option<(String, usize)>,
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// A problem with the file as a whole.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self { tenant: None, file: file.to_path_buf(), entry: None, field: None, message: message.into() }
    }

    /// A problem with one field of one entry; finish it with [`ConfigError::because`].
    pub fn entry(file: &Path, name: &str, position: usize, field: &str) -> Self {
        Self {
            tenant: None,
            file: file.to_path_buf(),
            entry: Some((name.to_owned(), position)),
            field: Some(field.to_owned()),
            message: String::new(),
        }
    }

    pub fn because(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The same problem, found in `tenant`'s file.
    pub fn of_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}

/// A problem with one field of an entry, found before it is placed in its file and entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(tenant) = &self.tenant {
            write!(f, "tenant '{tenant}': ")?;
        }
        write!(f, "{}: ", self.file.display())?;
        match &self.entry {
            Some((name, position)) if name.is_empty() => write!(f, "initialiser entry {position}")?,
            Some((name, position)) => write!(f, "initialiser '{name}' (entry {position})")?,
            None => {}
        }
        if let Some(field) = &self.field {
            write!(f, ", field '{field}'")?;
        }
        if self.entry.is_some() || self.field.is_some() {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
