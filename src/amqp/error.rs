//! AMQP exceptions: every misuse maps to a channel or connection close with a reply code.
//!
//! Why two kinds: AMQP 0-9-1 says a *soft* error (404, 403, 405, 406) closes only the channel
//! it happened on, while a *hard* error (501–506, 530, 540, 541) closes the whole connection.
//! The channel layer returns [`AmqpError`]; the connection decides what to send and whether to
//! keep going from [`AmqpError::is_connection_error`].

use std::fmt;

/// Reply codes of AMQP 0-9-1 that Switchyard sends.
pub mod code {
    pub const REPLY_SUCCESS: u16 = 200;
    pub const NO_ROUTE: u16 = 312;
    pub const CONNECTION_FORCED: u16 = 320;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const CHANNEL_ERROR: u16 = 504;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const NOT_IMPLEMENTED: u16 = 540;
    pub const INTERNAL_ERROR: u16 = 541;
}

/// Whether an exception closes a channel or the whole connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Channel,
    Connection,
}

/// An AMQP exception: what the peer is told in `channel.close` / `connection.close`.
///
/// `class_id`/`method_id` name the method that failed (0/0 when no method was involved, e.g. a
/// bad frame).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AmqpError {
    pub scope: Scope,
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code {
            code::NO_ROUTE => "NO_ROUTE",
            code::ACCESS_REFUSED => "ACCESS_REFUSED",
            code::NOT_FOUND => "NOT_FOUND",
            code::RESOURCE_LOCKED => "RESOURCE_LOCKED",
            code::PRECONDITION_FAILED => "PRECONDITION_FAILED",
            code::FRAME_ERROR => "FRAME_ERROR",
            code::SYNTAX_ERROR => "SYNTAX_ERROR",
            code::COMMAND_INVALID => "COMMAND_INVALID",
            code::CHANNEL_ERROR => "CHANNEL_ERROR",
            code::UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
            code::RESOURCE_ERROR => "RESOURCE_ERROR",
            code::NOT_ALLOWED => "NOT_ALLOWED",
            code::NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            _ => "INTERNAL_ERROR",
        };
        write!(f, "{name} - {}", self.text)
    }
}

impl AmqpError {
    fn new(scope: Scope, code: u16, text: impl Into<String>) -> AmqpError {
        AmqpError {
            scope,
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Record the method that caused the error (keeps an id already set).
    pub fn on(mut self, class_id: u16, method_id: u16) -> AmqpError {
        if self.class_id == 0 && self.method_id == 0 {
            self.class_id = class_id;
            self.method_id = method_id;
        }
        self
    }

    pub fn is_connection_error(&self) -> bool {
        self.scope == Scope::Connection
    }

    /// The reply text as sent: `CODE_NAME - text`, cut to fit an AMQP short string.
    pub fn reply_text(&self) -> String {
        truncate(self.to_string(), 255)
    }

    // Channel (soft) errors.
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(Scope::Channel, code::NOT_FOUND, text)
    }
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(Scope::Channel, code::ACCESS_REFUSED, text)
    }
    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(Scope::Channel, code::RESOURCE_LOCKED, text)
    }
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(Scope::Channel, code::PRECONDITION_FAILED, text)
    }

    // Connection (hard) errors.
    pub fn frame_error(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::FRAME_ERROR, text)
    }
    pub fn syntax_error(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::SYNTAX_ERROR, text)
    }
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::COMMAND_INVALID, text)
    }
    pub fn channel_error(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::CHANNEL_ERROR, text)
    }
    pub fn unexpected_frame(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::UNEXPECTED_FRAME, text)
    }
    pub fn resource_error(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::RESOURCE_ERROR, text)
    }
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::NOT_ALLOWED, text)
    }
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::NOT_IMPLEMENTED, text)
    }
    /// The broker closes the connection (shutdown).
    pub fn connection_forced(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::CONNECTION_FORCED, text)
    }
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(Scope::Connection, code::INTERNAL_ERROR, text)
    }
}

/// Cut a string to at most `max` bytes on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl AmqpError {
    /// The same code as a connection exception (e.g. 403 during the handshake, where there is
    /// no channel to close).
    pub fn as_connection(mut self) -> AmqpError {
        self.scope = Scope::Connection;
        self
    }
}
