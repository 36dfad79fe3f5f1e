//! The record of an upgraded stream (`exec`, `attach`, `port-forward`),
//! whatever carried it (WebSocket, SPDY, SPDY tunnelled in WebSocket):
//! frames with their channel, direction and time since the stream opened,
//! handed on in parts (`stream.frames` events), data kept up to
//! `stream_record_bytes`, and how the stream ended. `gatehouse audit
//! replay` shows every transport the same way.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Frames are recorded in parts of at most this many, or this often.
const PART_FRAMES: usize = 256;
const PART_EVERY: Duration = Duration::from_secs(1);

/// The channel byte of the `*.channel.k8s.io` protocols (SPDY streams are
/// mapped to the same numbers by their `streamType`).
pub fn channel_name(byte: u8) -> &'static str {
    match byte {
        0 => "stdin",
        1 => "stdout",
        2 => "stderr",
        3 => "error",
        4 => "resize",
        255 => "close",
        _ => "unknown",
    }
}

/// One message as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct FrameRecord {
    /// Milliseconds since the stream opened.
    pub t_ms: u64,
    /// `in` (caller to pod) or `out` (pod to caller).
    pub dir: &'static str,
    pub channel: &'static str,
    pub bytes: usize,
    /// The data as text (lossy UTF-8), masked; absent once the recording
    /// limit is reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// One forwarded port's connections, for a port-forward's record.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ForwardRecord {
    pub port: String,
    /// Connections made to the port (client-go's `requestID`s).
    pub connections: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages the pod's side sent on the error streams, masked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// How the stream ended, recorded with the last part.
#[derive(Debug, Clone, Serialize)]
pub struct StreamEnd {
    /// `client`, `upstream` or `error`.
    pub closed_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub recorded_bytes: u64,
    /// True when data was left out of the record because of the limit.
    pub truncated: bool,
    /// The pod's `Status` from the error channel (exit code and message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    /// `websocket`, `spdy` or `spdy-in-websocket`.
    pub transport: &'static str,
    /// A port-forward's ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ForwardRecord>,
}

/// One recorded part of a stream: its frames, and the end with the last.
#[derive(Debug, Clone, Serialize)]
pub struct StreamPart {
    pub part: u32,
    pub frames: Vec<FrameRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

/// Collects frames and hands them on in parts.
pub struct Recorder<F: FnMut(StreamPart)> {
    started: Instant,
    limit: u64,
    recorded: u64,
    truncated: bool,
    frames: Vec<FrameRecord>,
    part: u32,
    last_flush: Instant,
    counts: [(u64, u64); 2],
    status: Option<serde_json::Value>,
    transport: &'static str,
    ports: Vec<ForwardRecord>,
    sink: F,
}

impl<F: FnMut(StreamPart)> Recorder<F> {
    pub fn new(limit: u64, sink: F) -> Self {
        Self {
            started: Instant::now(),
            limit,
            recorded: 0,
            truncated: false,
            frames: Vec::new(),
            part: 0,
            last_flush: Instant::now(),
            counts: [(0, 0); 2],
            status: None,
            transport: "websocket",
            ports: Vec::new(),
            sink,
        }
    }

    /// Names the transport in the record's end.
    pub fn transport(mut self, transport: &'static str) -> Self {
        self.transport = transport;
        self
    }

    /// Records one message's channel data (already masked).
    pub fn frame(&mut self, dir: &'static str, channel: u8, data: &[u8]) {
        if channel == 3 && dir == "out" {
            self.status = serde_json::from_slice(data).ok();
        }
        self.named(dir, channel_name(channel), data);
    }

    /// Records data under a channel name of its own (already masked).
    pub fn named(&mut self, dir: &'static str, channel: &'static str, data: &[u8]) {
        self.count(dir, data.len());
        self.note(dir, channel, data);
    }

    /// Records Gatehouse's own note on the stream (a port-forward
    /// connection opened): shown like a frame, not counted as traffic.
    pub fn note(&mut self, dir: &'static str, channel: &'static str, data: &[u8]) {
        let len = data.len();
        let data = if self.recorded + len as u64 <= self.limit {
            self.recorded += data.len() as u64;
            Some(String::from_utf8_lossy(data).into_owned())
        } else {
            self.truncated = true;
            None
        };
        self.frames.push(FrameRecord {
            t_ms: self.started.elapsed().as_millis() as u64,
            dir,
            channel,
            bytes: len,
            data,
        });
        if self.frames.len() >= PART_FRAMES || self.last_flush.elapsed() >= PART_EVERY {
            self.flush(None);
        }
    }

    /// Counts a message whose data is not recorded (port-forward payload).
    pub fn count(&mut self, dir: &'static str, bytes: usize) {
        let side = usize::from(dir == "out");
        self.counts[side].0 += 1;
        self.counts[side].1 += bytes as u64;
    }

    /// A port-forward's ports, for the end of the record.
    pub fn set_ports(&mut self, ports: Vec<ForwardRecord>) {
        self.ports = ports;
    }

    fn flush(&mut self, end: Option<StreamEnd>) {
        if self.frames.is_empty() && end.is_none() {
            return;
        }
        self.part += 1;
        self.last_flush = Instant::now();
        (self.sink)(StreamPart {
            part: self.part,
            frames: std::mem::take(&mut self.frames),
            end,
        });
    }

    pub fn finish(mut self, closed_by: &'static str, error: Option<String>) {
        let end = StreamEnd {
            closed_by,
            error,
            duration_ms: self.started.elapsed().as_millis() as u64,
            frames_in: self.counts[0].0,
            frames_out: self.counts[1].0,
            bytes_in: self.counts[0].1,
            bytes_out: self.counts[1].1,
            recorded_bytes: self.recorded,
            truncated: self.truncated,
            status: self.status.take(),
            transport: self.transport,
            ports: std::mem::take(&mut self.ports),
        };
        self.flush(Some(end));
    }
}

/// The sink that turns each part into a `stream.frames` event: `label`
/// (`exec default/web: ls -l`) with the part's number as its summary.
pub fn part_sink(
    label: String,
    mut record: Box<dyn FnMut(String, serde_json::Value) + Send>,
) -> impl FnMut(StreamPart) + Send {
    move |part: StreamPart| {
        let summary = match &part.end {
            Some(_) => format!("{label} (part {}, end)", part.part),
            None => format!("{label} (part {})", part.part),
        };
        record(summary, serde_json::to_value(&part).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn the_recording_limit_keeps_timing_and_drops_data() {
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let parts = parts.clone();
            move |p: StreamPart| parts.lock().unwrap().push(p)
        };
        let mut r = Recorder::new(8, sink);
        r.frame("in", 0, b"ls\n");
        r.frame("out", 1, b"a b c d e f\n");
        r.frame("out", 3, br#"{"metadata":{},"status":"Success"}"#);
        r.count("out", 100);
        r.finish("upstream", None);
        let parts = parts.lock().unwrap();
        assert_eq!(parts.len(), 1);
        let p = &parts[0];
        assert_eq!(p.frames[0].channel, "stdin");
        assert_eq!(p.frames[0].data.as_deref(), Some("ls\n"));
        assert_eq!(p.frames[1].channel, "stdout");
        assert_eq!(p.frames[1].data, None);
        let end = p.end.as_ref().unwrap();
        assert!(end.truncated);
        assert_eq!(end.recorded_bytes, 3);
        assert_eq!((end.frames_in, end.frames_out), (1, 3));
        assert_eq!(end.bytes_out, 12 + 34 + 100);
        assert_eq!(end.status.as_ref().unwrap()["status"], "Success");
        assert_eq!(end.transport, "websocket");
    }
}
