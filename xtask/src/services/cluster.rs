//! Forming the Redis cluster of the `redis-cluster` service out of its nodes.

use std::process::{Command, Stdio};

use super::process::{READY_TIMEOUT, wait_until};
use super::table::Service;
use crate::util::{self, Failure, Result};

/// Whether every node of the cluster service reports `cluster_state:ok`.
fn cluster_ok(svc: &Service) -> bool {
    svc.ports.iter().all(|port| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
    })
}

/// Joins the nodes of a cluster service into one cluster of primaries (idempotent).
pub(super) fn form_cluster(svc: &Service) -> Result {
    if cluster_ok(svc) {
        println!("{}: cluster already formed", svc.name);
        return Ok(());
    }
    let nodes: Vec<String> = svc.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut cmd = Command::new("redis-cli");
    cmd.arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null());
    util::run(&mut cmd)?;
    if wait_until(READY_TIMEOUT, || cluster_ok(svc)) {
        println!("{}: cluster of {} primaries formed", svc.name, nodes.len());
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{}: the cluster did not reach cluster_state:ok within {} s",
            svc.name,
            READY_TIMEOUT.as_secs()
        )))
    }
}
