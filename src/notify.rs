//! sd_notify: tell systemd we are ready, how we are, that we are alive, and that we are
//! stopping. std only: one datagram per message on the unix socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract-namespace name written with a leading `@`).
//!
//! Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op. A failed send is logged once
//! and never stops the daemon: losing the watchdog is systemd's to act on, not ours.
//!
//! ```ini
//! [Service]
//! Type=notify
//! NotifyAccess=main
//! WatchdogSec=30
//! ```

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Startup is complete: every camera thread is up and the detectors are loaded.
pub fn ready() {
    notify("READY=1");
}

/// A reload (SIGHUP) has begun; [`ready`] follows once it is applied or refused, and systemd
/// shows the unit as `reloading` in between.
pub fn reloading() {
    notify("RELOADING=1");
}

/// A one-line status, shown by `systemctl status`.
pub fn status(line: &str) {
    // A newline would start a new `KEY=VALUE` assignment.
    notify(&format!("STATUS={}", line.replace('\n', " ")));
}

/// Keep-alive for `WatchdogSec=`.
pub fn watchdog() {
    notify("WATCHDOG=1");
}

/// Shutdown has begun.
pub fn stopping() {
    notify("STOPPING=1");
}

/// The watchdog interval systemd enforces on this process, from `$WATCHDOG_USEC`, or `None`
/// when there is no watchdog or it is meant for another process (`$WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Pure part of [`watchdog_interval`].
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(my_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

static WARNED: AtomicBool = AtomicBool::new(false);

fn notify(msg: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(&socket, msg)
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::error!(
            socket = %socket.to_string_lossy(),
            error = %e,
            "could not notify systemd (reported once); check NotifyAccess= in the unit"
        );
    }
}

/// Send one notification to the socket at `socket` (a path, or `@name` for the abstract
/// namespace). The socket is an explicit argument so tests need not touch the environment.
pub fn send_to(socket: &OsStr, msg: &str) -> io::Result<()> {
    let addr = socket_addr(socket)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(msg.as_bytes(), &addr)?;
    if sent != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, format!("sent {sent} of {} bytes", msg.len())));
    }
    Ok(())
}

fn socket_addr(socket: &OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'@') => abstract_addr(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(socket),
        _ => {
            Err(io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is neither an absolute path nor @abstract"))
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "abstract unix sockets exist on Linux only"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct TempSocket {
        dir: PathBuf,
        sock: UnixDatagram,
    }

    impl TempSocket {
        fn bind(tag: &str) -> TempSocket {
            let dir = std::env::temp_dir().join(format!("lookout-notify-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let sock = UnixDatagram::bind(dir.join("notify")).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            TempSocket { dir, sock }
        }

        fn path(&self) -> PathBuf {
            self.dir.join("notify")
        }

        fn recv(&self) -> String {
            let mut buf = [0u8; 4096];
            let n = self.sock.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        }
    }

    impl Drop for TempSocket {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn each_message_arrives_as_one_datagram_with_exact_bytes() {
        let s = TempSocket::bind("bytes");
        let p = s.path().into_os_string();
        for msg in ["READY=1", "STATUS=1 camera: 1 streaming; 5.0 frames/s inferred", "WATCHDOG=1", "STOPPING=1"] {
            send_to(&p, msg).unwrap();
            assert_eq!(s.recv(), msg);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_namespace_sockets_are_reached_with_a_leading_at() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("lookout-notify-test-{}", std::process::id());
        let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn a_missing_or_relative_socket_is_an_error_not_a_panic() {
        let s = TempSocket::bind("missing");
        assert!(send_to(s.dir.join("nobody").as_os_str(), "READY=1").is_err());
        assert!(send_to(OsStr::new("relative/notify"), "READY=1").is_err());
        assert!(send_to(OsStr::new(""), "READY=1").is_err());
    }

    #[test]
    fn watchdog_interval_needs_our_pid_or_none() {
        assert_eq!(watchdog_interval_from(Some("30000000"), None, 7), Some(Duration::from_secs(30)));
        assert_eq!(watchdog_interval_from(Some("2000000"), Some("7"), 7), Some(Duration::from_secs(2)));
        assert_eq!(watchdog_interval_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
    }
}
