//! cgroup v2 placement: validating names, finding the hierarchy, checking controllers.
//!
//! All of this happens in the library before anything is spawned, so a bad
//! name or a missing controller is a typed error, never a run without the
//! isolation that was asked for. The shepherd then creates the directory,
//! writes the limits, has the child join before exec, and removes it all.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Error;

/// What went wrong placing a command in a cgroup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// No cgroup v2 hierarchy is mounted.
    #[error("no cgroup v2 hierarchy is mounted (looked in /proc/self/mountinfo)")]
    NotMounted,
    /// This process's own cgroup could not be determined.
    #[error("cannot find this process's cgroup v2 path in /proc/self/cgroup")]
    UnknownCurrent,
    /// A limit was asked for whose controller the parent cgroup does not offer.
    #[error("the {controller} controller is not available in {}", .parent.display())]
    ControllerUnavailable {
        /// `memory`, `pids` or `cpu`.
        controller: &'static str,
        /// The parent cgroup directory.
        parent: PathBuf,
    },
    /// The controller is offered but could not be enabled for child cgroups
    /// (in cgroup v2 a non-root cgroup with processes of its own cannot hand
    /// domain controllers such as memory to children: use `cgroup_parent`
    /// with a cgroup delegated for that).
    #[error("cannot enable the {controller} controller in {}: {source}", .parent.display())]
    EnableController {
        /// `memory`, `pids` or `cpu`.
        controller: &'static str,
        /// The parent cgroup directory.
        parent: PathBuf,
        /// The OS error (`EBUSY` for the no-internal-process rule).
        #[source]
        source: io::Error,
    },
    /// The shepherd could not create, configure or join the cgroup.
    #[error("cannot set up cgroup {}: {source}", .path.display())]
    Setup {
        /// The cgroup directory.
        path: PathBuf,
        /// The OS error (`EEXIST` if it already existed, `EACCES` without permission, ...).
        #[source]
        source: io::Error,
    },
}

