//! `message`: render a template for the profile in its locale and send it through a
//! provider (the channel's default, or the node's `provider`), with the timeout, retries
//! and error path of an action call. The message id is derived from the call's
//! idempotency key, so every attempt sends the same id. The step keeps the rendered
//! message, its address and the provider's answer; the result is kept as
//! `actions.<node id>`.
//!
//! A marketing message goes only to a profile subscribed to its group (else the step is
//! skipped with `UNSUBSCRIBED` and the instance goes on) and carries a signed unsubscribe
//! link (`unsubscribe_url` in the template, `List-Unsubscribe` in an email); every
//! message to an address on the suppression list is declined (`SUPPRESSED`). A message
//! over a frequency cap of its channel and category is skipped or held
//! (`FREQUENCY_CAPPED`); a marketing one due in its channel's quiet hours is held
//! (`QUIET_HOURS`). Each sent message is counted for the caps.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::call::{CallPolicy, RetryDef, idempotency_key};
use super::{Activity, Cx, Move, NodeRef, Outcome, StepCx};
use crate::actions::CallDone;
use crate::channels::{FrequencyCap, RenderInput, WhenCapped};
use crate::code::Code;
use crate::expr::Expr;
use crate::model::{Category, Channel};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageDef {
    /// A name for people: shown on the canvas and in reports instead of the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Notes for people; the engine does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The template to send; its latest version when the message is sent.
    pub template: String,
    /// The template's channel, when written, is checked against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// `marketing` (the default) or `transactional`.
    #[serde(default)]
    pub category: Category,
    /// The subscription group of a marketing message: sent only to profiles subscribed
    /// to it, whose unsubscribe link leaves it. By default the channel's own group
    /// (`email`, `sms`, `push`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_group: Option<String>,
    /// Who sends it (`outbox`, `smtp`); by default the channel's provider from the
    /// settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// A rhai expression for the address; by default `profile.email` (email),
    /// `profile.phone` (SMS) or `profile.push_token` (push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Longest time one send may take (hours, minutes, seconds); default from settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where to go when the message cannot be sent (no address, a template that does not
    /// render, a provider that refused it for good); without it the instance fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
}

#[derive(Debug)]
pub struct Message {
    pub template: String,
    pub channel: Channel,
    pub category: Category,
    /// The subscription group (marketing messages).
    pub group: String,
    /// `None`: the channel's provider when the message is sent.
    pub provider: Option<String>,
    pub to: Expr,
    pub call: CallPolicy,
}

/// Where a channel's address is when the node does not say.
fn default_address(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "profile.email",
        Channel::Sms => "profile.phone",
        Channel::Push => "profile.push_token",
    }
}

