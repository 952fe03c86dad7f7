//! The user table: who may log in, from where, and with what permissions per vhost.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::{HashAlgorithm, PasswordHash, Permissions};

/// One user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: PasswordHash,
    /// `false`: only from a loopback address (RabbitMQ's rule for `guest`).
    pub remote: bool,
    /// Permissions by vhost. A vhost missing here cannot be opened by this user.
    pub vhosts: HashMap<String, Arc<Permissions>>,
}

impl User {
    pub fn new(name: impl Into<String>, password: PasswordHash, remote: bool) -> User {
        User {
            name: name.into(),
            password,
            remote,
            vhosts: HashMap::new(),
        }
    }

    /// Permissions in `vhost`, if the user may open it.
    pub fn permissions(&self, vhost: &str) -> Option<Arc<Permissions>> {
        self.vhosts.get(vhost).cloned()
    }
}

/// Why a login failed. Unknown user and wrong password read the same, so a client cannot probe
/// for user names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("login was refused: unknown user or wrong password")]
    Refused,
    #[error("user {0:?} may only connect from localhost")]
    LoopbackOnly(String),
}

/// Users by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

impl Users {
    /// RabbitMQ's default: `guest`/`guest`, loopback only, full permissions on `/`.
    pub fn with_guest() -> Users {
        let mut guest = User::new(
            "guest",
            PasswordHash::new("guest", HashAlgorithm::Sha256),
            false,
        );
        guest
            .vhosts
            .insert("/".into(), Arc::new(Permissions::full()));
        let mut users = Users::default();
        users.insert(guest);
        users
    }

    /// Add or replace a user.
    pub fn insert(&mut self, user: User) {
        self.by_name.insert(user.name.clone(), user);
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut User> {
        self.by_name.get_mut(name)
    }

    /// Check a user name and password from `from`. The password is hashed even for an unknown
    /// user, so the answer takes as long either way.
    pub fn authenticate(
        &self,
        name: &str,
        password: &[u8],
        from: IpAddr,
    ) -> Result<&User, LoginError> {
        let Some(user) = self.by_name.get(name) else {
            let _ = PasswordHash::new("", HashAlgorithm::Sha256).verify(password);
            return Err(LoginError::Refused);
        };
        if !user.password.verify(password) {
            return Err(LoginError::Refused);
        }
        if !user.remote && !from.is_loopback() {
            return Err(LoginError::LoopbackOnly(user.name.clone()));
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_logs_in_from_loopback_only() {
        let users = Users::with_guest();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        let guest = users.authenticate("guest", b"guest", local).unwrap();
        assert!(guest.permissions("/").is_some());
        assert!(guest.permissions("/other").is_none());
        assert_eq!(
            users.authenticate("guest", b"guest", remote).unwrap_err(),
            LoginError::LoopbackOnly("guest".into())
        );
        assert_eq!(
            users.authenticate("guest", b"nope", local).unwrap_err(),
            LoginError::Refused
        );
        assert_eq!(
            users.authenticate("nobody", b"guest", local).unwrap_err(),
            LoginError::Refused
        );
    }

    #[test]
    fn remote_users_log_in_from_anywhere() {
        let mut users = Users::with_guest();
        users.insert(User::new(
            "app",
            PasswordHash::new("pw", HashAlgorithm::Sha512),
            true,
        ));
        let remote: IpAddr = "::ffff:10.0.0.9".parse().unwrap();
        assert_eq!(
            users.authenticate("app", b"pw", remote).unwrap().name,
            "app"
        );
    }
}
