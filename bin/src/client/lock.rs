//! `sextant lock NAME [COMMAND...]`: acquires the distributed lock NAME on a session lease
//! and prints the owner key and its fencing token (the key's create revision). Without a
//! command the lock is held until Ctrl-C; with one, the command runs while the lock is held
//! (with `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` in its environment, as etcdctl sets them) and
//! the lock is released when it exits, the command's exit status becoming ours.

use anyhow::{bail, Context};
use clap::Args;
use sextant_net::grpc::pb::etcdserverpb as pb;
use sextant_net::grpc::pb::v3lockpb;

use super::json::{self, Obj};
use super::session::Session;
use super::Connection;

#[derive(Args, Debug)]
pub struct LockArgs {
    /// The lock's name.
    pub name: String,
    /// A command to run while holding the lock.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// TTL in seconds of the session lease (the lock is lost if it cannot be renewed).
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
}

pub async fn run(conn: &Connection, args: LockArgs) -> anyhow::Result<()> {
    let mut session = Session::start(conn, args.ttl).await?;
    let result = hold(conn, &args, &mut session).await;
    let closed = session.close(conn).await;
    let status = result?;
    closed.context("releasing the lock")?;
    if let Some(code) = status {
        if code != 0 {
            std::process::exit(code);
        }
    }
    Ok(())
}

/// Acquires and holds the lock; the command's exit code when one was run.
async fn hold(
    conn: &Connection,
    args: &LockArgs,
    session: &mut Session,
) -> anyhow::Result<Option<i32>> {
    let mut lock = conn.lock().await?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Waiting for the lock has no deadline (other holders may keep it for long).
    let lease_id = session.lease_id;
    let locked = tokio::select! {
        _ = &mut interrupted => bail!("interrupted while waiting for the lock"),
        why = session.lost() => bail!("session lost while waiting for the lock: {why}"),
        r = lock.lock(v3lockpb::LockRequest {
            name: args.name.clone().into_bytes(),
            lease: lease_id,
        }) => r?.into_inner(),
    };
    let fencing_token = create_revision(conn, &locked.key).await?;
    let key = String::from_utf8_lossy(&locked.key).into_owned();

    let outcome = if args.command.is_empty() {
        if conn.json() {
            json::print(
                &Obj::new()
                    .value("header", locked.header.as_ref().map(json::header))
                    .bytes("key", &locked.key)
                    .i64("fencing_token", fencing_token)
                    .done(),
            );
        } else {
            println!("{key}");
            println!("fencing token: {fencing_token}");
        }
        tokio::select! {
            _ = &mut interrupted => Ok(None),
            why = session.lost() => Err(anyhow::anyhow!("lock lost: {why}")),
        }
    } else {
        let mut child = tokio::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .env("ETCD_LOCK_KEY", &key)
            .env("ETCD_LOCK_REV", fencing_token.to_string())
            .spawn()
            .with_context(|| format!("running {:?}", args.command[0]))?;
        tokio::select! {
            st = child.wait() => Ok(Some(st?.code().unwrap_or(1))),
            why = session.lost() => {
                let _ = child.kill().await;
                Err(anyhow::anyhow!("lock lost while running the command: {why}"))
            }
        }
    };
    let unlocked = conn
        .call(lock.unlock(v3lockpb::UnlockRequest {
            key: locked.key.clone(),
        }))
        .await;
    let outcome = outcome?;
    unlocked.context("unlocking")?;
    Ok(outcome)
}

/// The owner key's create revision: the fencing token.
async fn create_revision(conn: &Connection, key: &[u8]) -> anyhow::Result<i64> {
    let mut kv = conn.kv().await?;
    let r = conn
        .call(kv.range(pb::RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        }))
        .await?;
    match r.kvs.first() {
        Some(kv) => Ok(kv.create_revision),
        None => bail!(
            "lock key {} vanished right after it was acquired",
            String::from_utf8_lossy(key)
        ),
    }
}
