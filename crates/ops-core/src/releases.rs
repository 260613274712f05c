//! The release ledger: for every service of the stack, the version that runs (image reference,
//! image id, registry digest where there is one, the container's creation time, a hash of its
//! configuration) and the versions before it, kept in the state store (documents of
//! [`COLLECTION`], one per service) whenever triage or the server looks at the stack.
//!
//! What it is for: triage says "deployed 4 min ago (image changed from A to B)" on a service
//! that changed within the deploy window, an urgent incident whose root changed recently says
//! a rollback is the first thing to consider (amn.gg: "recent deploy? roll back first"), and a
//! rollback knows the version to go back to.
//!
//! A version is an image id and a configuration hash: a container recreated with both
//! unchanged (`docker compose up -d` with nothing new) is the same version, seen again.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::ports::{ContainerDetails, StateStore};

/// The state store's collection of the ledger.
pub const COLLECTION: &str = "releases";

/// Earlier versions kept per service.
pub const KEPT: usize = 10;

/// How stale `last_seen` may get before it is written again (a triage every minute need not
/// write every service every minute).
const SEEN_EVERY: Duration = Duration::minutes(5);

/// One version of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    /// The image as the container was created with it (`shop/api:latest`).
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// Its registry digest, when it came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_digest: Option<String>,
    /// The hash of its configuration (`ContainerDetails::config_hash`).
    pub config_hash: String,
    /// The container that ran it last.
    pub container: String,
    /// When that container was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// When this version was first seen running.
    pub first_seen: DateTime<Utc>,
    /// When it was last seen.
    pub last_seen: DateTime<Utc>,
    /// A rollback left this version: never the version a rollback goes to by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolled_back_from: bool,
    /// It runs because of a rollback: not a deploy to roll back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_rollback: bool,
}

impl Version {
    /// The version a container runs, seen at `now`.
    #[must_use]
    pub fn of(d: &ContainerDetails, repo_digest: Option<String>, now: DateTime<Utc>) -> Self {
        Self {
            image: d.image.clone(),
            image_id: d.image_id.clone(),
            repo_digest,
            config_hash: d.config_hash.clone(),
            container: d.name.clone(),
            created_at: d.created_at,
            first_seen: now,
            last_seen: now,
            rolled_back_from: false,
            by_rollback: false,
        }
    }

    /// Whether `other` is the same version: same image id and configuration.
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        self.image_id == other.image_id && self.config_hash == other.config_hash
    }

    /// `shop/api:1.4 (3f2a1b9c0d1e)`.
    #[must_use]
    pub fn label(&self) -> String {
        let id = self.image_id.trim_start_matches("sha256:");
        format!("{} ({})", self.image, &id[..id.len().min(12)])
    }

    /// When it was deployed: its container's creation, else when it was first seen.
    #[must_use]
    pub fn deployed_at(&self) -> DateTime<Utc> {
        self.created_at.unwrap_or(self.first_seen)
    }
}

/// A service's ledger: what runs and what ran before, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceReleases {
    /// The Compose service (or container name).
    pub service: String,
    /// The version running (or last seen).
    pub current: Version,
    /// Earlier versions, newest first, at most [`KEPT`].
    #[serde(default)]
    pub previous: Vec<Version>,
}

/// A change of version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deploy {
    /// The service.
    pub service: String,
    /// The version before.
    pub from: Version,
    /// The version now.
    pub to: Version,
}

impl Deploy {
    /// When it happened.
    #[must_use]
    pub fn at(&self) -> DateTime<Utc> {
        self.to.deployed_at()
    }

    /// What changed, in words: `image changed from A to B`, `configuration changed`, or both.
    #[must_use]
    pub fn what(&self) -> String {
        let image = self.from.image_id != self.to.image_id;
        let config = self.from.config_hash != self.to.config_hash;
        match (image, config) {
            (true, true) => {
                format!("image changed from {} to {}, and its configuration", self.from.label(), self.to.label())
            }
            (true, false) => format!("image changed from {} to {}", self.from.label(), self.to.label()),
            _ => format!("configuration changed (image {})", self.to.label()),
        }
    }

