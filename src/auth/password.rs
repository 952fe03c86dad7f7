//! Salted password hashes, byte-compatible with RabbitMQ's `rabbit_password_hashing_sha256`
//! and `_sha512`: `base64(salt ++ H(salt ++ utf8(password)))` with a random 4-byte salt.
//!
//! Compatibility is the point: a `users` entry exported by `rabbitmqctl export_definitions`
//! (`password_hash` + `hashing_algorithm`) can be pasted into a Switchyard definitions file.
//! A single salted SHA-2 round is what RabbitMQ offers; it protects a leaked definitions file
//! against rainbow tables, not against brute force of weak passwords — use long random ones.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

use super::{constant_time_eq, AuthError};

const SALT_LEN: usize = 4;

/// The digest under the salt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HashAlgorithm {
    #[default]
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// RabbitMQ's name for it (`hashing_algorithm` in definitions).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
        }
    }

    pub fn from_name(name: &str) -> Result<Self, AuthError> {
        match name {
            "rabbit_password_hashing_sha256" | "sha256" => Ok(HashAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" | "sha512" => Ok(HashAlgorithm::Sha512),
            other => Err(AuthError::UnknownAlgorithm(other.to_owned())),
        }
    }

    fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            HashAlgorithm::Sha512 => Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        }
    }
}

/// A stored password: salt and digest. Never holds the password itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashAlgorithm,
    salt: [u8; SALT_LEN],
    digest: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHash")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Hash `password` under a fresh random salt.
    pub fn new(password: &str, algorithm: HashAlgorithm) -> PasswordHash {
        let salt: [u8; SALT_LEN] = rand::random();
        PasswordHash {
            algorithm,
            salt,
            digest: algorithm.digest(&salt, password.as_bytes()),
        }
    }

    /// Read the base64 form RabbitMQ writes in `password_hash`.
    pub fn parse(encoded: &str, algorithm: HashAlgorithm) -> Result<PasswordHash, AuthError> {
        let bad = |cause: String| AuthError::BadHash {
            algorithm: algorithm.name(),
            cause,
        };
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| bad(format!("not base64 ({e})")))?;
        let want = SALT_LEN + algorithm.digest_len();
        if bytes.len() != want {
            return Err(bad(format!(
                "{} bytes after base64 decoding, expected {want} (4 salt + digest)",
                bytes.len()
            )));
        }
        let (salt, digest) = bytes.split_at(SALT_LEN);
        Ok(PasswordHash {
            algorithm,
            salt: salt.try_into().expect("split at SALT_LEN"),
            digest: digest.to_vec(),
        })
    }

    /// The base64 form, as RabbitMQ writes it.
    pub fn encode(&self) -> String {
        let mut bytes = self.salt.to_vec();
        bytes.extend_from_slice(&self.digest);
        STANDARD.encode(bytes)
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// Whether `password` hashes to this. Constant time in the digest comparison.
    pub fn verify(&self, password: &[u8]) -> bool {
        constant_time_eq(&self.algorithm.digest(&self.salt, password), &self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by RabbitMQ 3.10.8 on this machine: `rabbitmqctl add_user sy_vector test12`, then
    /// `rabbitmqctl export_definitions`.
    const RABBITMQ_SHA256_TEST12: &str = "LGwh8+u14EnkuCSsA9FwNvEaSJM2O0NvDhkNaJEVJcgUl6w4";

    #[test]
    fn verifies_a_hash_rabbitmq_wrote() {
        let h = PasswordHash::parse(RABBITMQ_SHA256_TEST12, HashAlgorithm::Sha256).unwrap();
        assert!(h.verify(b"test12"));
        assert!(!h.verify(b"test13"));
        assert!(!h.verify(b""));
        assert_eq!(h.encode(), RABBITMQ_SHA256_TEST12);
    }

    #[test]
    fn new_hashes_round_trip_and_are_salted() {
        for algorithm in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let a = PasswordHash::new("s3cret", algorithm);
            let b = PasswordHash::new("s3cret", algorithm);
            assert_ne!(
                a.encode(),
                b.encode(),
                "two hashes of one password share a salt"
            );
            let parsed = PasswordHash::parse(&a.encode(), algorithm).unwrap();
            assert!(parsed.verify(b"s3cret"));
            assert!(!parsed.verify(b"s3cre"));
        }
    }

    #[test]
    fn rejects_malformed_hashes_and_names() {
        assert!(PasswordHash::parse("not base64!", HashAlgorithm::Sha256).is_err());
        let short = STANDARD.encode([0u8; 20]);
        let err = PasswordHash::parse(&short, HashAlgorithm::Sha256).unwrap_err();
        assert!(err.to_string().contains("expected 36"), "{err}");
        // A sha256 hash is not a sha512 one.
        assert!(PasswordHash::parse(RABBITMQ_SHA256_TEST12, HashAlgorithm::Sha512).is_err());
        assert!(HashAlgorithm::from_name("rabbit_password_hashing_md5").is_err());
        assert!(!format!("{:?}", PasswordHash::new("pw", HashAlgorithm::Sha256)).contains("pw\""));
    }
}
