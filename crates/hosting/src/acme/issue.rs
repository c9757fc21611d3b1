//! One ACME order for one DNS name over HTTP-01, with instant-acme.

use std::time::Duration;

use instant_acme::{
    Account, AccountBuilder, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier,
    NewAccount, NewOrder, Order, OrderStatus, Problem, RetryPolicy,
};

use super::challenges::{Challenges, Published};
use super::error::{describe, describe_problem, is_unknown_account, refused_replaces, AcmeError};
use super::settings::AcmeSettings;
use super::store::{self, StoredCert};
use super::CHALLENGE_PREFIX;

/// How long the CA may take to validate, then to issue. Pebble answers in
/// milliseconds; Let's Encrypt in seconds; a minute and a half is plenty
/// and bounds the wait when the CA is stuck.
const POLL_TIMEOUT: Duration = Duration::from_secs(90);

fn poll_policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(POLL_TIMEOUT)
}

/// An HTTP client trusting `ca_root` (pebble) or the platform's roots.
fn builder(settings: &AcmeSettings) -> Result<AccountBuilder, AcmeError> {
    // instant-acme's client asks rustls for the default provider.
    htgate_server::tls::install_default_provider();
    match &settings.ca_root {
        Some(path) => Account::builder_with_root(path).map_err(|e| AcmeError::CaRoot {
            path: path.clone(),
            detail: describe(&e),
        }),
        None => Account::builder().map_err(|e| AcmeError::DirectoryUnreachable {
            url: settings.directory_url.clone(),
            detail: format!("cannot set up the HTTPS client: {}", describe(&e)),
        }),
    }
}

/// A transport failure means the directory is unreachable; a problem
/// document means the CA answered and said no.
fn account_error(settings: &AcmeSettings, err: &instant_acme::Error) -> AcmeError {
    let url = settings.directory_url.clone();
    let detail = describe(err);
    match err {
        instant_acme::Error::Api(_) => AcmeError::AccountRefused { url, detail },
        _ => AcmeError::DirectoryUnreachable { url, detail },
    }
}

/// Restore the stored account, or create one and store its credentials.
/// `fresh` skips the stored one (the CA said it does not know it).
pub(crate) async fn load_or_create_account(
    settings: &AcmeSettings,
    fresh: bool,
) -> Result<Account, AcmeError> {
    if !fresh {
        if let Some(credentials) = store::load_account(&settings.storage, &settings.directory_url)?
        {
            return builder(settings)?
                .from_credentials(credentials)
                .await
                .map_err(|e| account_error(settings, &e));
        }
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(settings)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory_url.clone(),
            None,
        )
        .await
        .map_err(|e| account_error(settings, &e))?;
    store::save_account(&settings.storage, &settings.directory_url, credentials)?;
    tracing::info!(directory = %settings.directory_url, account = account.id(), "created ACME account");
    Ok(account)
}

/// What an order asks for beyond the name.
#[derive(Default)]
pub(crate) struct OrderOptions {
    /// The certificate this order replaces (RFC 9773 §5), on renewals
    /// when the CA offers renewal information.
    pub replaces: Option<CertificateIdentifier<'static>>,
    /// The ACME profile, already checked against the directory's list.
    pub profile: Option<String>,
}

/// Create the order; `Err(None)` when the CA does not know the account.
/// When the CA refuses `replaces` the order is placed once more without it.
pub(crate) async fn new_order(
    account: &Account,
    domain: &str,
    options: &OrderOptions,
) -> Result<Order, Option<AcmeError>> {
    let identifiers = [Identifier::Dns(domain.to_string())];
    let mut order = NewOrder::new(&identifiers);
    if let Some(profile) = &options.profile {
        order = order.profile(profile);
    }
    let first = match &options.replaces {
        Some(old) => account.new_order(&order.replaces(old.clone())).await,
        None => account.new_order(&order).await,
    };
    let result = match first {
        Err(e) if options.replaces.is_some() && refused_replaces(&e) => {
            let replaces = options.replaces.as_ref().map(ToString::to_string);
            if matches!(e, instant_acme::Error::Unsupported(_)) {
                // Refused by instant-acme itself: no `renewalInfo` in the directory.
                tracing::debug!(domain, "the CA offers no renewal information: the order names no certificate it replaces");
            } else {
                tracing::info!(domain, replaces = ?replaces, reason = %describe(&e), "the CA refused the order naming the certificate it replaces; ordering without it");
            }
            let mut order = NewOrder::new(&identifiers);
            if let Some(profile) = &options.profile {
                order = order.profile(profile);
            }
            account.new_order(&order).await
        }
        other => other,
    };
    result.map_err(|e| {
        if is_unknown_account(&e) {
            None
        } else {
            Some(protocol(domain, "creating the order", &e))
        }
    })
}