    /// `deployed 4 min ago (image changed from A to B)`.
    #[must_use]
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let mins = (now - self.at()).num_minutes().max(0);
        format!("deployed {mins} min ago ({})", self.what())
    }
}

impl ServiceReleases {
    /// The change to the current version when it happened within `window` before `now`.
    #[must_use]
    pub fn recent_deploy(&self, now: DateTime<Utc>, window: Duration) -> Option<Deploy> {
        if self.current.by_rollback {
            return None;
        }
        let from = self.previous.first()?;
        let deploy = Deploy { service: self.service.clone(), from: from.clone(), to: self.current.clone() };
        (now - deploy.at() <= window).then_some(deploy)
    }
}

/// The ledger after seeing `seen` run for `service` (pure). A new version becomes current and
/// the old one the newest previous; a version that comes back (a rollback) is taken out of the
/// previous ones, so each appears once.
#[must_use]
pub fn advance(prev: Option<ServiceReleases>, service: &str, seen: Version) -> ServiceReleases {
    match prev {
        None => ServiceReleases { service: service.to_owned(), current: seen, previous: Vec::new() },
        Some(mut r) if r.current.same_as(&seen) => {
            r.current.last_seen = seen.last_seen;
            r.current.container = seen.container;
            r.current.created_at = r.current.created_at.or(seen.created_at);
            r.current.repo_digest = r.current.repo_digest.or(seen.repo_digest);
            r
        }
        Some(mut r) => {
            let old = std::mem::replace(&mut r.current, seen);
            r.previous.retain(|v| !v.same_as(&r.current) && !v.same_as(&old));
            r.previous.insert(0, old);
            r.previous.truncate(KEPT);
            r
        }
    }
}

/// The document key of a service of `project`.
fn key(project: &str, service: &str) -> String {
    format!("{project}/{service}")
}

/// The ledger of `project`, by service.
///
/// # Errors
/// The store's.
pub async fn load(store: &dyn StateStore, project: &str) -> Result<BTreeMap<String, ServiceReleases>> {
    let prefix = key(project, "");
    let mut out = BTreeMap::new();
    for (k, doc) in store.documents(COLLECTION).await? {
        if k.starts_with(&prefix)
            && let Ok(r) = serde_json::from_value::<ServiceReleases>(doc)
        {
            out.insert(r.service.clone(), r);
        }
    }
    Ok(out)
}

/// Records the versions seen running (service, version) for `project` on `ledger` (as
/// [`load`] read it); the ledger after, by service. A document is written when its version
/// changed, or when it was last written over five minutes ago.
///
/// # Errors
/// The store's.
pub async fn record(
    store: &dyn StateStore,
    project: &str,
    mut ledger: BTreeMap<String, ServiceReleases>,
    seen: Vec<(String, Version)>,
) -> Result<BTreeMap<String, ServiceReleases>> {
    for (service, version) in seen {
        let before = ledger.remove(&service);
        // A sighting of a container older than the one the ledger has (another replica saw
        // the newer one first) does not turn the clock back.
        if let Some(b) = &before
            && !b.current.same_as(&version)
            && let (Some(seen_at), Some(known_at)) = (version.created_at, b.current.created_at)
            && seen_at < known_at
        {
            ledger.insert(service, b.clone());
            continue;
        }
        let stale = before.as_ref().is_none_or(|b| {
            !b.current.same_as(&version)
                || version.last_seen - b.current.last_seen >= SEEN_EVERY
                || b.current.container != version.container
        });
        let after = advance(before, &service, version);
        if stale {
            let doc =
                serde_json::to_value(&after).map_err(|e| crate::Error::internal(format!("release ledger: {e}")))?;
            store.put_document(COLLECTION, &key(project, &service), &doc).await?;
        }
        ledger.insert(service, after);
    }
    Ok(ledger)
}

