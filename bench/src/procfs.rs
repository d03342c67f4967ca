//! A target process's CPU time and memory, from `/proc/<pid>`.

use anyhow::{bail, Context as _, Result};

/// CPU time (user + system) of a process and its threads, in microseconds.
pub fn cpu_us(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("unexpected /proc/{pid}/stat format");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .context("short /proc stat line")?
            .parse::<u64>()
            .context("bad /proc stat field")
    };
    let total = ticks(14)? + ticks(15)?;
    Ok(total * 1_000_000 / clock_ticks_per_second())
}

/// CPU time of several processes together (the nodes of a deployment and
/// its Redis), in microseconds.
pub fn cpu_us_all(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&pid| cpu_us(pid)).sum()
}

/// Resident set size of several processes together, in bytes.
pub fn rss_bytes_all(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&pid| rss_bytes(pid)).sum()
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(value) = line.strip_prefix("VmRSS:") {
            let kib: u64 = value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("bad VmRSS")?;
            return Ok(kib * 1024);
        }
    }
    bail!("no VmRSS in /proc/{pid}/status")
}

/// `USER_HZ`: Linux reports CPU times in these ticks; it is 100 on every
/// mainstream architecture (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> u64 {
    100
}

/// The machine, for the report: CPU model, logical CPUs, kernel.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{model}, {cpus} logical CPUs, {mem_gib} GiB RAM, Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        cpu_us(pid).unwrap();
    }
}
