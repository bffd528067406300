//! A native client of the bridge: connect, subscribe, publish with
//! acknowledgement, receive events; reconnects with exponential backoff and
//! resubscribes on its own.
//!
//! ```no_run
//! # async fn run() -> Result<(), swarmbus_bridge::client::ClientError> {
//! use swarmbus_bridge::client::{Client, ClientOptions};
//! use swarmbus_core::{Envelope, Priority};
//! let (client, mut events) = Client::connect("ws://127.0.0.1:8080/ws", ClientOptions::default()).await?;
//! client.subscribe("swarm.*.task").await?;
//! client.publish(&Envelope::new(1, "swarm.alpha.task", Priority::TASK, 0, b"job".to_vec())).await?;
//! if let Some(event) = events.recv().await {
//!     println!("{} on {}", event.id, event.topic);
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use swarmbus_core::{envelope, Envelope};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};

use crate::protocol::{ClientFrame, ServerFrame, PROTOCOL_VERSION};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Token sent in `hello`.
    pub token: Option<String>,
    /// Reconnect after the connection drops (default true).
    pub reconnect: bool,
    /// First reconnect delay (default 50 ms); doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay (default 2 s).
    pub max_backoff: Duration,
    /// Events buffered for the application before the oldest are dropped and counted (default 65 536).
    pub event_buffer: usize,
    /// How long to wait for an acknowledgement (default 5 s).
    pub ack_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            token: None,
            reconnect: true,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            event_buffer: 65_536,
            ack_timeout: Duration::from_secs(5),
        }
    }
}

/// What can go wrong for a client call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect or greet the bridge.
    Connect(String),
    /// The connection is down (and reconnecting, if enabled).
    Disconnected,
    /// The bridge refused the request.
    Refused {
        /// The bridge's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// No acknowledgement within the timeout.
    Timeout,
    /// The envelope could not be encoded.
    Encode(String),
    /// The client was dropped.
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "cannot connect: {why}"),
            Self::Disconnected => f.write_str("disconnected"),
            Self::Refused { code, message } => write!(f, "{code}: {message}"),
            Self::Timeout => f.write_str("no acknowledgement in time"),
            Self::Encode(why) => write!(f, "cannot encode: {why}"),
            Self::Closed => f.write_str("client closed"),
        }
    }
}

impl std::error::Error for ClientError {}

enum Command {
    Subscribe(String, oneshot::Sender<Result<(), ClientError>>),
    Unsubscribe(String),
    /// With a waiter, the publish asks for an acknowledgement.
    Publish(Vec<u8>, Option<oneshot::Sender<Result<(), ClientError>>>),
}

/// A handle to a bridge connection; cheap to clone.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    ack_timeout: Duration,
}

