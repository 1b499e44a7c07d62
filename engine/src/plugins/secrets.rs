//! Plugin secrets, and which code may read them.
//!
//! A secret's value comes from the operator: `PARCOURS_SECRET_<PLUGIN>_<KEY>` in the
//! engine's environment, read by the command line into [`SecretValues`] (the engine
//! itself never reads its environment). A plugin reads the secrets its manifest
//! declares, and only when the operator approved the code and manifest that will read
//! them:
//! - a plugin installed from a folder at start (`--plugins DIR`, `--examples`): the
//!   operator's own files;
//! - a plugin uploaded through the API, only when the operator granted its **package
//!   digest** (the SHA-256 of its component and its manifest: the code, the hosts it may
//!   call, its config) with `--secret-grant NAME=DIGEST`. An upload that declares a secret
//!   the operator has set, without that grant, is refused: an admin token can install
//!   plugins, not read the secrets of the ones installed.
//!
//! Plugin names map to variable names in upper case with `-` as `_`, so `crm-api`,
//! `crm_api` and `CRM-API` would read the same variables: [`secret_key`] is that
//! mapping, and the registry refuses a second name with the same key. This module never
//! logs or returns a secret's value.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::manifest::Manifest;

/// The prefix of the environment variables that hold secrets.
pub const SECRET_ENV_PREFIX: &str = "PARCOURS_SECRET_";

/// Secret values by variable name (`PARCOURS_SECRET_CRM_API_TOKEN`). Its `Debug` shows the
/// names only.
#[derive(Clone, Default)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    /// Every `PARCOURS_SECRET_*` variable of this process's environment.
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars().filter(|(name, _)| name.starts_with(SECRET_ENV_PREFIX)))
    }

    /// Secrets from `(variable name, value)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// The value of a plugin's secret `key`, if the operator set one.
    pub fn get(&self, plugin: &str, key: &str) -> Option<&str> {
        self.0.get(&variable(plugin, key)).map(String::as_str)
    }
}

/// The name a plugin's secrets are keyed by: upper case, `-` as `_`.
pub fn secret_key(plugin: &str) -> String {
    plugin.to_ascii_uppercase().replace('-', "_")
}

/// The environment variable of a plugin's secret `key`.
pub fn variable(plugin: &str, key: &str) -> String {
    format!(
        "{SECRET_ENV_PREFIX}{}_{}",
        secret_key(plugin),
        key.to_ascii_uppercase().replace('-', "_")
    )
}

/// Package digests the operator approved, by plugin name (`--secret-grant NAME=DIGEST`).
pub type SecretGrants = BTreeMap<String, BTreeSet<String>>;

/// The digest of a plugin package: the SHA-256 of its component and of its manifest as
/// parsed (so formatting does not matter, but every field does: a new host, config
/// value or version is a new package).
pub fn package_digest(manifest: &Manifest, component: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"parcours-plugin-package-v1\0");
    h.update(Sha256::digest(component));
    h.update(serde_json::to_vec(manifest).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The operator's own files: plugin folders at start, the plugin test harness.
    Operator,
    /// An upload through the API (an admin token).
    Api,
}

/// The secrets an upload may not read: those it declares that the operator has set,
/// when the operator did not grant this package.
pub fn ungranted(
    manifest: &Manifest,
    digest: &str,
    origin: Origin,
    values: &SecretValues,
    grants: &SecretGrants,
) -> Vec<String> {
    if origin == Origin::Operator
        || grants
            .get(&manifest.name)
            .is_some_and(|approved| approved.contains(digest))
    {
        return Vec::new();
    }
    manifest
        .secrets
        .iter()
        .filter(|k| values.get(&manifest.name, k).is_some())
        .cloned()
        .collect()
}

/// The secrets a plugin reads: those its manifest declares that the operator set.
pub fn granted(manifest: &Manifest, values: &SecretValues) -> BTreeMap<String, String> {
    manifest
        .secrets
        .iter()
        .filter_map(|k| {
            values
                .get(&manifest.name, k)
                .map(|v| (k.clone(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::parse_manifest;

    fn manifest(name: &str, hosts: &str) -> Manifest {
        parse_manifest(&format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nkind = \"action\"\nsecrets = [\"token\"]\n[capabilities]\nallowed_hosts = [{hosts}]\n"
        ))
        .expect("manifest")
    }

    #[test]
    fn names_that_differ_in_case_or_dash_share_their_variables() {
        for name in ["crm_api", "CRM-API", "Crm_Api"] {
            assert_eq!(secret_key(name), secret_key("crm-api"));
            assert_eq!(variable(name, "token"), "PARCOURS_SECRET_CRM_API_TOKEN");
        }
    }

    #[test]
    fn uploads_read_secrets_only_when_their_package_is_granted() {
        let values = SecretValues::from_pairs([(
            "PARCOURS_SECRET_CRM_API_TOKEN".to_string(),
            "s3cret".to_string(),
        )]);
        assert_eq!(format!("{values:?}"), "{\"PARCOURS_SECRET_CRM_API_TOKEN\"}");
        let trusted = manifest("crm-api", "\"crm.example.com\"");
        let digest = package_digest(&trusted, b"component");
        let mut grants = SecretGrants::new();
        assert_eq!(
            ungranted(&trusted, &digest, Origin::Api, &values, &grants),
            ["token"]
        );
        assert!(ungranted(&trusted, &digest, Origin::Operator, &values, &grants).is_empty());
        grants
            .entry("crm-api".into())
            .or_default()
            .insert(digest.clone());
        assert!(ungranted(&trusted, &digest, Origin::Api, &values, &grants).is_empty());
        // The same code with another host is another package.
        let rogue = manifest("crm-api", "\"*\"");
        let rogue_digest = package_digest(&rogue, b"component");
        assert_ne!(rogue_digest, digest);
        assert_eq!(
            ungranted(&rogue, &rogue_digest, Origin::Api, &values, &grants),
            ["token"]
        );
        // A secret the operator did not set is no secret to keep.
        let other = manifest("other", "\"*\"");
        assert!(
            ungranted(
                &other,
                &package_digest(&other, b"x"),
                Origin::Api,
                &values,
                &grants
            )
            .is_empty()
        );
        assert_eq!(granted(&trusted, &values)["token"], "s3cret");
    }
}
