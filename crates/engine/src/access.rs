//! Access control: mod_authz_core's `Require` (with `<RequireAll>`,
//! `<RequireAny>`, `<RequireNone>`, `<Limit>`/`<LimitExcept>`) and
//! mod_access_compat's `Order`/`Allow`/`Deny`/`Satisfy`.

use htgate_syntax::expr;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    Any,
    All,
    None,
}

#[derive(Debug, Clone)]
pub enum Provider {
    All(bool),
    Ip(Vec<IpMatch>),
    Host(Vec<String>),
    Env(Vec<String>),
    Method(Vec<String>),
    Expr(Arc<expr::Expr>),
    /// `Require local`: a loopback client, or one connecting from the
    /// server's own address.
    Local,
    /// `Require valid-user`.
    ValidUser,
    /// `Require user a b`.
    Users(Vec<String>),
    /// `Require group g` (AuthGroupFile).
    Groups(Vec<String>),
    /// `Require file-owner` / `file-group`: not supported, never granted.
    FileOwner,
}

#[derive(Debug, Clone)]
pub enum AuthzItem {
    Require { negate: bool, provider: Provider },
    Block(AuthzBlock),
}

/// A method restriction from `<Limit>` / `<LimitExcept>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodLimit {
    pub except: bool,
    pub methods: Vec<String>,
}

impl MethodLimit {
    pub fn applies(&self, method: &str) -> bool {
        let listed = self.methods.iter().any(|m| {
            m.eq_ignore_ascii_case(method) || (m.eq_ignore_ascii_case("GET") && method == "HEAD")
        });
        listed != self.except
    }
}

#[derive(Debug, Clone)]
pub struct AuthzBlock {
    pub combine: Combine,
    pub items: Vec<(Option<MethodLimit>, AuthzItem)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Granted,
    Denied,
    Neutral,
    /// Denied, but an authenticated user might be granted
    /// (`AUTHZ_DENIED_NO_USER`): authentication is asked for.
    DeniedNoUser,
}

/// What authorization needs to know about the request.
pub trait AuthzRequest {
    fn method(&self) -> &str;
    fn remote_ip(&self) -> IpAddr;
    /// The address the connection came in on (`Require local`).
    fn local_ip(&self) -> Option<IpAddr> {
        None
    }
    fn env(&self, name: &str) -> Option<String>;
    /// The authenticated user (`r->user`), if any.
    fn user(&self) -> Option<String> {
        None
    }
    /// Whether the authenticated user is in `group` (AuthGroupFile).
    fn in_group(&mut self, _group: &str) -> bool {
        false
    }
    fn eval_expr(&mut self, e: &expr::Expr) -> bool;
}

impl AuthzBlock {
    pub(crate) fn grant_all() -> AuthzBlock {
        AuthzBlock {
            combine: Combine::Any,
            items: vec![(
                None,
                AuthzItem::Require {
                    negate: false,
                    provider: Provider::All(true),
                },
            )],
        }
    }

    pub(crate) fn deny_all() -> AuthzBlock {
        AuthzBlock {
            combine: Combine::Any,
            items: vec![(
                None,
                AuthzItem::Require {
                    negate: false,
                    provider: Provider::All(false),
                },
            )],
        }
    }

    /// The top-level check (`authorize_user_core`): the file's section is
    /// applied as the child of an implicit AND.
    pub fn check(&self, req: &mut dyn AuthzRequest) -> Decision {
        self.apply(req, true)
    }

    /// Whether any Require line in the block applies to the request's
    /// method: a section's `limited` bits are the union of its children's
    /// (mod_authz_core.c add_authz_provider / add_authz_section).
    fn limited_to(&self, method: &str) -> bool {
        self.items
            .iter()
            .any(|(l, i)| item_limited_to(l, i, method))
    }

