//! Where the Kafka cluster is and who we are to it (upstream's `--kafka-*` options), and the
//! librdkafka configuration every client of the transport and the lease starts from.

use std::fmt;

use rdkafka::ClientConfig;

/// How to reach the cluster, as upstream's `--kafka-*` flags say it, plus librdkafka settings
/// of the operator's own (`--kafka-config`, for what upstream has no flag for: a CA file, an
/// OAUTHBEARER endpoint).
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    pub security_protocol: SecurityProtocol,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`, for the SASL protocols.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// Further librdkafka properties, applied last.
    pub extra: Vec<(String, String)>,
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// The SASL mechanisms this build's librdkafka has (GSSAPI, Kerberos, needs Cyrus SASL, which
/// it is built without).
pub const SASL_MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

impl SecurityProtocol {
    /// Kafka's name for it, as upstream's `--kafka-security-protocol` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether it authenticates with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;

    /// Any case, as Kafka's clients take it.
    fn from_str(name: &str) -> Result<Self, String> {
        [Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl]
            .into_iter()
            .find(|protocol| protocol.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("{name:?}: use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"))
    }
}

impl KafkaOptions {
    /// Options for a plain-text cluster at `bootstrap_servers`.
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            extra: Vec::new(),
        }
    }

    /// What an operator can get wrong before anything connects: no servers, a SASL mechanism
    /// this build lacks, SASL settings without a SASL protocol, a `--kafka-config` setting
    /// librdkafka does not know or refuses.
    pub fn check(&self) -> Result<(), String> {
        if self.bootstrap_servers.split(',').all(|server| server.trim().is_empty()) {
            return Err("--kafka-bootstrap-servers: no server given".into());
        }
        if let Some(mechanism) = &self.sasl_mechanism
            && !SASL_MECHANISMS.iter().any(|known| known.eq_ignore_ascii_case(mechanism))
        {
            return Err(format!("--kafka-sasl-mechanism: {mechanism:?}: use one of {}", SASL_MECHANISMS.join(", ")));
        }
        let sasl_given = self.sasl_mechanism.is_some() || self.sasl_username.is_some();
        if sasl_given && !self.security_protocol.uses_sasl() {
            return Err(format!(
                "--kafka-sasl-*: given, but --kafka-security-protocol is {} (use SASL_PLAINTEXT or SASL_SSL)",
                self.security_protocol.name()
            ));
        }
        // librdkafka checks each setting as it is set, before any client exists.
        self.client_config().create_native_config().map_err(|e| format!("--kafka-config: {e}"))?;
        Ok(())
    }

    /// The settings every client starts from: where, how securely, as whom. Unlike upstream's
    /// 2.4 backend, which gave the security settings to its admin client only, every client
    /// gets them.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", self.security_protocol.name())
            .set("client.id", "bootstrap-wasm")
            // A request is one small message waiting for one small answer: send it now.
            .set("socket.nagle.disable", "true")
            // Back within a second of the broker: librdkafka's reconnect backoff otherwise
            // grows to 10 s while it is away, longer than a request's wait.
            .set("reconnect.backoff.max.ms", "1000");
        if self.security_protocol.uses_sasl() {
            config.set("sasl.mechanism", self.sasl_mechanism.as_deref().unwrap_or("PLAIN"));
        }
        if let Some(username) = &self.sasl_username {
            config.set("sasl.username", username);
        }
        if let Some(password) = &self.sasl_password {
            config.set("sasl.password", password);
        }
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    /// `kafka://host:port[,...]`, with the security protocol when it is not plain text; no
    /// credentials.
    pub fn describe(&self) -> String {
        match self.security_protocol {
            SecurityProtocol::Plaintext => format!("kafka://{}", self.bootstrap_servers),
            protocol => format!("kafka://{} ({})", self.bootstrap_servers, protocol.name()),
        }
    }
}

// Written by hand so that logging the options never shows the password.
impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaOptions")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "<hidden>"))
            .field("extra", &self.extra.iter().map(|(key, _)| key).collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_protocols_parse_in_any_case() {
        assert_eq!("sasl_ssl".parse(), Ok(SecurityProtocol::SaslSsl));
        assert_eq!("PLAINTEXT".parse(), Ok(SecurityProtocol::Plaintext));
        assert!("TLS".parse::<SecurityProtocol>().is_err());
    }

    #[test]
    fn catches_what_can_never_connect() {
        assert!(KafkaOptions::plaintext("kafka:9092").check().is_ok());
        assert!(KafkaOptions::plaintext(" , ").check().unwrap_err().contains("no server"));
        let mut sasl = KafkaOptions::plaintext("kafka:9092");
        sasl.sasl_mechanism = Some("GSSAPI".into());
        sasl.security_protocol = SecurityProtocol::SaslSsl;
        assert!(sasl.check().unwrap_err().contains("GSSAPI"));
        sasl.sasl_mechanism = Some("scram-sha-512".into());
        assert!(sasl.check().is_ok());
        sasl.security_protocol = SecurityProtocol::Ssl;
        assert!(sasl.check().unwrap_err().contains("SASL_PLAINTEXT or SASL_SSL"));
    }

    #[test]
    fn never_shows_the_password() {
        let mut options = KafkaOptions::plaintext("kafka:9092");
        options.sasl_password = Some("p4ssw0rd".into());
        options.extra = vec![("sasl.oauthbearer.client.secret".into(), "hidden-too".into())];
        let shown = format!("{options:?} {}", options.describe());
        assert!(!shown.contains("p4ssw0rd") && !shown.contains("hidden-too"), "{shown}");
    }
}