impl MessageDef {
    pub fn compile(&self, path: &str, cx: &mut Cx) -> Option<Message> {
        let mut ok = true;
        let channel = match cx.catalog.templates.get(&self.template) {
            Some(c) => Some(*c),
            None => {
                let known: Vec<&str> = cx.catalog.templates.keys().map(String::as_str).collect();
                cx.problem(
                    format!("{path}.template"),
                    format!(
                        "unknown template {:?} (known: {})",
                        self.template,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                self.channel
            }
        };
        if let (Some(written), Some(actual)) = (self.channel, channel)
            && written != actual
        {
            cx.problem(
                format!("{path}.channel"),
                format!(
                    "template {:?} is for {}, not {}",
                    self.template,
                    actual.as_str(),
                    written.as_str()
                ),
            );
            ok = false;
        }
        if let Some(p) = &self.provider {
            // A provider plugin may not be removed while this version can still send.
            cx.call(
                &format!("{path}.provider"),
                super::PluginCall::Provider { name: p.clone() },
            );
        }
        if let Some(p) = &self.provider
            && !cx.catalog.providers.is_empty()
            && !cx.catalog.providers.contains(p)
        {
            cx.problem(
                format!("{path}.provider"),
                format!(
                    "unknown provider {p:?} (known: {})",
                    cx.catalog
                        .providers
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            ok = false;
        }
        let channel = channel.unwrap_or(Channel::Email);
        let group = match (&self.subscription_group, self.category) {
            (Some(_), Category::Transactional) => {
                cx.problem(
                    format!("{path}.subscription_group"),
                    "a transactional message belongs to no subscription group (it is sent \
                     regardless of consent)",
                );
                ok = false;
                String::new()
            }
            (Some(g), Category::Marketing) => {
                let known = cx
                    .catalog
                    .groups
                    .get(g)
                    .copied()
                    .or_else(|| Channel::parse(g));
                match known {
                    Some(c) if c == channel => {}
                    Some(c) => {
                        cx.problem(
                            format!("{path}.subscription_group"),
                            format!(
                                "{g:?} is a group of {} messages, not {}",
                                c.as_str(),
                                channel.as_str()
                            ),
                        );
                        ok = false;
                    }
                    None => {
                        let mut known: Vec<&str> =
                            cx.catalog.groups.keys().map(String::as_str).collect();
                        known.extend(Channel::ALL.map(Channel::as_str));
                        cx.problem(
                            format!("{path}.subscription_group"),
                            format!(
                                "unknown subscription group {g:?} (known: {})",
                                known.join(", ")
                            ),
                        );
                        ok = false;
                    }
                }
                g.clone()
            }
            (None, _) => channel.as_str().to_string(),
        };
        let to = match &self.to {
            Some(src) => cx.expr(&format!("{path}.to"), src),
            None => cx.expr(&format!("{path}.to"), default_address(channel)),
        };
        let call = CallPolicy::compile(
            path,
            cx,
            self.timeout.as_deref(),
            self.retry.as_ref(),
            self.next.as_ref(),
            self.on_error.as_ref(),
        );
        let (Some(to), Some(call), true, true) = (
            to,
            call,
            ok,
            cx.catalog.templates.contains_key(&self.template),
        ) else {
            return None;
        };
        Some(Message {
            template: self.template.clone(),
            channel,
            category: self.category,
            group,
            provider: self.provider.clone(),
            to,
            call,
        })
    }
}

impl Message {
    fn provider_name<'a>(&'a self, cx: &'a StepCx<'_>) -> &'a str {
        self.provider
            .as_deref()
            .unwrap_or_else(|| cx.messaging.default_provider(self.channel))
    }

    /// Frequency caps: every rule of the message's channel and category must have room
    /// for one more. Over a rule that skips, the message is skipped; over rules that
    /// defer only, it waits until the last of them has room.
    fn over_cap(&self, cx: &StepCx<'_>, tz: &jiff::tz::TimeZone, about: &Value) -> Option<Outcome> {
        let key = FrequencyCap::key(self.channel, self.category);
        let sent = cx
            .counted
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, at)| *at);
        let over: Vec<_> = cx
            .messaging
            .caps
            .iter()
            .filter(|c| c.channel == self.channel && c.category == self.category)
            .filter_map(|c| c.check(sent.clone(), cx.now, tz))
            .collect();
        let skip = over.iter().find(|c| c.rule.when_capped == WhenCapped::Skip);
        let worst = skip.or_else(|| over.iter().max_by_key(|c| c.room_at))?;
        let mut detail = about.clone();
        detail["frequency_cap"] = json!({"rule": worst.rule.to_string(), "sent": worst.sent,
            "room_at": worst.room_at.to_string(),
            "when_capped": if skip.is_some() { "skip" } else { "defer" }});
        Some(
            match skip {
                Some(c) => Outcome::skip(
                    Code::FrequencyCapped,
                    format!("{} ({} sent): not sent", c.rule, c.sent),
                    self.call.next,
                ),
                None => Outcome::defer(
                    worst.room_at,
                    Code::FrequencyCapped,
                    format!(
                        "{} ({} sent): held until {}",
                        worst.rule, worst.sent, worst.room_at
                    ),
                ),
            }
            .with_detail(detail),
        )
    }