/// Records a rollback of `service` to `to` from the version `from`: `to` current (run by a
/// rollback, so never advised against), `from` marked as rolled back from (never a default
/// target again).
///
/// # Errors
/// The store's.
pub async fn record_rollback(
    store: &dyn StateStore,
    project: &str,
    service: &str,
    mut to: Version,
    from: &Version,
) -> Result<ServiceReleases> {
    let before = load(store, project).await?.remove(service);
    to.by_rollback = true;
    let mut after = advance(before, service, to);
    after.current.by_rollback = true;
    for v in after.previous.iter_mut().filter(|v| v.same_as(from)) {
        v.rolled_back_from = true;
    }
    let doc = serde_json::to_value(&after).map_err(|e| crate::Error::internal(format!("release ledger: {e}")))?;
    store.put_document(COLLECTION, &key(project, service), &doc).await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(image_id: &str, config: &str, minute: i64) -> Version {
        let at = DateTime::parse_from_rfc3339("2030-01-01T10:00:00Z").unwrap().with_timezone(&Utc)
            + Duration::minutes(minute);
        Version {
            image: format!("shop/api:{image_id}"),
            image_id: format!("sha256:{image_id}0000000000000000"),
            repo_digest: None,
            config_hash: config.to_owned(),
            container: "shop-api-1".to_owned(),
            created_at: Some(at),
            first_seen: at,
            last_seen: at,
            rolled_back_from: false,
            by_rollback: false,
        }
    }

    #[test]
    fn a_new_version_pushes_the_old_one_back_and_a_rollback_appears_once() {
        let r = advance(None, "api", v("a", "c1", 0));
        assert!(r.previous.is_empty() && r.recent_deploy(v("a", "c1", 1).last_seen, Duration::minutes(30)).is_none());
        // Seen again: the same version, its last sighting moves.
        let r = advance(Some(r), "api", v("a", "c1", 5));
        assert_eq!((r.previous.len(), r.current.last_seen), (0, v("a", "c1", 5).last_seen));
        // A deploy of b: a is the previous one, and it is recent.
        let r = advance(Some(r), "api", v("b", "c1", 10));
        assert_eq!(r.previous[0].image_id, v("a", "c1", 0).image_id);
        let now = v("b", "c1", 14).last_seen;
        let d = r.recent_deploy(now, Duration::minutes(30)).unwrap();
        assert_eq!(
            d.describe(now),
            "deployed 4 min ago (image changed from shop/api:a (a00000000000) to shop/api:b (b00000000000))"
        );
        assert!(r.recent_deploy(now + Duration::hours(1), Duration::minutes(30)).is_none(), "outside the window");
        // Only the configuration changed.
        let r = advance(Some(r), "api", v("b", "c2", 20));
        let d = r.recent_deploy(v("b", "c2", 21).last_seen, Duration::minutes(30)).unwrap();
        assert_eq!(d.what(), "configuration changed (image shop/api:b (b00000000000))");
        // Back to a: a is current and not among the previous ones any more.
        let r = advance(Some(r), "api", v("a", "c1", 30));
        assert_eq!(r.current.image_id, v("a", "c1", 0).image_id);
        let ids: Vec<(&str, &str)> = r.previous.iter().map(|p| (p.image_id.as_str(), p.config_hash.as_str())).collect();
        assert_eq!(ids, [("sha256:b0000000000000000", "c2"), ("sha256:b0000000000000000", "c1")]);
    }

    #[test]
    fn at_most_kept_versions() {
        let mut r = None;
        for i in 0..(KEPT as i64 + 5) {
            r = Some(advance(r, "api", v(&format!("{i:x}"), "c", i)));
        }
        assert_eq!(r.unwrap().previous.len(), KEPT);
    }
}
