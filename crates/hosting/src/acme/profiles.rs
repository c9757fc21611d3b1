//! ACME profiles (e.g. Let's Encrypt's `shortlived`): which one an order
//! asks for, checked against the ones the CA's directory lists.
//!
//! A site's `acme_profile` wins over `[acme] profile`; without either the
//! CA's default is used. A name the directory does not list (or a
//! directory that lists none) is refused before any order is placed: an
//! order with a profile the CA does not know would either fail at the CA
//! or, worse, silently give a certificate of another kind.

use std::collections::HashMap;

use super::error::AcmeError;

/// The profile for `domain`: its site's, else the `[acme]` default.
pub(crate) fn wanted<'a>(
    sites: &'a HashMap<String, String>,
    default: Option<&'a str>,
    domain: &str,
) -> Option<&'a str> {
    sites.get(domain).map(String::as_str).or(default)
}

/// `Ok(Some(name))` when `wanted` is among `listed`; `Ok(None)` when no
/// profile is wanted; an error naming the site's domain, the CA and what
/// it lists otherwise.
pub(crate) fn check(
    wanted: Option<&str>,
    listed: &[String],
    domain: &str,
    directory: &str,
) -> Result<Option<String>, AcmeError> {
    let Some(name) = wanted else {
        return Ok(None);
    };
    if listed.iter().any(|l| l == name) {
        return Ok(Some(name.to_string()));
    }
    let listed = if listed.is_empty() {
        "the directory lists no profiles (the CA does not offer ACME profiles); remove the setting or use a CA that offers them".to_string()
    } else {
        format!("the directory lists: {}", listed.join(", "))
    };
    Err(AcmeError::UnknownProfile {
        domain: domain.to_string(),
        profile: name.to_string(),
        directory: directory.to_string(),
        listed,
    })
}

/// The profile names of `account`'s directory, sorted.
pub(crate) fn listed(account: &instant_acme::Account) -> Vec<String> {
    let mut names: Vec<String> = account.profiles().map(|p| p.name.to_string()).collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_wins_over_the_default() {
        let sites = HashMap::from([("a.test".to_string(), "shortlived".to_string())]);
        assert_eq!(
            wanted(&sites, Some("classic"), "a.test"),
            Some("shortlived")
        );
        assert_eq!(wanted(&sites, Some("classic"), "b.test"), Some("classic"));
        assert_eq!(wanted(&sites, None, "b.test"), None);
    }

    #[test]
    fn unlisted_profiles_are_refused_with_what_is_listed() {
        let listed = vec!["classic".to_string(), "shortlived".to_string()];
        let dir = "https://ca.test/dir";
        assert_eq!(check(None, &listed, "a.test", dir).ok(), Some(None));
        assert_eq!(
            check(Some("shortlived"), &listed, "a.test", dir).ok(),
            Some(Some("shortlived".to_string()))
        );
        let err = check(Some("tiny"), &listed, "a.test", dir)
            .expect_err("unlisted")
            .to_string();
        assert!(
            err.contains("\"tiny\"")
                && err.contains("a.test")
                && err.contains(dir)
                && err.contains("classic, shortlived"),
            "{err}"
        );
        let err = check(Some("tiny"), &[], "a.test", dir)
            .expect_err("none listed")
            .to_string();
        assert!(err.contains("lists no profiles"), "{err}");
    }
}
