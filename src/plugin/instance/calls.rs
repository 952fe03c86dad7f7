//! The typed entry points of a loaded version: filter, transform and route, each checking the
//! version's kind; a route is answered from the verdict cache (`memo.rs`) when it can be.

use std::sync::Arc;

use super::LoadedPlugin;
use crate::message::Message;
use crate::plugin::marshal;
use crate::plugin::memo::{Lookup, Reads, VerdictCache, VerdictCacheInfo};
use crate::plugin::types::{PluginKind, PluginLog, RouteContext, RouteVerdict};
use crate::plugin::worker::Raw;
use crate::plugin::PluginError;

impl LoadedPlugin {
    pub async fn filter(
        self: &Arc<Self>,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<bool, PluginError> {
        self.check_kind(PluginKind::Filter)?;
        match self.run(msg, ctx, logs, None).await? {
            Raw::Filter(keep) => Ok(keep),
            _ => unreachable!("kind checked"),
        }
    }

    pub async fn transform(
        self: &Arc<Self>,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<Message, PluginError> {
        self.check_kind(PluginKind::Transform)?;
        match self.run(msg, ctx, logs, None).await? {
            Raw::Transform(m) => {
                marshal::message_from_wit(*m).map_err(|c| self.invalid(c.to_string()))
            }
            _ => unreachable!("kind checked"),
        }
    }

    pub async fn route(
        self: &Arc<Self>,
        msg: &Message,
        ctx: &RouteContext,
        logs: Option<&mut Vec<PluginLog>>,
    ) -> Result<RouteVerdict, PluginError> {
        self.check_kind(PluginKind::Router)?;
        // A dry run (`logs`) always calls the plugin: it reports the call's logs and time.
        let memo = self.memo.as_ref().filter(|m| logs.is_none() && m.on());
        if let Some(memo) = memo {
            if let Lookup::Hit(verdict) = memo.lookup(msg, ctx) {
                return Ok(verdict);
            }
        }
        let mut reads = memo.map(|_| Reads::default());
        let verdict = match self.run(msg, ctx, logs, reads.as_mut()).await? {
            Raw::Router(v) => {
                marshal::verdict_from_wit(v).map_err(|c| self.invalid(c.to_string()))?
            }
            _ => unreachable!("kind checked"),
        };
        if let (Some(memo), Some(reads)) = (memo, &reads) {
            memo.remember(&self.identity.name, reads, msg, ctx, &verdict);
        }
        Ok(verdict)
    }

    /// The verdict cache's state, if this version has one.
    pub fn verdict_cache(&self) -> Option<VerdictCacheInfo> {
        self.memo.as_ref().map(VerdictCache::info)
    }
}
