//! `kubectl port-forward` after the upgrade. The request (`portforward`
//! on a pod) was decided like any other before the upgrade went on; what
//! follows is SPDY/3.1 (`portforward.k8s.io`) over either transport a
//! client may ask for:
//!
//! - SPDY/3.1 directly (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, and
//!   kubectl before 1.31): `spdy_relay.rs` reads and forwards it;
//! - tunnelled in WebSocket (kubectl 1.31 and later, subprotocol
//!   `SPDY/3.1+portforward.k8s.io`): binary messages carry the SPDY byte
//!   stream cut anywhere. Each message is forwarded as it came, and a copy
//!   of its bytes is read as SPDY frames for the record.
//!
//! The record (`record.rs`) names each connection to a pod port and counts
//! its bytes; the payload is not recorded, nor masked (it is any TCP
//! protocol). Messages the pod side sends on a connection's error stream
//! are recorded, masked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::ProtocolError};

use super::exec::{STREAM_PROTOCOL, Transport, keep_offered, offered, upgrade_of};
use super::record::{Recorder, StreamPart, part_sink};
use super::spdy::{FrameReader, SpdyError};
use super::spdy_relay::{self, PumpEnd, SpdyObserver, unreadable};
use crate::http::adapter::{AdapterError, UpgradeRelay};
use crate::mask::CompiledMasks;

/// The SPDY stream protocol of port-forward.
pub const PORTFORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// The same, tunnelled in WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The relay of one `port-forward`, handed to the proxy's upgrade phase.
pub struct PortForwardRelay {
    /// `portforward default/web`.
    pub label: String,
    pub record_limit: u64,
    pub transport: Option<Transport>,
}

impl UpgradeRelay for PortForwardRelay {
    fn prepare(&self, headers: &mut HeaderMap) -> Result<(), AdapterError> {
        let (name, protocol) = match self.transport {
            Some(Transport::Spdy) => (STREAM_PROTOCOL, PORTFORWARD_PROTOCOL),
            Some(Transport::WebSocket) => ("sec-websocket-protocol", TUNNEL_PROTOCOL),
            None => {
                return Err(AdapterError::BadRequest(format!(
                    "Gatehouse relays port-forward over SPDY/3.1 or WebSocket, and this client asked to upgrade to {:?}",
                    upgrade_of(headers)
                )));
            }
        };
        if offered(headers, name, &[protocol]).is_empty() {
            return Err(AdapterError::BadRequest(format!(
                "Gatehouse relays port-forward as SPDY ({PORTFORWARD_PROTOCOL}, directly or tunnelled in WebSocket as {TUNNEL_PROTOCOL}, as kubectl does), and this client offered neither; Gatehouse could not record its streams"
            )));
        }
        keep_offered(headers, name, &[protocol]);
        Ok(())
    }

    fn relay(
        self: Box<Self>,
        client: TokioIo<Upgraded>,
        upstream: TokioIo<Upgraded>,
        masks: Arc<CompiledMasks>,
        record: Box<dyn FnMut(String, serde_json::Value) + Send>,
    ) -> BoxFuture<'static, ()> {
        let sink = part_sink(self.label, record);
        match self.transport {
            Some(Transport::Spdy) => {
                let recorder = Recorder::new(self.record_limit, sink).transport("spdy");
                Box::pin(spdy_relay::relay(
                    client,
                    upstream,
                    SpdyObserver::port_forward(Some(masks), recorder),
                ))
            }
            _ => {
                let recorder =
                    Recorder::new(self.record_limit, sink).transport("spdy-in-websocket");
                Box::pin(tunnel(
                    client,
                    upstream,
                    SpdyObserver::port_forward(Some(masks), recorder),
                ))
            }
        }
    }
}

/// Relays SPDY tunnelled in WebSocket binary messages, each direction in
/// its own pump, until either side closes.
pub async fn tunnel<C, U, F>(client: C, upstream: U, observer: SpdyObserver<F>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(StreamPart),
{
    let client = WebSocketStream::from_raw_socket(client, Role::Server, None).await;
    let upstream = WebSocketStream::from_raw_socket(upstream, Role::Client, None).await;
    let (to_client, from_client) = client.split();
    let (to_upstream, from_upstream) = upstream.split();
    let to_client = tokio::sync::Mutex::new(to_client);
    let to_upstream = tokio::sync::Mutex::new(to_upstream);
    let observer = Mutex::new(observer);
    let (closed_by, error) = {
        let inbound = pump("client", "in", from_client, &to_upstream, &observer);
        let outbound = pump("upstream", "out", from_upstream, &to_client, &observer);
        let (side, end) = tokio::select! {
            end = inbound => ("client", end),
            end = outbound => ("upstream", end),
        };
        let outcome = match end {
            PumpEnd::Closed => (side, None),
            PumpEnd::Failed(e) => ("error", Some(e)),
            PumpEnd::Malformed(e) => {
                tracing::info!(side, error = %e, "malformed SPDY in the tunnel; ending the stream");
                let close = || {
                    Message::Close(Some(CloseFrame {
                        code: CloseCode::Protocol,
                        reason: "malformed SPDY".into(),
                    }))
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = to_client.lock().await.send(close()).await;
                    let _ = to_upstream.lock().await.send(close()).await;
                })
                .await;
                ("error", Some(unreadable(side, &e)))
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = to_client.lock().await.close().await;
            let _ = to_upstream.lock().await.close().await;
        })
        .await;
        outcome
    };
    observer
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .finish_record(closed_by, error);
}