impl From<CgroupError> for io::Error {
    fn from(e: CgroupError) -> io::Error {
        let kind = match &e {
            CgroupError::NotMounted | CgroupError::UnknownCurrent => io::ErrorKind::NotFound,
            CgroupError::ControllerUnavailable { .. } => io::ErrorKind::Unsupported,
            CgroupError::EnableController { source, .. } => source.kind(),
            CgroupError::Setup { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// The cgroup settings of a [`crate::Command`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupConfig {
    /// Name of the new cgroup, relative to the parent.
    pub name: Option<String>,
    /// Parent cgroup, as a path from the hierarchy root (`/a/b`).
    pub parent: Option<String>,
    /// `memory.max`, bytes.
    pub memory_max: Option<u64>,
    /// `pids.max`.
    pub pids_max: Option<u64>,
    /// `cpu.max` as (quota, period).
    pub cpu_max: Option<(Duration, Duration)>,
}

impl CgroupConfig {
    /// Whether any cgroup isolation was asked for.
    pub fn requested(&self) -> bool {
        *self != CgroupConfig::default()
    }
}

fn check_components(what: &str, path: &str, allow_absolute: bool) -> Result<(), Error> {
    if path.contains('\0') {
        return Err(Error::invalid(what, "contains a NUL byte"));
    }
    let rest = match path.strip_prefix('/') {
        Some(rest) if allow_absolute => rest,
        Some(_) => {
            return Err(Error::invalid(
                what,
                format!("{path:?} must be relative, not absolute"),
            ))
        }
        None if allow_absolute => {
            return Err(Error::invalid(
                what,
                format!("{path:?} must start with '/'"),
            ))
        }
        None => path,
    };
    if rest.is_empty() {
        return if allow_absolute {
            Ok(())
        } else {
            Err(Error::invalid(what, "is empty"))
        };
    }
    for component in rest.split('/') {
        match component {
            "" => {
                return Err(Error::invalid(
                    what,
                    format!("{path:?} has an empty component"),
                ))
            }
            "." | ".." => {
                return Err(Error::invalid(
                    what,
                    format!("{path:?} contains {component:?}"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|_| CgroupError::NotMounted)?;
    parse_mountinfo(&info).ok_or(CgroupError::NotMounted)
}

fn parse_mountinfo(info: &str) -> Option<PathBuf> {
    info.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split_whitespace().next()? == "cgroup2").then(|| {
            let mount = before.split_whitespace().nth(4)?;
            // Mount points escape spaces and the like as \040 (octal).
            Some(PathBuf::from(unescape_octal(mount)))
        })?
    })
}

fn unescape_octal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(v as char);
            i += 4;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// This process's cgroup v2 path (`0::/path` in `/proc/self/cgroup`).
pub fn current_cgroup() -> Result<String, CgroupError> {
    let text =
        std::fs::read_to_string("/proc/self/cgroup").map_err(|_| CgroupError::UnknownCurrent)?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
        .ok_or(CgroupError::UnknownCurrent)
}

static AUTO_NAME: AtomicU64 = AtomicU64::new(0);

/// Validates `config` and works out the directory to create.
///
/// Checks names (no `..`, no absolute names, no NUL, no empty components),
/// finds the hierarchy and the parent, and checks that every controller a
/// limit needs is offered by the parent. Limits without a name get one:
/// `netrunner-<pid>-<n>`.
pub fn resolve(config: &CgroupConfig) -> Result<netrunner_proto::CgroupSpec, Error> {
    let name = match &config.name {
        Some(name) => {
            check_components("cgroup name", name, false)?;
            name.clone()
        }
        None => format!(
            "netrunner-{}-{}",
            std::process::id(),
            AUTO_NAME.fetch_add(1, Ordering::Relaxed)
        ),
    };
    if let Some(parent) = &config.parent {
        check_components("cgroup parent", parent, true)?;
    }
    let mount = cgroup2_mount()?;
    let parent_path = match &config.parent {
        Some(p) => p.clone(),
        None => current_cgroup()?,
    };
    let parent = mount.join(parent_path.trim_start_matches('/'));
    let controllers =
        std::fs::read_to_string(parent.join("cgroup.controllers")).map_err(|source| {
            CgroupError::Setup {
                path: parent.clone(),
                source,
            }
        })?;
    let offered: Vec<&str> = controllers.split_whitespace().collect();
    for (wanted, controller) in [
        (config.memory_max.is_some(), "memory"),
        (config.pids_max.is_some(), "pids"),
        (config.cpu_max.is_some(), "cpu"),
    ] {
        if !wanted {
            continue;
        }
        if !offered.contains(&controller) {
            return Err(CgroupError::ControllerUnavailable { controller, parent }.into());
        }
        // Enable it for children of `parent` (left enabled afterwards: it
        // only lets child cgroups use the controller, as a delegation would).
        let subtree = parent.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == controller) {
            std::fs::write(&subtree, format!("+{controller}")).map_err(|source| {
                CgroupError::EnableController {
                    controller,
                    parent: parent.clone(),
                    source,
                }
            })?;
        }
    }
    let path = parent.join(&name);
    Ok(netrunner_proto::CgroupSpec {
        path: std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec(),
        memory_max: config.memory_max,
        pids_max: config.pids_max,
        cpu_max: config
            .cpu_max
            .map(|(quota, period)| (quota.as_micros() as u64, period.as_micros() as u64)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(r: Result<(), Error>) -> bool {
        matches!(r, Err(Error::InvalidInput { .. }))
    }

    #[test]
    fn names_are_checked() {
        assert!(check_components("cgroup name", "job-1", false).is_ok());
        assert!(check_components("cgroup name", "a/b", false).is_ok());
        for bad in ["", "/abs", "..", "a/../b", "a//b", "a/", "nul\0", "."] {
            assert!(
                invalid(check_components("cgroup name", bad, false)),
                "{bad:?}"
            );
        }
        assert!(check_components("cgroup parent", "/", true).is_ok());
        assert!(check_components("cgroup parent", "/a/b", true).is_ok());
        for bad in ["a/b", "/a/../b", "/a//b"] {
            assert!(
                invalid(check_components("cgroup parent", bad, true)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn finds_the_v2_mount_among_v1_mounts() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(info),
            Some(PathBuf::from("/sys/fs/cgroup/uni fied"))
        );
        assert_eq!(parse_mountinfo("1 2 0:1 / / rw - ext4 /dev/x rw\n"), None);
    }
}
