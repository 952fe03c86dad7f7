//! Who may connect, and what they may touch once connected.
//!
//! - [`PasswordHash`]: salted password hashes in RabbitMQ's format, so a user exported from
//!   RabbitMQ's definitions logs in here unchanged, and no plaintext password is kept in memory.
//! - [`Permissions`]: per-vhost `configure`, `write` and `read` patterns, with RabbitMQ's
//!   meaning for each AMQP operation.
//! - [`Users`]: the user table the AMQP listener authenticates against.
//!
//! Protocol-free: the AMQP layer maps its methods onto [`Access`] checks and its errors.

mod compare;
mod password;
mod permissions;
mod users;

pub use compare::constant_time_eq;
pub use password::{HashAlgorithm, PasswordHash};
pub use permissions::{refusal, Access, Permissions, Resource};
pub use users::{LoginError, User, Users};

/// Why a user or permission definition was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown hashing algorithm {0:?}: use rabbit_password_hashing_sha256 or rabbit_password_hashing_sha512")]
    UnknownAlgorithm(String),
    #[error("password hash is not valid for {algorithm}: {cause}")]
    BadHash {
        algorithm: &'static str,
        cause: String,
    },
    #[error("{which} pattern {pattern:?} is not a valid regular expression: {cause}")]
    BadPattern {
        which: &'static str,
        pattern: String,
        cause: String,
    },
}
