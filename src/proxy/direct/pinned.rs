//! The upstream connection of one client connection, and the lease a request
//! holds on it.
//!
//! An HTTP/1.1 connection carries one exchange at a time (RFC 9112 §9.3: a
//! client "MUST NOT send a request on a connection until it has received the
//! response to the previous one" unless pipelining). A client connection's
//! requests come one after another too, so each client connection keeps one
//! upstream connection of its own: no pool, no shared lock, no second task.

use std::sync::{Arc, Mutex};

use super::Connection;

/// The slot of one client connection's upstream connection.
#[derive(Default)]
pub struct PinnedUpstream {
    slot: Mutex<Slot>,
}

#[derive(Default)]
enum Slot {
    /// Not connected yet, or the last exchange ended the connection.
    #[default]
    Empty,
    Idle(Connection),
    /// A request holds the lease.
    Leased,
}

impl PinnedUpstream {
    /// Leases the slot for one exchange, with the idle connection if there
    /// is one; `None` while another request of the same client connection
    /// (concurrent HTTP/2 streams) holds it.
    pub fn checkout(self: &Arc<Self>) -> Option<(Lease, Option<Connection>)> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let idle = match std::mem::replace(&mut *slot, Slot::Leased) {
            Slot::Leased => return None,
            Slot::Empty => None,
            Slot::Idle(connection) => Some(connection),
        };
        Some((
            Lease {
                home: Some(self.clone()),
            },
            idle,
        ))
    }

    fn put(&self, connection: Option<Connection>) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = match connection {
            Some(connection) => Slot::Idle(connection),
            None => Slot::Empty,
        };
    }
}

/// One request's hold on the slot. Giving the connection back makes it
/// idle for the next request; dropping the lease without that (an error, a
/// timeout, a body abandoned half way) empties the slot, and the connection,
/// whose state is then unknown, is closed by its owner's drop.
pub struct Lease {
    home: Option<Arc<PinnedUpstream>>,
}

impl Lease {
    pub fn give_back(&mut self, connection: Option<Connection>) {
        if let Some(home) = self.home.take() {
            home.put(connection);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_back(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_is_leased_once_at_a_time() {
        let pinned = Arc::new(PinnedUpstream::default());
        let (lease, idle) = pinned.checkout().expect("free");
        assert!(idle.is_none());
        assert!(pinned.checkout().is_none(), "second concurrent request");
        drop(lease);
        assert!(pinned.checkout().is_some(), "free again after the first");
    }
}
