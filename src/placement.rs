//! Which CPUs the shards run on.
//!
//! glommio's own detection lists every online CPU and ignores the process's
//! affinity mask, so under `taskset` or a cgroup cpuset it would pin shards to
//! CPUs the process may not use. Here the mask is the truth. This module only
//! decides; pinning happens when each shard's executor is built.

use std::io;

/// The CPUs this process may run on (its `sched_getaffinity` mask), ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

/// Pick `cores` CPUs from `allowed` (all of them when `None`), one shard each.
pub fn choose(allowed: &[usize], cores: Option<usize>) -> Result<Vec<usize>, String> {
    match cores {
        None if allowed.is_empty() => Err("the process may run on no CPU at all".into()),
        None => Ok(allowed.to_vec()),
        Some(0) => Err("--cores must be at least 1".into()),
        Some(n) if n > allowed.len() => Err(format!(
            "asked for {n} cores but this process may run on only {} (CPUs {}); \
             lower --cores or widen the affinity (taskset, cgroup cpuset)",
            allowed.len(),
            list(allowed)
        )),
        Some(n) => Ok(allowed[..n].to_vec()),
    }
}

/// `0,1,4` — for log lines.
pub fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_every_allowed_cpu() {
        assert_eq!(choose(&[2, 3], None).unwrap(), vec![2, 3]);
        assert_eq!(choose(&[2, 3], Some(1)).unwrap(), vec![2]);
    }

    #[test]
    fn refuses_more_cores_than_allowed() {
        let err = choose(&[0], Some(2)).unwrap_err();
        assert!(err.contains("only 1 (CPUs 0)"), "{err}");
        assert!(choose(&[0], Some(0)).is_err());
    }

    #[test]
    fn the_current_mask_is_not_empty() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
