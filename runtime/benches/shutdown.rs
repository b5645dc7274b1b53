//! Shutdown figures, printed: the time from SIGTERM to exit while a guest spins, on each
//! backend. The runtime must stop the guest, close its broker clients and exit within 2 s.
//!
//! `cargo bench -p bootstrap-wasm --bench shutdown` (needs `.ci/setup`: pulsar-lite, RabbitMQ).
//! The brokers and the peer serving config-svc and flow-svc are the tests' (`tests/support`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::broker::Transport;
use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::RabbitTransport;
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::Protocol;
use support::peer::{Behaviour, ServicePeer};
use support::running::Running;
use support::{Scratch, bin};

const TRIALS: usize = 10;

/// A backend to time: its name, the runtime's arguments for it, and the transport the
/// services' peer answers on (none for the embedded backend).
type Backend = (&'static str, Vec<String>, Option<Arc<dyn Transport>>);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scratch = Scratch::new();
    let init = support::running::probe_then_spinner(&scratch);
    let cache = scratch.path("compiled");

    let pulsar = support::pulsar::PulsarLite::start();
    let vhost = support::rabbitmq::TestVhost::create();
    let backends: [Backend; 3] = [
        ("embedded", vec!["--pubsub-backend".into(), "embedded".into()], None),
        (
            "pulsar (pulsar-lite)",
            vec!["--pubsub-backend".into(), "pulsar".into(), "-p".into(), pulsar.direct_url()],
            Some(Arc::new(PulsarTransport::new(pulsar.direct_options()))),
        ),
        (
            "rabbitmq",
            support::rabbitmq::backend_args(vhost.options()),
            Some(Arc::new(RabbitTransport::new(vhost.options()))),
        ),
    ];

    println!("SIGTERM to exit, with a guest spinning ({TRIALS} trials each)");
    println!("{:<22} {:>10} {:>10}", "backend", "median", "max");
    for (name, args, transport) in backends {
        let mut times = Vec::with_capacity(TRIALS);
        for _ in 0..TRIALS {
            let trial = Scratch::new();
            let store = EmbeddedServices::open(&trial.path("peer.redb")).unwrap().speaking(Protocol::Legacy);
            let _peer = match &transport {
                Some(transport) => {
                    Some(ServicePeer::start(transport.clone(), store.clone(), Behaviour::default()).await)
                }
                None => None,
            };
            let mut command = bin();
            command
                .arg("-c")
                .arg(&init)
                .args(&args)
                .arg("--state")
                .arg(trial.state())
                .arg("--compile-cache")
                .arg(&cache);
            times.push(tokio::task::block_in_place(|| {
                let mut running = Running::spawn(&mut command);
                running.wait_for_nth(support::running::RUNNING, 2);
                let signalled = Instant::now();
                running.signal(libc::SIGTERM);
                let status = running.wait_exit();
                let took = signalled.elapsed();
                assert_eq!(status.code(), Some(0), "{}", running.log);
                took
            }));
        }
        times.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        println!("{name:<22} {:>10} {:>10}", ms(times[TRIALS / 2]), ms(times[TRIALS - 1]));
    }
}
