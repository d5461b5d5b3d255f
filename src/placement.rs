//! Which CPUs the shards run on.
//!
//! glommio's own detection lists every online CPU and ignores the process's
//! affinity mask, so under `taskset` or a cgroup cpuset it would pin shards to
//! CPUs the process may not use. Here the mask is the truth. This module only
//! decides; pinning happens when each shard's executor is built.

use std::io;

/// Why the shards' CPUs cannot be chosen. It says what was asked in the
/// library's terms (a number of cores); a command line maps it to its flag.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// The process's affinity mask could not be read.
    #[error("cannot read this process's CPU affinity")]
    Affinity(#[source] io::Error),
    /// The affinity mask allows no CPU.
    #[error("the process may run on no CPU at all")]
    NoCpu,
    /// Zero cores were asked for.
    #[error("at least one core is needed, and none was asked for")]
    NoCores,
    /// More cores were asked for than the process may run on.
    #[error(
        "asked for {asked} cores but this process may run on only {} (CPUs {})",
        allowed.len(),
        list(allowed)
    )]
    TooMany {
        /// How many cores were asked for.
        asked: usize,
        /// The CPUs the process may run on.
        allowed: Vec<usize>,
    },
}

/// The CPUs this process may run on (its `sched_getaffinity` mask), ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

/// Pick `cores` CPUs from `allowed` (all of them when `None`), one shard each.
pub fn choose(allowed: &[usize], cores: Option<usize>) -> Result<Vec<usize>, PlacementError> {
    match cores {
        None if allowed.is_empty() => Err(PlacementError::NoCpu),
        None => Ok(allowed.to_vec()),
        Some(0) => Err(PlacementError::NoCores),
        Some(n) if n > allowed.len() => Err(PlacementError::TooMany {
            asked: n,
            allowed: allowed.to_vec(),
        }),
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
        assert!(
            matches!(&err, PlacementError::TooMany { asked: 2, allowed } if allowed == &[0]),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "asked for 2 cores but this process may run on only 1 (CPUs 0)"
        );
        assert!(matches!(
            choose(&[0], Some(0)),
            Err(PlacementError::NoCores)
        ));
        assert!(matches!(choose(&[], None), Err(PlacementError::NoCpu)));
    }

    #[test]
    fn the_library_names_no_flag() {
        let errors = [
            choose(&[0], Some(0)).unwrap_err(),
            choose(&[0], Some(9)).unwrap_err(),
            choose(&[], None).unwrap_err(),
        ];
        for e in errors {
            assert!(!e.to_string().contains("--"), "{e}");
        }
    }

    #[test]
    fn the_current_mask_is_not_empty() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
