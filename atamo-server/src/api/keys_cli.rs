//! `atamo keys create|list|revoke`: API keys managed straight in the store, for the first keys
//! of a service and for scripts on the service's machine.

use std::process::ExitCode;

use atamo_core::ids::TenantId;
use clap::Subcommand;

use super::auth::{KeyRing, Role};
use crate::store::Target;

/// Key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Makes a key and prints its token (shown once; only its hash is kept).
    Create {
        /// `admin`, `operator`, `client` or `reader`.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Bind the key to a tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// Which store.
        #[command(flatten)]
        target: Target,
    },
    /// Lists the keys (never their secrets).
    List {
        /// Which store.
        #[command(flatten)]
        target: Target,
    },
    /// Revokes a key.
    Revoke {
        /// The key's id.
        id: String,
        /// Which store.
        #[command(flatten)]
        target: Target,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "one of admin, operator, client, reader".to_owned())
}

/// Runs a key command.
pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match command {
            KeysCommand::Create {
                role,
                tenant,
                name,
                target,
            } => {
                let tenant = match tenant {
                    Some(t) => {
                        let t = TenantId::from(t.as_str());
                        t.validate().map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
                        Some(t)
                    }
                    None => None,
                };
                let store = crate::store::open_or_create(&target).await?;
                let keys = KeyRing::open(store.registry, None).await?;
                let key = keys.create(role, tenant, name, Vec::new()).await?;
                if target.json() {
                    println!("{}", serde_json::to_string(&key)?);
                } else {
                    println!("{}", key.token);
                    eprintln!(
                        "key {} ({}) made; the token above is shown once",
                        key.info.id, key.info.role
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::List { target } => {
                let store = crate::store::open(&target).await?;
                let keys = KeyRing::open(store.registry, None).await?;
                let list = keys.list();
                if target.json() {
                    println!("{}", serde_json::to_string(&list)?);
                } else {
                    for k in list {
                        println!(
                            "{}  {:<8}  tenant={}  name={}",
                            k.id,
                            k.role,
                            k.tenant
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".into()),
                            k.name.unwrap_or_else(|| "-".into())
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Revoke { id, target } => {
                let store = crate::store::open(&target).await?;
                let keys = KeyRing::open(store.registry, None).await?;
                if keys.revoke(&id, Vec::new()).await? {
                    eprintln!("key {id} revoked");
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("no key {id}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    })
}
