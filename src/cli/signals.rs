//! Ctrl-C and SIGTERM: the first asks the run to stop gracefully, the second at once.

use rejudge::run::Stop;
use std::sync::Arc;

/// Waits for signals for as long as the run lasts.
pub async fn watch(stop: Arc<Stop>) {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        let signal = async {
            match &mut terminate {
                Some(terminate) => terminate.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = tokio::signal::ctrl_c() => if result.is_err() { return },
            _ = signal => {}
        }
        let first = !stop.requested();
        stop.request();
        if first {
            eprintln!(
                "\nrejudge: stopping: no new requests; those in flight get 10 s to finish (Ctrl-C again to stop now)"
            );
        } else {
            eprintln!("\nrejudge: stopping now");
            return;
        }
    }
}
