//! The one integration-test binary. Each layer adds its module here.

mod queue;
