//! What `message` nodes send with: the latest compiled version of every template, the
//! providers by name, the provider each channel uses by default, the render limits, the
//! subscription groups and the signer of links.
//!
//! Owns the set partitions read while they step (a snapshot behind a lock held for a
//! clone of an `Arc`). Never renders or sends by itself.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::{Links, QuietHours, RenderLimits, Template};
use crate::actions::ActionExecutor;
use crate::model::{Channel, SubscriptionGroupDef};

/// A template's latest version, compiled.
#[derive(Debug)]
pub struct Latest {
    pub id: String,
    pub version: u32,
    pub template: Template,
}

/// Templates and providers for message nodes.
pub struct Messaging {
    templates: RwLock<Arc<BTreeMap<String, Arc<Latest>>>>,
    providers: RwLock<BTreeMap<String, Arc<dyn ActionExecutor>>>,
    defaults: BTreeMap<&'static str, String>,
    groups: RwLock<Arc<BTreeMap<String, SubscriptionGroupDef>>>,
    links: RwLock<Option<Arc<Links>>>,
    /// Quiet hours of each channel that has them.
    pub quiet: BTreeMap<&'static str, QuietHours>,
    pub limits: RenderLimits,
}

impl Messaging {
    /// `defaults`: the provider of each channel (`email` → `outbox`).
    pub fn new(
        providers: BTreeMap<String, Arc<dyn ActionExecutor>>,
        defaults: [(Channel, String); 3],
        limits: RenderLimits,
    ) -> Messaging {
        Messaging {
            templates: RwLock::default(),
            providers: RwLock::new(providers),
            defaults: defaults.into_iter().map(|(c, p)| (c.as_str(), p)).collect(),
            groups: RwLock::default(),
            links: RwLock::default(),
            quiet: BTreeMap::new(),
            limits,
        }
    }

    /// Makes `latest` the version message nodes send.
    pub fn set(&self, latest: Latest) {
        let mut guard = self.templates.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        next.insert(latest.id.clone(), Arc::new(latest));
        *guard = Arc::new(next);
    }

    /// The latest version of a template.
    pub fn template(&self, id: &str) -> Option<Arc<Latest>> {
        self.snapshot().get(id).cloned()
    }

    /// Every template's channel (what journeys compile against).
    pub fn channels(&self) -> BTreeMap<String, Channel> {
        self.snapshot()
            .iter()
            .map(|(id, t)| (id.clone(), t.template.def.channel))
            .collect()
    }

    fn snapshot(&self) -> Arc<BTreeMap<String, Arc<Latest>>> {
        self.templates
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn provider(&self, name: &str) -> Option<Arc<dyn ActionExecutor>> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The names of the providers.
    pub fn provider_names(&self) -> Vec<String> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Every provider replaced by `executor` (a simulation's dry run, which records the
    /// messages instead of sending them).
    pub fn dry_run(&self, executor: Arc<dyn ActionExecutor>) {
        let mut providers = self.providers.write().unwrap_or_else(|p| p.into_inner());
        for p in providers.values_mut() {
            *p = executor.clone();
        }
    }

    /// Defines (or redefines) a subscription group.
    pub fn set_group(&self, id: &str, def: SubscriptionGroupDef) {
        let mut guard = self.groups.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        next.insert(id.to_string(), def);
        *guard = Arc::new(next);
    }

    /// A subscription group: a defined one, or the built-in group of a channel (its id
    /// is the channel's name).
    pub fn group(&self, id: &str) -> Option<SubscriptionGroupDef> {
        let defined = self
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        defined.or_else(|| Channel::parse(id).map(SubscriptionGroupDef::builtin))
    }

    /// Every subscription group, the built-in ones included.
    pub fn groups(&self) -> BTreeMap<String, SubscriptionGroupDef> {
        let mut all: BTreeMap<String, SubscriptionGroupDef> = Channel::ALL
            .into_iter()
            .map(|c| (c.as_str().to_string(), SubscriptionGroupDef::builtin(c)))
            .collect();
        for (id, def) in self.groups.read().unwrap_or_else(|p| p.into_inner()).iter() {
            all.insert(id.clone(), def.clone());
        }
        all
    }

    /// Sets the signer of links (at start, when the store's secret is known; a
    /// simulation's fixed one after).
    pub fn set_links(&self, links: Links) {
        *self.links.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(links));
    }

    /// The signer of links, once set.
    pub fn links(&self) -> Option<Arc<Links>> {
        self.links.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The provider a channel uses when its node names none.
    pub fn default_provider(&self, channel: Channel) -> &str {
        self.defaults
            .get(channel.as_str())
            .map_or("outbox", String::as_str)
    }
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging")
            .field("providers", &self.provider_names())
            .finish()
    }
}
