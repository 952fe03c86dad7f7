//! AMQP users and their permissions in a definitions document, in RabbitMQ's shapes: a user
//! has a `password` (hashed when loaded) or a `password_hash` with its `hashing_algorithm`, as
//! `rabbitmqctl export_definitions` writes them; `permissions` grant configure, write and read
//! patterns per vhost. A user without a permission entry for `/` cannot open it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{invalid, DefinitionsError};
use crate::auth::{HashAlgorithm, PasswordHash, Permissions, User, Users};

/// An AMQP user. Exports omit passwords.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    /// In clear; hashed on load and never kept. Prefer `password_hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `base64(salt ++ digest)`, as RabbitMQ writes it (`switchyard hash-password` makes one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// `rabbit_password_hashing_sha256` (the default) or `rabbit_password_hashing_sha512`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashing_algorithm: Option<String>,
    /// May connect from other hosts than loopback.
    pub remote: bool,
}

/// What a user may do in a vhost. Patterns are unanchored regular expressions; `""` allows
/// nothing (see [`crate::auth::Permissions`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSpec {
    pub user: String,
    #[serde(default = "root_vhost")]
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

fn root_vhost() -> String {
    "/".into()
}

impl UserSpec {
    /// The same user with its password hashed (what may be stored or sent elsewhere: a clear
    /// password never leaves the node that read it).
    pub fn hashed(&self) -> Result<UserSpec, DefinitionsError> {
        let user = self.to_user()?;
        Ok(UserSpec {
            name: self.name.clone(),
            password: None,
            password_hash: Some(user.password.encode()),
            hashing_algorithm: Some(user.password.algorithm().name().to_owned()),
            remote: self.remote,
        })
    }

    fn to_user(&self) -> Result<User, DefinitionsError> {
        let what = || format!("user {}", self.name);
        if self.name.is_empty() {
            return Err(invalid("user", "empty name"));
        }
        let algorithm = match &self.hashing_algorithm {
            Some(name) => {
                HashAlgorithm::from_name(name).map_err(|e| invalid(what(), e.to_string()))?
            }
            None => HashAlgorithm::default(),
        };
        let hash = match (&self.password, &self.password_hash) {
            (Some(clear), None) => PasswordHash::new(clear, algorithm),
            (None, Some(hash)) => {
                PasswordHash::parse(hash, algorithm).map_err(|e| invalid(what(), e.to_string()))?
            }
            (Some(_), Some(_)) => {
                return Err(invalid(what(), "give password or password_hash, not both"))
            }
            (None, None) => {
                return Err(invalid(
                    what(),
                    "no password: give password_hash (`switchyard hash-password` makes one) or password",
                ))
            }
        };
        Ok(User::new(&self.name, hash, self.remote))
    }
}

/// Add (or replace) `users` in `table`, then grant `permissions`. Checks everything before
/// changing `table`, so a bad entry leaves it as it was.
pub fn apply_users(
    users: &[UserSpec],
    permissions: &[PermissionSpec],
    table: &mut Users,
) -> Result<(), DefinitionsError> {
    let mut next = table.clone();
    for spec in users {
        next.insert(spec.to_user()?);
    }
    for p in permissions {
        let what = format!("permissions of {} on vhost {}", p.user, p.vhost);
        if p.vhost != "/" {
            return Err(invalid(what, "only vhost \"/\" is served"));
        }
        let granted = Permissions::new(&p.configure, &p.write, &p.read)
            .map_err(|e| invalid(what.clone(), e.to_string()))?;
        let Some(user) = next.get_mut(&p.user) else {
            return Err(invalid(what, "no such user: list it under \"users\""));
        };
        user.vhosts.insert(p.vhost.clone(), Arc::new(granted));
    }
    *table = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str) -> UserSpec {
        UserSpec {
            name: name.into(),
            password: Some(password.into()),
            ..UserSpec::default()
        }
    }

    fn grant(user: &str, configure: &str) -> PermissionSpec {
        PermissionSpec {
            user: user.into(),
            vhost: "/".into(),
            configure: configure.into(),
            write: ".*".into(),
            read: ".*".into(),
        }
    }

    #[test]
    fn users_get_their_permissions_and_a_bad_entry_changes_nothing() {
        let mut table = Users::with_guest();
        apply_users(&[user("app", "pw")], &[grant("app", "^app\\.")], &mut table).unwrap();
        let app = table.get("app").unwrap();
        assert!(app.password.verify(b"pw"));
        assert_eq!(app.permissions("/").unwrap().patterns().0, "^app\\.");

        for (users, perms, why) in [
            (
                vec![user("b", "pw")],
                vec![grant("nobody", ".*")],
                "no such user",
            ),
            (
                vec![user("b", "pw")],
                vec![grant("b", "(")],
                "not a valid regular",
            ),
            (
                vec![UserSpec {
                    name: "b".into(),
                    ..UserSpec::default()
                }],
                vec![],
                "no password",
            ),
        ] {
            let err = apply_users(&users, &perms, &mut table).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
            assert!(
                table.get("b").is_none(),
                "a failed apply left user b behind"
            );
        }
    }

    #[test]
    fn takes_rabbitmq_exported_users() {
        let json = r#"{"name": "sy_vector", "password_hash": "LGwh8+u14EnkuCSsA9FwNvEaSJM2O0NvDhkNaJEVJcgUl6w4",
                       "hashing_algorithm": "rabbit_password_hashing_sha256"}"#;
        let spec: UserSpec = serde_json::from_str(json).unwrap();
        let mut table = Users::default();
        apply_users(&[spec], &[], &mut table).unwrap();
        assert!(table.get("sy_vector").unwrap().password.verify(b"test12"));
        assert!(table.get("sy_vector").unwrap().permissions("/").is_none());
    }
}
