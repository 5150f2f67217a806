//! Why a [`LockFreeBufferPool`](super::LockFreeBufferPool) could not be built.

use super::config::ConfigError;
use crate::os::OsError;
use core::fmt;

/// The error of [`LockFreeBufferPool::with_config`](super::LockFreeBufferPool::with_config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The configuration was refused (see [`ConfigError`]).
    Config(ConfigError),
    /// The OS would not reserve or commit a class's memory.
    Os(OsError),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Config(error) => write!(f, "invalid buffer pool configuration: {error}"),
            PoolError::Os(error) => write!(f, "cannot map the buffer pool's memory: {error}"),
        }
    }
}

impl core::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            PoolError::Config(error) => Some(error),
            PoolError::Os(error) => Some(error),
        }
    }
}