fn protocol(domain: &str, stage: &'static str, err: &instant_acme::Error) -> AcmeError {
    match err {
        instant_acme::Error::Timeout(_) => AcmeError::Timeout {
            domain: domain.to_string(),
            stage,
            after: POLL_TIMEOUT,
        },
        _ => AcmeError::Protocol {
            domain: domain.to_string(),
            stage,
            detail: describe(err),
        },
    }
}

/// Run `order` to a certificate: publish the HTTP-01 answers, tell the CA,
/// wait for validation, finalize with a fresh key, download the chain.
/// In a cluster the answers are also published through the order's lock
/// (`shared`), before the CA is told, so whichever node the load balancer
/// hands the CA's request to can answer it; they vanish with the lock.
pub(crate) async fn complete_order(
    mut order: Order,
    domain: &str,
    challenges: &Challenges,
    shared: Option<&dyn crate::cluster::HeldLock>,
) -> Result<StoredCert, AcmeError> {
    // Dropped (answers withdrawn) on every way out of this function.
    let mut published = Published::new(challenges.clone());
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result.map_err(|e| protocol(domain, "fetching the authorization", &e))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Reused from an earlier order (the CA remembers for a while).
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::OrderInvalid {
                    domain: domain.to_string(),
                    detail: format!("authorization is {other:?}"),
                })
            }
        }
        let mut challenge =
            authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| AcmeError::NoHttp01Challenge {
                    domain: domain.to_string(),
                })?;
        let key_authorization = challenge.key_authorization();
        published.publish(&challenge.token, key_authorization.as_str());
        if let Some(lock) = shared {
            let key = format!("{}{}", crate::cluster::keys::CHALLENGES, challenge.token);
            lock.put_bound(&key, key_authorization.as_str().as_bytes())
                .await
                .map_err(|e| AcmeError::Cluster {
                    domain: domain.to_string(),
                    detail: format!("cannot share the HTTP-01 answer with the other nodes: {e}"),
                })?;
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| protocol(domain, "telling the CA the challenge is ready", &e))?;
    }

    match order.poll_ready(&poll_policy()).await {
        Ok(OrderStatus::Ready) => {}
        Ok(_) => return Err(validation_failure(&mut order, domain, None).await),
        Err(instant_acme::Error::Api(problem)) => {
            return Err(validation_failure(&mut order, domain, Some(problem)).await)
        }
        Err(e) => return Err(protocol(domain, "waiting for validation", &e)),
    }
    // Validation is over: the CA will not fetch the answers again.
    drop(published);

    let key_pem = order
        .finalize()
        .await
        .map_err(|e| protocol(domain, "finalizing the order", &e))?;
    let chain_pem = order
        .poll_certificate(&poll_policy())
        .await
        .map_err(|e| protocol(domain, "downloading the certificate", &e))?;
    StoredCert::from_pem(domain, chain_pem, key_pem).map_err(|detail| AcmeError::BadCertificate {
        domain: domain.to_string(),
        detail,
    })
}

/// Why validation failed, from the failed challenge's problem when the CA
/// recorded one (it names what it fetched), else from the order's.
async fn validation_failure(
    order: &mut Order,
    domain: &str,
    order_problem: Option<Problem>,
) -> AcmeError {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        // The cached state predates validation; ask again.
        let Ok(state) = authz.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if challenge.r#type != ChallengeType::Http01 {
                continue;
            }
            if let Some(problem) = &challenge.error {
                return AcmeError::ChallengeFailed {
                    domain: domain.to_string(),
                    url: format!("http://{domain}{CHALLENGE_PREFIX}{}", challenge.token),
                    detail: describe_problem(problem),
                };
            }
        }
    }
    AcmeError::OrderInvalid {
        domain: domain.to_string(),
        detail: order_problem
            .map(|p| describe_problem(&p))
            .unwrap_or_else(|| "the CA marked the order invalid without saying why".to_string()),
    }
}
