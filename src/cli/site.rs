//! `htgate site publish | remove | list`: sites kept in the cluster store,
//! served by every node (each node's htgate.toml holds the rest).

use htgate_hosting::cluster::{keys, Cluster};
use htgate_hosting::config::Config;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn cluster_of(config: &Path) -> Result<(Config, Arc<Cluster>), ExitCode> {
    let config = Config::load(config).map_err(|e| {
        eprintln!("{e}");
        eprintln!("error: the configuration has errors; nothing was changed");
        ExitCode::FAILURE
    })?;
    let Some(c) = &config.file.cluster else {
        eprintln!(
            "error: {} has no [cluster] table: sites of a single node go into its htgate.toml",
            config.path.display()
        );
        return Err(ExitCode::FAILURE);
    };
    let cluster = Cluster::from_config(c.get_ref()).map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })?;
    Ok((config, cluster))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// `htgate site publish --config htgate.toml SITE.toml`.
pub(super) fn publish(config: &Path, document: &Path) -> ExitCode {
    let (config, cluster) = match cluster_of(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(document) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", document.display());
            return ExitCode::FAILURE;
        }
    };
    // Errors name the document being published, with line and column.
    let origin = document.display().to_string();
    match block_on(cluster.publish_site(&config, &origin, &text)) {
        Ok(Ok(name)) => {
            println!(
                "published site `{name}` to {}: every node serves it within a second",
                cluster.store().describe()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("{e}");
            eprintln!("error: nothing was published");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

/// `htgate site remove --config htgate.toml NAME`.
pub(super) fn remove(config: &Path, name: &str) -> ExitCode {
    let (_, cluster) = match cluster_of(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match block_on(cluster.remove_site(name)) {
        Ok(Ok(true)) => {
            println!("removed site `{name}` from {}", cluster.store().describe());
            ExitCode::SUCCESS
        }
        Ok(Ok(false)) => {
            eprintln!(
                "error: there is no site `{name}` in {}",
                cluster.store().describe()
            );
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

/// `htgate site list --config htgate.toml`.
pub(super) fn list(config: &Path) -> ExitCode {
    let (_, cluster) = match cluster_of(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match block_on(cluster.store().list(keys::SITES)) {
        Ok(Ok(items)) => {
            for (key, _) in items {
                println!("{}", key.trim_start_matches(keys::SITES));
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}