    fn attempt(&self, cx: &mut StepCx<'_>) -> Outcome {
        let on_error = self.call.on_error;
        let provider = self.provider_name(cx).to_string();
        let fail = |code: Code, message: String, detail: Value| {
            Outcome::fail(code, message, on_error).with_detail(detail)
        };
        let about = json!({"template": self.template, "channel": self.channel.as_str(),
            "category": self.category.as_str(), "provider": provider});
        let to = match cx.eval_json(&self.to) {
            Ok(Value::String(s)) if !s.trim().is_empty() => s,
            Ok(_) => {
                return fail(
                    Code::NoAddress,
                    format!("the profile has no {} address", self.channel.as_str()),
                    about,
                );
            }
            Err(e) => return fail(Code::ExprEval, format!("to: {e}"), about),
        };
        let marketing = self.category == Category::Marketing;
        let message_id = crate::ids::message_id(&idempotency_key(cx));
        let mut about = about;
        about["message_id"] = json!(message_id);
        if marketing {
            let default = cx
                .messaging
                .group(&self.group)
                .map_or(crate::model::ConsentDefault::OptIn, |g| g.default);
            if !crate::model::consent::subscribed(cx.profile, &self.group, default) {
                let mut detail = about;
                detail["subscription_group"] = json!(self.group);
                return Outcome::skip(
                    Code::Unsubscribed,
                    format!(
                        "the profile is not subscribed to {:?}; a marketing message is not sent",
                        self.group
                    ),
                    self.call.next,
                )
                .with_detail(detail);
            }
        }
        let tz = cx.profile["timezone"]
            .as_str()
            .and_then(|z| jiff::tz::TimeZone::get(z).ok())
            .unwrap_or_else(|| cx.tz.clone());
        if let Some(capped) = self.over_cap(cx, &tz, &about) {
            return capped;
        }
        // Quiet hours: a marketing message due inside the channel's window waits, durably,
        // for its end in the profile's zone.
        if marketing
            && let Some(window) = cx.messaging.quiet.get(self.channel.as_str())
            && let Some(until) = window.release(cx.now, &tz)
        {
            let zone = tz.iana_name().unwrap_or("UTC").to_string();
            let mut detail = about;
            detail["quiet_hours"] = json!({"window": window.to_string(), "timezone": zone,
                "until": until.to_string()});
            return Outcome::defer(
                until,
                Code::QuietHours,
                format!("quiet hours ({window} in {zone}): held until {until}"),
            )
            .with_detail(detail);
        }
        let unsubscribe_url = match cx.messaging.links() {
            Some(links) if marketing => Some(links.unsubscribe_url(
                &cx.instance.profile_id,
                &self.group,
                &message_id,
                cx.now,
            )),
            _ => None,
        };
        let Some(latest) = cx.messaging.template(&self.template) else {
            return fail(
                Code::TemplateError,
                format!("template {:?} does not exist", self.template),
                about,
            );
        };
        let input = RenderInput {
            profile: cx.profile.clone(),
            event: Some(cx.instance.data.event.clone()),
            events: Some(Value::Object(cx.instance.data.events.clone())),
            journey: Some(cx.journey_value()),
            actions: Some(Value::Object(cx.instance.data.actions.clone())),
            now: cx.now,
            unsubscribe_url: unsubscribe_url.clone(),
        };
        let mut rendered = match latest.template.render(&input, None, cx.messaging.limits) {
            Ok(r) => r,
            Err(e) => {
                return fail(
                    Code::TemplateError,
                    e.to_string(),
                    json!({"template": self.template, "template_version": latest.version,
                        "provider": provider, "part": e.part}),
                );
            }
        };
        // Click tracking: the email's links lead through the engine's redirect.
        if cx.messaging.click_tracking
            && let Some(links) = cx.messaging.links()
            && let Some(html) = rendered.parts.get_mut("html")
        {
            *html = crate::channels::track_links(html, unsubscribe_url.as_deref(), |url| {
                links.click_url(&message_id, url, cx.now)
            });
        }
        let Some(executor) = cx.messaging.provider(&provider) else {
            return fail(
                Code::ActionUnknown,
                format!("provider {provider:?} is not configured"),
                about,
            );
        };
        let mut params = json!({
            "message_id": message_id,
            "channel": self.channel.as_str(),
            "category": self.category.as_str(),
            "to": to,
            "template": self.template,
            "template_version": latest.version,
            "locale": rendered.locale,
            "message": rendered.to_json(),
        });
        if marketing {
            params["subscription_group"] = json!(self.group);
        }
        if let Some(url) = unsubscribe_url {
            params["unsubscribe_url"] = json!(url);
        }
        self.call
            .send(cx, &format!("message:{provider}"), executor, params)
    }
}

impl Activity for Message {
    fn successors(&self) -> Vec<NodeRef> {
        self.call.successors()
    }

    async fn enter(&self, cx: &mut StepCx<'_>) -> Outcome {
        cx.instance.data.attempt = 1;
        self.attempt(cx)
    }

    async fn on_timer(&self, cx: &mut StepCx<'_>) -> Outcome {
        // A retry, or the same attempt again when its answer was lost in a crash: the
        // same idempotency key, so the same message id.
        self.attempt(cx)
    }

    fn on_result(&self, cx: &mut StepCx<'_>, done: CallDone) -> Outcome {
        let name = format!("message:{}", self.provider_name(cx));
        let mut outcome = self.call.read_result(cx, done, &name, &name);
        if matches!(outcome.next, Move::Goto(_)) {
            // Sent: it counts for the frequency caps of its channel and category.
            outcome.counted = Some(FrequencyCap::key(self.channel, self.category));
        }
        outcome
    }
}
