//! Reusable waits: guest agent up, VM unlocked, VM in a power state, VM moved, HA
//! resource in its requested state. Each polls with a growing interval (100 ms up to 2 s)
//! until its deadline and returns [`Error::Timeout`] naming what it waited for.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::{ResourceType, VmStatus};
use crate::wire::Params;
use crate::{Client, Error};

/// Polls `step` until it yields a value, fails, or `timeout` passes.
async fn poll<T, F, Fut>(
    what: impl Fn() -> String,
    timeout: Duration,
    mut step: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        if let Some(v) = step().await? {
            return Ok(v);
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(Error::Timeout {
                what: what(),
                seconds: waited.as_secs_f64(),
            });
        }
        tokio::time::sleep(delay.min(timeout - waited)).await;
        delay = (delay * 3 / 2).min(Duration::from_secs(2));
    }
}

/// True for the 500s a guest that is still coming up answers to agent calls.
fn agent_not_ready(e: &Error) -> bool {
    match e {
        Error::Api {
            status, message, ..
        } => {
            *status == 500
                && (message.contains("guest agent is not running")
                    || message.contains("not running")
                    || message.contains("got timeout")
                    || message.contains("timed out"))
        }
        _ => false,
    }
}

impl Client {
    /// Waits until the QEMU guest agent of `vmid` answers `agent/ping`. "Agent not running"
    /// and "VM not running" (the guest is booting) are waited through; other errors end
    /// the wait.
    pub async fn wait_guest_agent(
        &self,
        node: &str,
        vmid: u32,
        timeout: Duration,
    ) -> Result<(), Error> {
        poll(
            || format!("guest agent of VM {vmid} on {node}"),
            timeout,
            || async {
                match self.agent_ping(node, vmid).await {
                    Ok(()) => Ok(Some(())),
                    Err(e) if agent_not_ready(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    /// Waits until `vmid` carries no lock (`clone`, `create`, `migrate`, `backup`, ...).
    pub async fn wait_vm_unlocked(
        &self,
        node: &str,
        vmid: u32,
        timeout: Duration,
    ) -> Result<VmStatus, Error> {
        poll(
            || format!("VM {vmid} on {node} to be unlocked"),
            timeout,
            || async {
                let st = self.qemu_status(node, vmid).await?;
                Ok(st.lock.as_deref().is_none_or(str::is_empty).then_some(st))
            },
        )
        .await
    }

    /// Waits until `vmid` on `node` has `status` (`running` or `stopped`). For an
    /// HA-managed guest, an HA state of `error` ends the wait with [`Error::HaState`].
    pub async fn wait_vm_status(
        &self,
        node: &str,
        vmid: u32,
        status: &str,
        timeout: Duration,
    ) -> Result<VmStatus, Error> {
        poll(
            || format!("VM {vmid} on {node} to be {status}"),
            timeout,
            || async {
                let st = self.qemu_status(node, vmid).await?;
                if let Some(ha) = &st.ha
                    && ha.state.as_deref() == Some("error")
                {
                    return Err(Error::HaState {
                        sid: format!("vm:{vmid}"),
                        state: "error".into(),
                    });
                }
                Ok((st.status == status).then_some(st))
            },
        )
        .await
    }

    /// Waits until `vmid` runs on a node other than `from` and carries no `migrate`
    /// lock; returns the new node.
    pub async fn wait_vm_moved(
        &self,
        vmid: u32,
        from: &str,
        timeout: Duration,
    ) -> Result<String, Error> {
        poll(
            || format!("VM {vmid} to leave node {from}"),
            timeout,
            || async {
                let all = self.cluster_resources(Some(ResourceType::Vm)).await?;
                let Some(r) = all.into_iter().find(|r| r.vmid == Some(u64::from(vmid))) else {
                    return Ok(None);
                };
                if r.hastate.as_deref() == Some("error") {
                    return Err(Error::HaState {
                        sid: format!("vm:{vmid}"),
                        state: "error".into(),
                    });
                }
                let locked = r.lock.as_deref().is_some_and(|l| !l.is_empty());
                Ok(match r.node {
                    Some(n) if n != from && !locked => Some(n),
                    _ => None,
                })
            },
        )
        .await
    }

    /// Waits until the HA resource `vm:{vmid}` is in the state it was asked for
    /// (`GET /cluster/ha/resources/{sid}`'s `state`): `started` means HA state `started`
    /// and the guest running; `stopped` and `disabled` mean the guest stopped; `ignored`
    /// is done at once. HA state `error` ends the wait with [`Error::HaState`].
    pub async fn wait_ha_resource(&self, vmid: u32, timeout: Duration) -> Result<String, Error> {
        let sid = format!("vm:{vmid}");
        poll(
            || format!("HA resource {sid} to reach its requested state"),
            timeout,
            || async {
                let requested = self
                    .ha_resources()
                    .await?
                    .into_iter()
                    .find(|r| r.sid == sid)
                    .and_then(|r| r.state)
                    .unwrap_or_else(|| "started".into());
                let all = self
                    .get::<Vec<crate::Resource>>(
                        "/cluster/resources",
                        &Params::new().set("type", "vm"),
                    )
                    .await?;
                let Some(r) = all.into_iter().find(|r| r.vmid == Some(u64::from(vmid))) else {
                    return Ok(None);
                };
                let hastate = r.hastate.as_deref().unwrap_or_default();
                if hastate == "error" {
                    return Err(Error::HaState {
                        sid: sid.clone(),
                        state: hastate.into(),
                    });
                }
                let status = r.status.as_deref().unwrap_or_default();
                let done = match requested.as_str() {
                    "ignored" => true,
                    "started" => hastate == "started" && status == "running",
                    "stopped" | "disabled" => status == "stopped",
                    _ => false,
                };
                Ok(done.then_some(requested))
            },
        )
        .await
    }
}
