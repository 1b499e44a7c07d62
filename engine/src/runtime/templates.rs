//! Message templates in the runtime: refusing one with every problem located before it
//! is stored (as a new version), and rendering a stored one for a profile (the preview).
//!
//! Owns the limits on templates (`max_templates`, `template_max_bytes`) and on a render
//! (`message_max_bytes`, `template_render_ms`). Never sends a message or writes a
//! profile.

use std::time::Duration;

use serde_json::Value;

use super::Runtime;
use crate::channels::{Latest, RenderError, RenderInput, RenderLimits, Rendered, Template};
use crate::model::{Problems, TemplateDef, serde_problem};
use crate::store::TemplateRecord;

/// Why a template was refused or did not render.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The definition, with every problem located.
    #[error("{0}")]
    Invalid(Problems),
    #[error("template {0:?} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Render(RenderError),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What a preview renders for: the profile and event as templates see them.
#[derive(Debug, Default)]
pub struct Preview {
    /// A version; the latest without one.
    pub version: Option<u32>,
    pub input: RenderInput,
    /// A locale chosen instead of the profile's.
    pub locale: Option<String>,
}

impl Runtime {
    /// Stores a template as its next version (an unchanged definition keeps its
    /// version); returns the version.
    pub async fn put_template(&self, id: &str, def: Value) -> Result<u32, TemplateError> {
        let settings = &self.shared.settings;
        let invalid = |path: &str, message: String| {
            let mut p = Problems::default();
            p.push(path, message);
            TemplateError::Invalid(p)
        };
        crate::ids::check_id(id).map_err(|m| invalid("id", m))?;
        let size = def.to_string().len();
        if size > settings.template_max_bytes {
            return Err(invalid(
                "",
                format!(
                    "the template is {size} bytes, more than {} (template_max_bytes)",
                    settings.template_max_bytes
                ),
            ));
        }
        let parsed: TemplateDef = serde_path_to_error::deserialize(&def).map_err(|e| {
            let p = serde_problem(e);
            invalid(&p.path, p.message)
        })?;
        let template = Template::compile(parsed).map_err(TemplateError::Invalid)?;
        let store = &self.shared.store;
        if store.get_template(id, None).await?.is_none() {
            let count = store.list_templates().await?.len();
            if count >= settings.max_templates {
                return Err(invalid(
                    "",
                    format!("there are already {count} templates (max_templates)"),
                ));
            }
        }
        let version = store.put_template(id, def, self.now()).await?;
        self.shared.messaging.set(Latest {
            id: id.to_string(),
            version,
            template,
        });
        Ok(version)
    }

    /// Makes the latest version of every stored template what message nodes send.
    pub(super) async fn load_templates(&self) -> anyhow::Result<()> {
        for record in self.shared.store.list_templates().await? {
            match self.template(&record.id, Some(record.version)).await {
                Ok((_, template)) => self.shared.messaging.set(Latest {
                    id: record.id,
                    version: record.version,
                    template,
                }),
                Err(e) => {
                    tracing::error!(template = %record.id, error = %e, "stored template no longer compiles")
                }
            }
        }
        Ok(())
    }

    /// A stored template (a version, or the latest) compiled.
    pub async fn template(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<(TemplateRecord, Template), TemplateError> {
        let record = self
            .shared
            .store
            .get_template(id, version)
            .await?
            .ok_or_else(|| TemplateError::NotFound(id.to_string()))?;
        let def: TemplateDef = serde_json::from_value(record.definition.clone())
            .map_err(|e| anyhow::anyhow!("stored template {id:?} no longer parses: {e}"))?;
        let template = Template::compile(def).map_err(TemplateError::Invalid)?;
        Ok((record, template))
    }

    /// Renders a stored template as it would be sent; off the async threads, bounded by
    /// `message_max_bytes` and `template_render_ms`.
    pub async fn preview_template(
        &self,
        id: &str,
        preview: Preview,
    ) -> Result<(TemplateRecord, Rendered), TemplateError> {
        let (record, template) = self.template(id, preview.version).await?;
        let limits = self.render_limits();
        let mut preview = preview;
        // A link as a message would carry (for the channel's group, to no real message).
        if preview.input.unsubscribe_url.is_none()
            && let Some(links) = self.shared.messaging.links()
        {
            let profile = preview.input.profile["id"].as_str().unwrap_or("preview");
            preview.input.unsubscribe_url = Some(links.unsubscribe_url(
                profile,
                template.def.channel.as_str(),
                "preview",
                self.now(),
            ));
        }
        let rendered = tokio::task::spawn_blocking(move || {
            template.render(&preview.input, preview.locale.as_deref(), limits)
        })
        .await
        .map_err(anyhow::Error::from)?
        .map_err(TemplateError::Render)?;
        Ok((record, rendered))
    }

    /// Message nodes hand their messages to `executor` instead of their providers.
    /// Links are signed with a fixed secret, so that a simulation's messages are the
    /// same bytes on every run.
    pub(crate) fn dry_run_messages(
        &self,
        executor: std::sync::Arc<dyn crate::actions::ActionExecutor>,
    ) {
        self.shared.messaging.dry_run(executor);
        if let Some(links) = self.shared.messaging.links() {
            self.shared.messaging.set_links(crate::channels::Links::new(
                b"simulation",
                &links.base_url,
                links.ttl,
            ));
        }
    }

    fn render_limits(&self) -> RenderLimits {
        RenderLimits {
            max_bytes: self.shared.settings.message_max_bytes,
            time: Duration::from_millis(self.shared.settings.template_render_ms),
        }
    }
}