    /// Apache: `mod_authz_core.c` `apply_authz_sections`.  `parent_all` is
    /// the parent section's operator: a section limited to other methods
    /// is GRANTED under an AND parent and NEUTRAL under an OR parent.
    fn apply(&self, req: &mut dyn AuthzRequest, parent_all: bool) -> Decision {
        let method = req.method().to_string();
        if !self.limited_to(&method) {
            return if parent_all {
                Decision::Granted
            } else {
                Decision::Neutral
            };
        }
        let all = self.combine == Combine::All;
        let mut result = Decision::Neutral;
        for (limit, item) in &self.items {
            let child = if !item_limited_to(limit, item, &method) {
                if all {
                    Decision::Granted
                } else {
                    Decision::Neutral
                }
            } else {
                match item {
                    AuthzItem::Require { negate, provider } => {
                        match (negate, provider_result(provider, req)) {
                            (false, d) => d,
                            // `Require not X`: denies when X matches,
                            // neutral otherwise.
                            (true, Decision::Granted) => Decision::Denied,
                            (true, _) => Decision::Neutral,
                        }
                    }
                    AuthzItem::Block(b) => b.apply(req, all),
                }
            };
            if child == Decision::Neutral {
                continue;
            }
            // mod_authz_core apply_authz_sections: DENIED_NO_USER is kept
            // when providing a user may still change the result.
            if all {
                if child == Decision::Denied {
                    result = child;
                    break;
                }
                if (child == Decision::DeniedNoUser && result != Decision::Denied)
                    || result == Decision::Neutral
                {
                    result = child;
                }
            } else {
                if child == Decision::Granted {
                    result = child;
                    break;
                }
                if (child == Decision::DeniedNoUser && result == Decision::Denied)
                    || result == Decision::Neutral
                {
                    result = child;
                }
            }
        }
        // <RequireNone> is a negated OR section.
        if self.combine == Combine::None {
            result = match result {
                Decision::Granted => Decision::Denied,
                _ => Decision::Neutral,
            };
        }
        result
    }
}

fn item_limited_to(limit: &Option<MethodLimit>, item: &AuthzItem, method: &str) -> bool {
    match item {
        AuthzItem::Require { .. } => limit.as_ref().map_or(true, |l| l.applies(method)),
        AuthzItem::Block(b) => b.limited_to(method),
    }
}

/// One `Require` provider's answer.
fn provider_result(p: &Provider, req: &mut dyn AuthzRequest) -> Decision {
    let user_needed = matches!(
        p,
        Provider::ValidUser | Provider::Users(_) | Provider::Groups(_) | Provider::FileOwner
    );
    if user_needed {
        let Some(user) = req.user() else {
            return Decision::DeniedNoUser;
        };
        let granted = match p {
            Provider::ValidUser => true,
            Provider::Users(list) => list.contains(&user),
            Provider::Groups(list) => list.iter().any(|g| req.in_group(g)),
            _ => false,
        };
        return if granted {
            Decision::Granted
        } else {
            Decision::Denied
        };
    }
    if provider_matches(p, req) {
        Decision::Granted
    } else {
        Decision::Denied
    }
}

fn provider_matches(p: &Provider, req: &mut dyn AuthzRequest) -> bool {
    match p {
        Provider::All(g) => *g,
        Provider::Ip(list) => {
            let ip = req.remote_ip();
            list.iter().any(|m| m.matches(ip))
        }
        // HostnameLookups Off: a host name never matches an address.
        Provider::Host(_) => false,
        Provider::Env(names) => names.iter().any(|n| req.env(n).is_some()),
        Provider::Method(ms) => {
            let m = req.method().to_string();
            ms.iter().any(|x| x.eq_ignore_ascii_case(&m))
        }
        Provider::Expr(e) => req.eval_expr(e),
        Provider::Local => {
            let ip = req.remote_ip();
            ip.is_loopback() || req.local_ip() == Some(ip)
        }
        Provider::ValidUser | Provider::Users(_) | Provider::Groups(_) | Provider::FileOwner => {
            false
        }
    }
}

/// An address pattern of `Require ip` / `Allow from`: a full or partial
/// address, `addr/bits` or `addr/netmask`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpMatch {
    pub net: IpAddr,
    pub bits: u8,
}

impl IpMatch {
    pub fn parse(s: &str) -> Option<IpMatch> {
        if let Some((addr, mask)) = s.split_once('/') {
            let net: IpAddr = addr.parse().ok()?;
            let bits = if let Ok(b) = mask.parse::<u8>() {
                b
            } else {
                let m: std::net::Ipv4Addr = mask.parse().ok()?;
                u32::from(m).count_ones() as u8
            };
            return Some(IpMatch { net, bits });
        }
        if let Ok(net) = s.parse::<IpAddr>() {
            let bits = if net.is_ipv4() { 32 } else { 128 };
            return Some(IpMatch { net, bits });
        }
        // partial IPv4: `10.1` means 10.1.0.0/16
        let parts: Vec<&str> = s.trim_end_matches('.').split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        let mut octets = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            octets[i] = p.parse().ok()?;
        }
        Some(IpMatch {
            net: IpAddr::from(octets),
            bits: (parts.len() * 8) as u8,
        })
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let bits = self.bits.min(32) as u32;
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let bits = self.bits.min(128) as u32;
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    DenyAllow,
    AllowDeny,
    MutualFailure,
}

