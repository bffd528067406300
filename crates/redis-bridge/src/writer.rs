//! A connection's writer: drains the client's [`Outbox`] into the WebSocket
//! in batches (many frames fed, one flush: one socket write for a burst of
//! small frames, as nats-server's `flushOutbound` does), each batch bounded
//! by `--write-timeout`, then sends the close frame.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt};

use crate::outbox::{Outbox, SlowReason};

/// How a connection's writer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// Everything queued was written, then the close frame.
    Closed,
    /// The socket failed (the client is gone) or the writer was aborted.
    Broken,
    /// A batch was not written within `--write-timeout`: the client was cut off.
    TimedOut,
}

/// Writes what the outbox holds to `sink`, batch by batch: each batch is fed
/// frame by frame and flushed once (one socket write for many small frames),
/// and must be written within `write_timeout`. Then the close frame.
pub(crate) async fn write_frames<S>(
    mut sink: S,
    outbox: Arc<Outbox>,
    write_timeout: std::time::Duration,
) -> WriterEnd
where
    S: Sink<Message> + Unpin,
{
    let mut batch = Vec::new();
    while let Some(size) = outbox.next_batch(&mut batch).await {
        let write = async {
            for frame in batch.drain(..) {
                sink.feed(Message::Binary(frame)).await?;
            }
            sink.flush().await
        };
        let result = tokio::time::timeout(write_timeout, write).await;
        batch.clear();
        // A burst's batch can hold hundreds of frames: do not keep that much for an idle client.
        batch.shrink_to(IDLE_BATCH_CAPACITY);
        outbox.written(size);
        match result {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return WriterEnd::Broken,
            Err(_) => {
                outbox.cut(SlowReason::WriteTimeout);
                return WriterEnd::TimedOut;
            }
        }
    }
    let close = CloseFrame { code: outbox.close_code(), reason: "".into() };
    match tokio::time::timeout(write_timeout, sink.send(Message::Close(Some(close)))).await {
        Ok(Ok(())) => WriterEnd::Closed,
        Ok(Err(_)) => WriterEnd::Broken,
        Err(_) => {
            outbox.cut(SlowReason::WriteTimeout);
            WriterEnd::TimedOut
        }
    }
}

/// Frames a writer's batch keeps room for between batches.
const IDLE_BATCH_CAPACITY: usize = 16;

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use swarmbus_core::Priority;

    use super::*;
    use crate::metrics::Metrics;
    use crate::outbox::EventLimits;

    /// A sink that records what it is given and how often it is flushed;
    /// `stuck` makes every flush wait forever (a socket that never drains).
    #[derive(Default)]
    struct Recorder {
        frames: usize,
        flushes: usize,
        close: Option<u16>,
        stuck: bool,
    }

    impl Sink<Message> for &mut Recorder {
        type Error = std::io::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
            match message {
                Message::Close(frame) => self.get_mut().close = frame.map(|f| f.code),
                _ => self.get_mut().frames += 1,
            }
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.stuck {
                return Poll::Pending;
            }
            self.get_mut().flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    fn outbox(metrics: &Arc<Metrics>) -> Arc<Outbox> {
        Arc::new(Outbox::new(EventLimits { frames: 4096, bytes: 1 << 20 }, metrics.clone()))
    }

    #[tokio::test]
    async fn a_burst_is_written_with_one_flush() {
        // Regression: every frame was sent and flushed on its own (about one send call per delivery).
        let metrics = Arc::new(Metrics::default());
        let outbox = outbox(&metrics);
        for _ in 0..100 {
            assert!(outbox.push_event(Priority::NORMAL, Bytes::from_static(&[0; 100])).queued);
        }
        outbox.close();
        let mut sink = Recorder::default();
        assert_eq!(write_frames(&mut sink, outbox, Duration::from_secs(10)).await, WriterEnd::Closed);
        assert_eq!(
            (sink.frames, sink.flushes, sink.close),
            (100, 2, Some(1000)),
            "one flush, then the close"
        );
        assert!(metrics.render().contains("swarmbus_send_queue_bytes 0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_that_takes_nothing_for_the_write_timeout_is_cut_off() {
        let metrics = Arc::new(Metrics::default());
        let outbox = outbox(&metrics);
        assert!(outbox.push_event(Priority::NORMAL, Bytes::from_static(&[0; 100])).queued);
        assert!(outbox.push_event(Priority::NORMAL, Bytes::from_static(&[0; 100])).queued);
        let mut sink = Recorder { stuck: true, ..Recorder::default() };
        let started = tokio::time::Instant::now();
        let end = write_frames(&mut sink, outbox.clone(), Duration::from_secs(10)).await;
        assert_eq!((end, started.elapsed()), (WriterEnd::TimedOut, Duration::from_secs(10)));
        assert!(outbox.is_closed());
        let text = metrics.render();
        assert!(
            text.contains(r#"swarmbus_slow_consumer_disconnects_total{reason="write_timeout"} 1"#),
            "{text}"
        );
        assert!(text.contains("swarmbus_send_queue_bytes 0"), "{text}");
    }
}
