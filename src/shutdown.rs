//! Graceful shutdown: one signal, observed by every task.
//!
//! `Shutdown::trigger` flips a watch channel; listeners stop accepting, the
//! readiness probe turns false at once, and in-flight requests get the drain
//! timeout to finish.

use tokio::sync::watch;

/// Sends the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

/// Receives the shutdown signal.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> (Self, ShutdownSignal) {
        let (sender, receiver) = watch::channel(false);
        (Self { sender }, ShutdownSignal { receiver })
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            receiver: self.sender.subscribe(),
        }
    }
}

impl ShutdownSignal {
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once shutdown has been triggered (at once if it already was).
    pub async fn recv(&mut self) {
        // An error means the sender is gone, which also means shutdown.
        let _ = self.receiver.wait_for(|triggered| *triggered).await;
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
