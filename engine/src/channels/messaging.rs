//! What `message` nodes send with: the latest compiled version of every template, the
//! providers by name, the provider each channel uses by default, the render limits, the
//! subscription groups, the signer of links, quiet hours and frequency caps.
//!
//! Owns the set partitions read while they step (a snapshot behind a lock held for a
//! clone of an `Arc`). Never renders or sends by itself.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;

use super::{FrequencyCap, Links, ProviderPlugins, QuietHours, RenderLimits, Suppressed, Template};
use crate::actions::ActionExecutor;
use crate::model::{Channel, SubscriptionGroupDef};
use crate::store::Store;

/// A template's latest version, compiled.
#[derive(Debug)]
pub struct Latest {
    pub id: String,
    pub version: u32,
    pub template: Template,
}

/// The provider plugins, and what puts each behind the suppression list.
struct FromPlugins {
    plugins: Arc<dyn ProviderPlugins>,
    store: Arc<dyn Store>,
    now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

/// Templates and providers for message nodes.
pub struct Messaging {
    templates: RwLock<Arc<BTreeMap<String, Arc<Latest>>>>,
    /// The built-in providers, fixed at start (a dry run replaces them through `dry`).
    providers: BTreeMap<String, Arc<dyn ActionExecutor>>,
    /// Providers that are plugins, found by name when a message is sent.
    plugins: Option<FromPlugins>,
    /// A dry run's executor, in place of every provider, built-in or plugin.
    dry: RwLock<Option<Arc<dyn ActionExecutor>>>,
    defaults: BTreeMap<&'static str, String>,
    groups: RwLock<Arc<BTreeMap<String, SubscriptionGroupDef>>>,
    links: RwLock<Option<Arc<Links>>>,
    /// Quiet hours of each channel that has them.
    pub quiet: BTreeMap<&'static str, QuietHours>,
    /// Frequency caps, in the order of the settings.
    pub caps: Vec<FrequencyCap>,
    /// How long a profile's sends are counted when no cap looks further back
    /// (`message_count_days`).
    pub count_days: u32,
    /// The links of emails' HTML parts lead through the engine's redirect.
    pub click_tracking: bool,
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
            providers,
            plugins: None,
            dry: RwLock::default(),
            defaults: defaults.into_iter().map(|(c, p)| (c.as_str(), p)).collect(),
            groups: RwLock::default(),
            links: RwLock::default(),
            quiet: BTreeMap::new(),
            caps: Vec::new(),
            count_days: 31,
            click_tracking: false,
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

    /// How far back a profile's sends counted under `key` are kept: the longest reach
    /// of the caps counting them, and at least `count_days`.
    pub fn count_reach(&self, key: &str) -> jiff::SignedDuration {
        let floor = jiff::SignedDuration::from_hours(24 * i64::from(self.count_days));
        self.caps
            .iter()
            .filter(|c| FrequencyCap::key(c.channel, c.category) == key)
            .map(FrequencyCap::reach)
            .fold(floor, jiff::SignedDuration::max)
    }

    /// Adds the providers that are plugins (found by name when a message is sent, each
    /// behind the suppression list of `store`).
    pub fn set_plugins(
        &mut self,
        plugins: Arc<dyn ProviderPlugins>,
        store: Arc<dyn Store>,
        now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    ) {
        self.plugins = Some(FromPlugins {
            plugins,
            store,
            now,
        });
    }

    /// A provider by name: a built-in one, else a provider plugin (its latest version).
    pub fn provider(&self, name: &str) -> Option<Arc<dyn ActionExecutor>> {
        let found = self.providers.get(name).cloned().or_else(|| {
            let p = self.plugins.as_ref()?;
            let plugin = p.plugins.provider(name)?;
            Some(Arc::new(Suppressed::new(
                name,
                plugin,
                p.store.clone(),
                p.now.clone(),
            )) as Arc<dyn ActionExecutor>)
        })?;
        Some(
            self.dry
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or(found),
        )
    }

    /// The plugins, when provider `name` is one of them (whose webhooks it reads
    /// itself); a built-in provider of the same name wins, as it does for sends.
    pub fn plugin(&self, name: &str) -> Option<&Arc<dyn ProviderPlugins>> {
        if self.providers.contains_key(name) {
            return None;
        }
        let p = self.plugins.as_ref()?;
        p.plugins
            .names()
            .iter()
            .any(|n| n == name)
            .then_some(&p.plugins)
    }

    /// The names of the providers, built-in and plugins.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.providers.keys().cloned().collect();
        if let Some(p) = &self.plugins {
            names.extend(p.plugins.names());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Every provider replaced by `executor` (a simulation's dry run, which records the
    /// messages instead of sending them).
    pub fn dry_run(&self, executor: Arc<dyn ActionExecutor>) {
        *self.dry.write().unwrap_or_else(|p| p.into_inner()) = Some(executor);
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
