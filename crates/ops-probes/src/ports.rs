//! Who holds a TCP port on this host: the runbooks' `lsof -i :4000` and `netstat -tulpn`, from
//! `/proc/net/tcp{,6}` (listening sockets of this network namespace) and `/proc/*/fd` (which
//! process has each socket). What a closed `[[tcp]]` port and a container that could not bind
//! its port name as evidence. Only a process's pid, name (`comm`, as lsof shows it) and uid
//! are read: never its arguments, which may hold secrets.

use std::collections::BTreeMap;
use std::path::Path;

/// Directory entries read at most in one walk (processes and their descriptors together).
const MAX_ENTRIES: usize = 200_000;

/// A process listening on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    /// Process id.
    pub pid: u32,
    /// Its name (`comm`: `python3`, `docker-proxy`).
    pub command: String,
    /// Its user id.
    pub uid: u32,
    /// The address it listens on (`127.0.0.2:4000`, `[::]:4000`).
    pub address: String,
}

impl PortHolder {
    /// `pid 4242 (python3, uid 0) listening on 0.0.0.0:4000`, and what docker-proxy means.
    #[must_use]
    pub fn describe(&self) -> String {
        let proxy = if self.command == "docker-proxy" {
            ": a container publishes this port (docker ps --filter publish=PORT)"
        } else {
            ""
        };
        format!("pid {} ({}, uid {}) listening on {}{proxy}", self.pid, self.command, self.uid, self.address)
    }
}

/// The processes listening on TCP `port` in this network namespace, by pid. Empty when
/// nothing listens or `/proc` cannot be read (another OS, a restricted container).
#[must_use]
pub fn holders(port: u16) -> Vec<PortHolder> {
    holders_in(Path::new("/proc"), port)
}

/// [`holders`] on a blocking thread, for async callers (the walk reads many small files).
pub async fn holders_of(port: u16) -> Vec<PortHolder> {
    tokio::task::spawn_blocking(move || holders(port)).await.unwrap_or_default()
}

fn holders_in(proc: &Path, port: u16) -> Vec<PortHolder> {
    let mut sockets: BTreeMap<u64, (String, u32)> = BTreeMap::new();
    for (file, v6) in [("net/tcp", false), ("net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(proc.join(file)) {
            for (inode, address, uid) in listening(&text, port, v6) {
                sockets.insert(inode, (address, uid));
            }
        }
    }
    if sockets.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut budget = MAX_ENTRIES;
    let Ok(entries) = std::fs::read_dir(proc) else { return found };
    for entry in entries.flatten() {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if let Some((address, uid)) = sockets.get(&inode) {
                let command = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_owned();
                let holder = PortHolder { pid, command, uid: *uid, address: address.clone() };
                if !found.contains(&holder) {
                    found.push(holder);
                }
            }
        }
    }
    found.sort_by_key(|h| h.pid);
    found
}

/// `(inode, address, uid)` of the listening sockets on `port` in a `/proc/net/tcp{,6}` text.
fn listening(text: &str, port: u16, v6: bool) -> Vec<(u64, String, u32)> {
    const LISTEN: &str = "0A";
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, uid, inode) = (f.get(1)?, f.get(3)?, f.get(7)?, f.get(9)?);
            let (addr_hex, port_hex) = local.split_once(':')?;
            if *state != LISTEN || u16::from_str_radix(port_hex, 16).ok()? != port {
                return None;
            }
            let address =
                if v6 { format!("[{}]:{port}", ipv6(addr_hex)?) } else { format!("{}:{port}", ipv4(addr_hex)?) };
            Some((inode.parse().ok()?, address, uid.parse().ok()?))
        })
        .collect()
}

/// `0100007F` (little-endian, as the kernel prints it) is 127.0.0.1.
fn ipv4(hex: &str) -> Option<std::net::Ipv4Addr> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    Some(std::net::Ipv4Addr::from(n.swap_bytes()))
}

/// Four little-endian 32-bit words.
fn ipv6(hex: &str) -> Option<std::net::Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for w in 0..4 {
        let word = u32::from_str_radix(&hex[w * 8..w * 8 + 8], 16).ok()?.swap_bytes();
        bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    Some(std::net::Ipv6Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_of_a_port_are_read_from_the_kernel_table() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:0FA0 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 100 0 0 10 0\n\
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening(tcp, 4000, false), [(12345, "127.0.0.1:4000".to_owned(), 0)]);
        assert_eq!(listening(tcp, 8080, false), [(999, "0.0.0.0:8080".to_owned(), 1000)]);
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening(tcp6, 4000, true), [(555, "[::1]:4000".to_owned(), 0)]);
    }

    #[test]
    fn this_process_is_found_holding_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = holders(port);
        assert!(found.iter().any(|h| h.pid == std::process::id()), "{found:?}");
    }
}
