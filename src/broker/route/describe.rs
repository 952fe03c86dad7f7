//! How a plugin's answer is written down in a routing step: as an [`Outcome`].

use crate::broker::Outcome;
use crate::message::Message;
use crate::plugin::RouteVerdict;

/// A plugin's answer as a step [`Outcome`].
pub(super) trait Describe {
    fn describe(&self) -> Outcome;
}

impl Describe for bool {
    fn describe(&self) -> Outcome {
        if *self {
            Outcome::Keep
        } else {
            Outcome::Drop
        }
    }
}

impl Describe for Message {
    fn describe(&self) -> Outcome {
        Outcome::Rewrite {
            bytes: self.body.len(),
        }
    }
}

impl Describe for RouteVerdict {
    fn describe(&self) -> Outcome {
        match self {
            RouteVerdict::Deliver(d) => Outcome::Deliver {
                destinations: d.len(),
            },
            RouteVerdict::Drop => Outcome::Drop,
            RouteVerdict::DeadLetter { reason } => Outcome::DeadLetter {
                reason: reason.clone(),
            },
        }
    }
}