/// Reads one side's messages, reads a copy of their bytes as SPDY, and
/// sends each message on whole.
async fn pump<R, W, F>(
    name: &'static str,
    dir: &'static str,
    mut from: R,
    to: &tokio::sync::Mutex<W>,
    observer: &Mutex<SpdyObserver<F>>,
) -> PumpEnd
where
    R: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    W: futures_util::Sink<Message, Error = WsError> + Unpin,
    F: FnMut(StreamPart),
{
    let mut reader = FrameReader::new();
    loop {
        let msg = match from.next().await {
            Some(Ok(Message::Binary(data))) => {
                reader.push(&data);
                let read = {
                    let mut observer = observer.lock().unwrap_or_else(|p| p.into_inner());
                    read_frames(&mut reader, dir, &mut observer)
                };
                if let Err(e) = read {
                    return PumpEnd::Malformed(e);
                }
                Message::Binary(data)
            }
            // Tunnelled SPDY is binary; the peer refuses anything else itself.
            Some(Ok(text @ Message::Text(_))) => text,
            Some(Ok(close @ Message::Close(_))) => {
                let _ = to.lock().await.send(close).await;
                return PumpEnd::Closed;
            }
            // Pings and pongs: each side's WebSocket answers its own.
            Some(Ok(_)) => continue,
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) | None => {
                return PumpEnd::Closed;
            }
            Some(Err(e)) => return PumpEnd::Failed(format!("the {name}'s stream failed: {e}")),
        };
        if let Err(e) = to.lock().await.send(msg).await {
            return PumpEnd::Failed(format!("a stream failed while relaying: {e}"));
        }
    }
}

fn read_frames<F: FnMut(StreamPart)>(
    reader: &mut FrameReader,
    dir: &'static str,
    observer: &mut SpdyObserver<F>,
) -> Result<(), SpdyError> {
    while let Some(frame) = reader.next_frame()? {
        // Port-forward frames are never rewritten: the message goes on whole.
        observer.frame(dir, &frame)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::record::ForwardRecord;
    use super::super::spdy::tests::{Deflater, syn_stream};
    use super::super::spdy::{self};
    use super::*;
    use std::sync::Mutex;

    /// A tunnel whose SPDY is cut across messages anywhere: forwarded whole,
    /// and the record still finds the port and counts the bytes.
    #[tokio::test]
    async fn tunnelled_spdy_is_forwarded_as_is_and_recorded() {
        let (kubectl_io, gw_client) = tokio::io::duplex(1 << 16);
        let (gw_upstream, api_io) = tokio::io::duplex(1 << 16);
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let parts = parts.clone();
            move |p: StreamPart| parts.lock().unwrap().push(p)
        };
        let rec = Recorder::new(1 << 20, sink).transport("spdy-in-websocket");
        let relay = tokio::spawn(tunnel(
            gw_client,
            gw_upstream,
            SpdyObserver::port_forward(None, rec),
        ));
        let mut kubectl = WebSocketStream::from_raw_socket(kubectl_io, Role::Client, None).await;
        let mut api = WebSocketStream::from_raw_socket(api_io, Role::Server, None).await;
        let mut z = Deflater::new();
        let mut wire = syn_stream(
            &mut z,
            1,
            &[
                ("streamtype", "error"),
                ("port", "5432"),
                ("requestid", "7"),
            ],
        );
        wire.extend(syn_stream(
            &mut z,
            3,
            &[("streamtype", "data"), ("port", "5432"), ("requestid", "7")],
        ));
        wire.extend(spdy::data_frames(3, false, b"hello pod"));
        let (a, b) = wire.split_at(13);
        for chunk in [a, b] {
            kubectl
                .send(Message::Binary(chunk.to_vec().into()))
                .await
                .unwrap();
            let got = api.next().await.unwrap().unwrap();
            assert_eq!(got.into_data().as_ref(), chunk);
        }
        api.send(Message::Binary(spdy::data_frames(3, true, b"hi").into()))
            .await
            .unwrap();
        assert!(kubectl.next().await.unwrap().unwrap().is_binary());
        kubectl.close(None).await.unwrap();
        relay.await.unwrap();
        let parts = parts.lock().unwrap();
        let end = parts.last().unwrap().end.as_ref().unwrap();
        assert_eq!(end.closed_by, "client");
        assert_eq!(
            end.ports,
            [ForwardRecord {
                port: "5432".into(),
                connections: 1,
                bytes_in: 9,
                bytes_out: 2,
                errors: vec![],
            }]
        );
    }

    /// Garbage in the tunnel closes both sides with a protocol error.
    #[tokio::test]
    async fn garbage_in_the_tunnel_ends_it() {
        let (kubectl_io, gw_client) = tokio::io::duplex(1 << 16);
        let (gw_upstream, api_io) = tokio::io::duplex(1 << 16);
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let parts = parts.clone();
            move |p: StreamPart| parts.lock().unwrap().push(p)
        };
        let relay = tokio::spawn(tunnel(
            gw_client,
            gw_upstream,
            SpdyObserver::port_forward(None, Recorder::new(1024, sink)),
        ));
        let mut kubectl = WebSocketStream::from_raw_socket(kubectl_io, Role::Client, None).await;
        let mut api = WebSocketStream::from_raw_socket(api_io, Role::Server, None).await;
        api.send(Message::Binary(
            b"\x80\x02\x00\x01\x00\x00\x00\x00".to_vec().into(),
        ))
        .await
        .unwrap();
        match kubectl.next().await {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::Protocol),
            other => panic!("{other:?}"),
        }
        relay.await.unwrap();
        let parts = parts.lock().unwrap();
        let end = parts.last().unwrap().end.as_ref().unwrap();
        assert!(
            end.error.as_deref().unwrap().contains("SPDY version 2"),
            "{:?}",
            end.error
        );
    }
}