#[derive(Debug, Clone)]
pub enum AllowFrom {
    All,
    Ip(IpMatch),
    Host(String),
    Env { negate: bool, name: String },
}

/// mod_access_compat's settings for one directory (it has no merge
/// function: a file that uses it replaces the parent's completely).
#[derive(Debug, Clone)]
pub struct AccessCompat {
    pub order: Order,
    pub allow: Vec<(Option<MethodLimit>, AllowFrom)>,
    pub deny: Vec<(Option<MethodLimit>, AllowFrom)>,
    pub satisfy_any: bool,
}

impl Default for AccessCompat {
    fn default() -> Self {
        AccessCompat {
            order: Order::DenyAllow,
            allow: Vec::new(),
            deny: Vec::new(),
            satisfy_any: false,
        }
    }
}

impl AccessCompat {
    /// Apache: `mod_access_compat.c` `check_dir_access`.
    pub fn allows(&self, req: &mut dyn AuthzRequest) -> bool {
        let method = req.method().to_string();
        let ip = req.remote_ip();
        let hit = |list: &Vec<(Option<MethodLimit>, AllowFrom)>, req: &mut dyn AuthzRequest| {
            list.iter().any(|(limit, a)| {
                if let Some(l) = limit {
                    if !l.applies(&method) {
                        return false;
                    }
                }
                match a {
                    AllowFrom::All => true,
                    AllowFrom::Ip(m) => m.matches(ip),
                    AllowFrom::Host(_) => false,
                    AllowFrom::Env { negate, name } => req.env(name).is_some() != *negate,
                }
            })
        };
        let allowed = hit(&self.allow, req);
        let denied = hit(&self.deny, req);
        match self.order {
            Order::DenyAllow => !denied || allowed,
            Order::AllowDeny => allowed && !denied,
            Order::MutualFailure => allowed && !denied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str);

    impl AuthzRequest for Fake {
        fn method(&self) -> &str {
            self.0
        }
        fn remote_ip(&self) -> IpAddr {
            IpAddr::from([127, 0, 0, 1])
        }
        fn env(&self, _: &str) -> Option<String> {
            None
        }
        fn eval_expr(&mut self, _: &expr::Expr) -> bool {
            false
        }
    }

    fn deny_for(except: bool, methods: &[&str]) -> (Option<MethodLimit>, AuthzItem) {
        (
            Some(MethodLimit {
                except,
                methods: methods.iter().map(|m| m.to_string()).collect(),
            }),
            AuthzItem::Require {
                negate: false,
                provider: Provider::All(false),
            },
        )
    }

    #[test]
    fn limited_sections_grant_other_methods() {
        // `<Limit POST>` + `<LimitExcept GET POST>` with `Require all
        // denied`: a GET is not covered by any line, so the file's section
        // is GRANTED under the implicit AND (apply_authz_sections).
        let b = AuthzBlock {
            combine: Combine::Any,
            items: vec![deny_for(false, &["POST"]), deny_for(true, &["GET", "POST"])],
        };
        assert_eq!(b.check(&mut Fake("GET")), Decision::Granted);
        assert_eq!(b.check(&mut Fake("HEAD")), Decision::Granted);
        assert_eq!(b.check(&mut Fake("POST")), Decision::Denied);
        assert_eq!(b.check(&mut Fake("PUT")), Decision::Denied);
        // Inside a <RequireAny>, a line for other methods is NEUTRAL.
        let any = AuthzBlock {
            combine: Combine::Any,
            items: vec![(
                None,
                AuthzItem::Block(AuthzBlock {
                    combine: Combine::Any,
                    items: vec![
                        deny_for(false, &["POST"]),
                        (
                            None,
                            AuthzItem::Require {
                                negate: false,
                                provider: Provider::All(true),
                            },
                        ),
                    ],
                }),
            )],
        };
        assert_eq!(any.check(&mut Fake("GET")), Decision::Granted);
        assert_eq!(any.check(&mut Fake("POST")), Decision::Granted);
    }

    #[test]
    fn ip_matching() {
        let m = IpMatch::parse("10.1").unwrap();
        assert!(m.matches("10.1.2.3".parse().unwrap()));
        assert!(!m.matches("10.2.2.3".parse().unwrap()));
        let m = IpMatch::parse("192.168.0.0/255.255.0.0").unwrap();
        assert!(m.matches("192.168.9.9".parse().unwrap()));
        let m = IpMatch::parse("127.0.0.1").unwrap();
        assert!(m.matches("::ffff:127.0.0.1".parse().unwrap()));
        assert!(IpMatch::parse("example.com").is_none());
    }
}