impl Client {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8080/ws`) and greets the bridge.
    /// Returns the client and the stream of events for its subscriptions.
    pub async fn connect(
        url: &str,
        options: ClientOptions,
    ) -> Result<(Client, mpsc::Receiver<Envelope>), ClientError> {
        let socket = open(url, &options).await?;
        let (commands, command_rx) = mpsc::channel(1024);
        let (events, event_rx) = mpsc::channel(options.event_buffer.max(1));
        let ack_timeout = options.ack_timeout;
        let task = Connection {
            url: url.to_owned(),
            options,
            patterns: BTreeSet::new(),
            pending: HashMap::new(),
            next_ack: 1,
            events,
            dropped_events: 0,
        };
        tokio::spawn(task.run(socket, command_rx));
        Ok((Client { commands, ack_timeout }, event_rx))
    }

    /// Subscribes to a pattern; kept across reconnects. Waits until the bridge accepted it.
    pub async fn subscribe(&self, pattern: &str) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(pattern.to_owned(), tx))
            .await
            .map_err(|_| ClientError::Closed)?;
        self.answer(rx).await
    }

    /// Unsubscribes from a pattern.
    pub async fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.commands.send(Command::Unsubscribe(pattern.to_owned())).await.map_err(|_| ClientError::Closed)
    }

    /// Publishes an envelope and waits for the bridge's acknowledgement.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), ClientError> {
        let bytes = envelope.encode().map_err(|e| ClientError::Encode(e.to_string()))?;
        self.publish_bytes(bytes).await
    }

    /// Publishes an already encoded envelope and waits for the acknowledgement.
    pub async fn publish_bytes(&self, envelope: Vec<u8>) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Publish(envelope, Some(tx))).await.map_err(|_| ClientError::Closed)?;
        self.answer(rx).await
    }

    /// Publishes without asking for an acknowledgement: returns once the
    /// connection task has the envelope. A refusal by the bridge is not
    /// reported, and a publish queued while disconnected is lost.
    pub async fn send(&self, envelope: &Envelope) -> Result<(), ClientError> {
        let bytes = envelope.encode().map_err(|e| ClientError::Encode(e.to_string()))?;
        self.commands.send(Command::Publish(bytes, None)).await.map_err(|_| ClientError::Closed)
    }

    async fn answer(&self, rx: oneshot::Receiver<Result<(), ClientError>>) -> Result<(), ClientError> {
        match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

async fn open(url: &str, options: &ClientOptions) -> Result<Socket, ClientError> {
    let (mut socket, _) =
        connect_async_with_config(url, None, true).await.map_err(|e| ClientError::Connect(e.to_string()))?;
    let hello = ClientFrame::Hello { v: PROTOCOL_VERSION, token: options.token.clone() };
    socket
        .send(Message::Binary(hello.encode().into()))
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(bytes))) => match ServerFrame::decode(&bytes) {
                Ok(ServerFrame::Welcome { .. }) => return Ok(socket),
                Ok(ServerFrame::Error { code, message, .. }) => {
                    return Err(ClientError::Refused { code, message })
                }
                _ => return Err(ClientError::Connect("unexpected first frame".into())),
            },
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ClientError::Connect(e.to_string())),
            None => return Err(ClientError::Connect("closed during hello".into())),
        }
    }
}

/// Acknowledgements this client waits for, by ack id.
type Pending = HashMap<u64, oneshot::Sender<Result<(), ClientError>>>;

struct Connection {
    url: String,
    options: ClientOptions,
    patterns: BTreeSet<String>,
    pending: Pending,
    next_ack: u64,
    events: mpsc::Sender<Envelope>,
    dropped_events: u64,
}

impl Connection {
    async fn run(mut self, mut socket: Socket, mut commands: mpsc::Receiver<Command>) {
        let mut backoff = self.options.min_backoff;
        loop {
            let closed_by_user = self.serve(&mut socket, &mut commands).await;
            for (_, waiter) in self.pending.drain() {
                let _ = waiter.send(Err(ClientError::Disconnected));
            }
            if closed_by_user || !self.options.reconnect {
                return;
            }
            socket = loop {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.options.max_backoff);
                // Answer commands that arrive while offline instead of letting them wait.
                while let Ok(command) = commands.try_recv() {
                    match command {
                        Command::Subscribe(pattern, waiter) => {
                            self.patterns.insert(pattern);
                            let _ = waiter.send(Ok(()));
                        }
                        Command::Unsubscribe(pattern) => {
                            self.patterns.remove(&pattern);
                        }
                        Command::Publish(_, waiter) => {
                            if let Some(waiter) = waiter {
                                let _ = waiter.send(Err(ClientError::Disconnected));
                            }
                        }
                    }
                }
                if commands.is_closed() {
                    return;
                }
                if let Ok(mut socket) = open(&self.url, &self.options).await {
                    let resubscribed = self.resubscribe(&mut socket).await;
                    if resubscribed {
                        break socket;
                    }
                }
            };
            backoff = self.options.min_backoff;
        }
    }

    async fn resubscribe(&mut self, socket: &mut Socket) -> bool {
        for pattern in &self.patterns {
            let frame = ClientFrame::Subscribe { pattern: pattern.clone(), ack: None };
            if socket.send(Message::Binary(frame.encode().into())).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Serves one connection; returns true when the user dropped every handle.
    async fn serve(&mut self, socket: &mut Socket, commands: &mut mpsc::Receiver<Command>) -> bool {
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else {
                        let _ = socket.close(None).await;
                        return true;
                    };
                    if self.send_command(socket, command).await.is_err() {
                        return false;
                    }
                }
                message = socket.next() => {
                    match message {
                        Some(Ok(Message::Binary(bytes))) => self.receive(&bytes),
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    async fn send_command(&mut self, socket: &mut Socket, command: Command) -> Result<(), ()> {
        let (frame, waiter) = match command {
            Command::Subscribe(pattern, waiter) => {
                if let Err(e) = swarmbus_core::topic::validate_pattern(&pattern) {
                    let message = format!("invalid pattern: {e}");
                    let _ =
                        waiter.send(Err(ClientError::Refused { code: "INVALID_PATTERN".into(), message }));
                    return Ok(());
                }
                self.patterns.insert(pattern.clone());
                let ack = self.ack_id();
                (ClientFrame::Subscribe { pattern, ack: Some(ack) }, Some((ack, waiter)))
            }
            Command::Unsubscribe(pattern) => {
                self.patterns.remove(&pattern);
                (ClientFrame::Unsubscribe { pattern }, None)
            }
            Command::Publish(envelope, Some(waiter)) => {
                let ack = self.ack_id();
                (ClientFrame::Publish { envelope, ack: Some(ack) }, Some((ack, waiter)))
            }
            Command::Publish(envelope, None) => (ClientFrame::Publish { envelope, ack: None }, None),
        };
        if let Some((ack, waiter)) = waiter {
            self.pending.insert(ack, waiter);
        }
        socket.send(Message::Binary(frame.encode().into())).await.map_err(drop)
    }

    fn ack_id(&mut self) -> u64 {
        self.next_ack += 1;
        self.next_ack
    }

    fn receive(&mut self, bytes: &[u8]) {
        match ServerFrame::decode(bytes) {
            Ok(ServerFrame::Event { envelope: bytes }) => {
                if let Ok(event) = envelope::decode(&bytes) {
                    if self.events.try_send(event).is_err() {
                        self.dropped_events += 1;
                        tracing::warn!(dropped = self.dropped_events, "event buffer full; dropping an event");
                    }
                }
            }
            Ok(ServerFrame::Ack { ack }) | Ok(ServerFrame::Pong { nonce: ack }) => {
                if let Some(waiter) = self.pending.remove(&ack) {
                    let _ = waiter.send(Ok(()));
                }
            }
            Ok(ServerFrame::Error { code, message, ack }) => {
                let waiter = ack.and_then(|ack| self.pending.remove(&ack));
                match waiter {
                    Some(waiter) => drop(waiter.send(Err(ClientError::Refused { code, message }))),
                    None => tracing::warn!("bridge error {code}: {message}"),
                }
            }
            Ok(ServerFrame::Welcome { .. }) | Err(_) => {}
        }
    }
}
