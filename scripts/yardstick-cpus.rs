//! What the Rust yardsticks (tokio-echo, monoio-echo) share: their command
//! line (`PORT [CORES | CPU-LIST]`) and pinning a thread to one CPU. Each
//! includes this file (`#[path] mod cpus;`), so both stay stand-alone crates.

/// Pin the calling thread to `cpu`; exit if the kernel refuses.
pub fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "{}: pinning to CPU {cpu}: {}",
                env!("CARGO_PKG_NAME"),
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed() -> Vec<usize> {
    // SAFETY: as in pin; sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// `PORT [CORES | CPU-LIST]` (args[0] is the program): the port and the CPUs.
pub fn parse(args: &[String]) -> Result<(u16, Vec<usize>), String> {
    let port = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .ok_or("the first argument must be a port")?;
    if args.len() > 3 {
        return Err("too many arguments".into());
    }
    let spec = args.get(2).map_or("1", String::as_str);
    let cpus = if spec.contains([',', '-']) {
        let mut cpus = Vec::new();
        for part in spec.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = a
                .parse()
                .ok()
                .zip(b.parse().ok())
                .ok_or(format!("not a CPU list: {spec}"))?;
            cpus.extend(a..=b);
        }
        cpus
    } else {
        let n: usize = spec
            .parse()
            .map_err(|_| format!("not a number of cores: {spec}"))?;
        let allowed = allowed();
        if n == 0 || n > allowed.len() {
            return Err(format!(
                "{n} cores asked, {} CPUs allowed here",
                allowed.len()
            ));
        }
        allowed[..n].to_vec()
    };
    if cpus.is_empty() {
        return Err("no CPUs".into());
    }
    Ok((port, cpus))
}
