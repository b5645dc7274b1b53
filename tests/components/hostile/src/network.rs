//! `hostile`'s attempts to reach the network around the grants: UDP, a listening TCP socket
//! and name lookups, through Rust's `std::net` and through raw `wasi:sockets`.

use std::time::Duration;

use bootstrap_guest::{Error, bail, info};

use crate::Settings;

/// How long `network` holds whatever it managed to open, so that a test can try to reach it.
const HOLD: Duration = Duration::from_secs(2);

pub(crate) fn network(settings: &Settings) -> Result<(), Error> {
    let address = settings.address.as_deref().unwrap_or_default();
    let listen = settings.listen.as_deref().unwrap_or_default();
    let host = settings.host.as_deref().unwrap_or_default();
    let attempts: [(&str, Result<String, String>); 6] = [
        ("UDP send (std)", udp_send_std(address)),
        ("UDP bind (wasi:sockets)", raw_sockets::udp_bind()),
        ("TCP listen (std)", tcp_listen_std(listen)),
        ("TCP listen (wasi:sockets)", raw_sockets::tcp_listen(listen)),
        ("DNS lookup (std)", dns_std(host)),
        ("DNS lookup (wasi:sockets)", raw_sockets::resolve(host)),
    ];
    let mut through = Vec::new();
    for (what, attempt) in &attempts {
        match attempt {
            Ok(done) => {
                info!("{what}: went through: {done}");
                through.push(*what);
            }
            Err(error) => info!("{what}: failed: {error}"),
        }
    }
    bail!("{} of {} network attempts went through: {through:?}", through.len(), attempts.len())
}

fn udp_send_std(address: &str) -> Result<String, String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let sent = socket.send_to(b"hostile datagram", address).map_err(|e| format!("send: {e}"))?;
    Ok(format!("sent {sent} bytes to {address}"))
}

fn tcp_listen_std(listen: &str) -> Result<String, String> {
    let listener = std::net::TcpListener::bind(listen).map_err(|e| e.to_string())?;
    std::thread::sleep(HOLD);
    drop(listener);
    Ok(format!("listened on {listen}"))
}

fn dns_std(host: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let found: Vec<_> = (host, 80).to_socket_addrs().map_err(|e| e.to_string())?.collect();
    Ok(format!("{host} resolved to {found:?}"))
}

/// The same attempts straight through `wasi:sockets`, below anything `std` might refuse on its
/// own: each refusal here is the host's.
mod raw_sockets {
    use wasi::sockets::instance_network::instance_network;
    use wasi::sockets::ip_name_lookup::resolve_addresses;
    use wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasi::sockets::tcp_create_socket::create_tcp_socket;
    use wasi::sockets::udp_create_socket::create_udp_socket;

    fn failed(step: &str) -> impl Fn(ErrorCode) -> String + '_ {
        move |code| format!("{step}: {code:?}")
    }

    fn ipv4(address: &str) -> Result<IpSocketAddress, String> {
        let parsed: std::net::SocketAddrV4 = address.parse().map_err(|e| format!("{address}: {e}"))?;
        let [a, b, c, d] = parsed.ip().octets();
        Ok(IpSocketAddress::Ipv4(Ipv4SocketAddress { port: parsed.port(), address: (a, b, c, d) }))
    }

    pub fn udp_bind() -> Result<String, String> {
        let network = instance_network();
        let socket = create_udp_socket(IpAddressFamily::Ipv4).map_err(failed("create"))?;
        socket.start_bind(&network, ipv4("127.0.0.1:0")?).map_err(failed("start-bind"))?;
        socket.subscribe().block();
        socket.finish_bind().map_err(failed("finish-bind"))?;
        std::thread::sleep(super::HOLD);
        Ok("bound a UDP socket".into())
    }

    pub fn tcp_listen(listen: &str) -> Result<String, String> {
        let network = instance_network();
        let socket = create_tcp_socket(IpAddressFamily::Ipv4).map_err(failed("create"))?;
        socket.start_bind(&network, ipv4(listen)?).map_err(failed("start-bind"))?;
        socket.subscribe().block();
        socket.finish_bind().map_err(failed("finish-bind"))?;
        socket.start_listen().map_err(failed("start-listen"))?;
        socket.subscribe().block();
        socket.finish_listen().map_err(failed("finish-listen"))?;
        std::thread::sleep(super::HOLD);
        Ok(format!("listened on {listen}"))
    }

    pub fn resolve(host: &str) -> Result<String, String> {
        let network = instance_network();
        let stream = resolve_addresses(&network, host).map_err(failed("resolve-addresses"))?;
        let mut found = Vec::new();
        loop {
            match stream.resolve_next_address() {
                Ok(Some(address)) => found.push(format!("{address:?}")),
                Ok(None) => break,
                Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
                Err(code) => return Err(format!("resolve-next-address: {code:?}")),
            }
        }
        Ok(format!("{host} resolved to {found:?}"))
    }
}
