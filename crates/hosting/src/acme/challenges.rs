//! Pending HTTP-01 answers, shared between the order in flight and the HTTP
//! server that answers the CA.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::CHALLENGE_PREFIX;

/// Pending HTTP-01 answers, shared with the HTTP server: token -> key authorization.
#[derive(Clone, Default)]
pub struct Challenges {
    inner: Arc<RwLock<HashMap<String, String>>>,
}

impl Challenges {
    /// The key authorization to send for `token`, if an order is waiting on it.
    pub fn answer(&self, token: &str) -> Option<String> {
        let map = self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(token).cloned()
    }

    /// The answer for a request path: `Some` only for
    /// `/.well-known/acme-challenge/<known token>`.
    pub(crate) fn answer_path(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        // Tokens are base64url; anything else (slashes, dots) is not ours.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        self.answer(token)
    }

    /// Publish an answer (done by the order before telling the CA it is ready).
    pub fn insert(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(token.into(), key_authorization.into());
    }

    /// Withdraw an answer once the order no longer needs it.
    pub fn remove(&self, token: &str) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(token);
    }

    /// Replaces every answer (the cluster's full list after a reconnect).
    pub fn replace_all(&self, answers: HashMap<String, String>) {
        let mut map = self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *map = answers;
    }

    /// How many answers are published (for tests and status pages).
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether no answer is published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tokens published for one order; withdrawn on drop so that an order that
/// fails, times out or is cancelled leaves nothing behind.
pub(crate) struct Published {
    challenges: Challenges,
    tokens: Vec<String>,
}

impl Published {
    pub(crate) fn new(challenges: Challenges) -> Self {
        Published {
            challenges,
            tokens: Vec::new(),
        }
    }

    pub(crate) fn publish(&mut self, token: &str, key_authorization: &str) {
        self.challenges.insert(token, key_authorization);
        self.tokens.push(token.to_string());
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.challenges.remove(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_known_tokens_only() {
        let challenges = Challenges::default();
        challenges.insert("tok_EN-1", "tok_EN-1.thumb");
        assert_eq!(
            challenges.answer("tok_EN-1").as_deref(),
            Some("tok_EN-1.thumb")
        );
        assert_eq!(challenges.answer("other"), None);
        assert_eq!(
            challenges
                .answer_path("/.well-known/acme-challenge/tok_EN-1")
                .as_deref(),
            Some("tok_EN-1.thumb")
        );
        assert_eq!(challenges.answer_path("/.well-known/acme-challenge/"), None);
        assert_eq!(
            challenges.answer_path("/.well-known/acme-challenge/../x"),
            None
        );
        assert_eq!(challenges.answer_path("/tok_EN-1"), None);
        challenges.remove("tok_EN-1");
        assert_eq!(challenges.answer("tok_EN-1"), None);
    }

    #[test]
    fn published_tokens_are_withdrawn_on_drop() {
        let challenges = Challenges::default();
        {
            let mut published = Published::new(challenges.clone());
            published.publish("a", "a.k");
            published.publish("b", "b.k");
            assert_eq!(challenges.len(), 2);
        }
        assert!(challenges.is_empty());
    }
}
