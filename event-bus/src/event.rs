//! The event envelope, typed payloads, and the one-time JSON encoding.

use std::any::Any;
use std::fmt;
use std::io::Write as _;
use std::str::FromStr;
use std::sync::OnceLock;

use bytes::Bytes;
use chrono::{DateTime, Datelike, SubsecRound, Timelike, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::kind::EventKind;
use crate::room::Room;
use crate::severity::Severity;

/// Identifies one life of a bus's history. A new bus gets a random epoch; a client that resumes
/// with another epoch learns that the sequence numbers it holds mean nothing here any more.
///
/// On the wire it is 16 lowercase hexadecimal digits (a string, so JavaScript keeps every bit).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(u64);

impl Epoch {
    /// A fresh random epoch.
    pub fn random() -> Epoch {
        Epoch(Uuid::new_v4().as_u64_pair().0)
    }

    /// The epoch with this value; for tests and for brokers that store epochs elsewhere.
    pub const fn from_u64(value: u64) -> Epoch {
        Epoch(value)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({self})")
    }
}

impl FromStr for Epoch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Epoch> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidEpoch(s.chars().take(40).collect()));
        }
        u64::from_str_radix(s, 16)
            .map(Epoch)
            .map_err(|_| Error::InvalidEpoch(s.to_owned()))
    }
}

impl Serialize for Epoch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Epoch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A Rust type that can be published as an event's `data`.
///
/// The kind, room and default severity are associated items, so producers publish plain structs
/// and consumers decode them back with [`Event::decode`].
///
/// ```
/// use event_bus::{Payload, Severity};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct PortKnock { host: String, ports: Vec<u16> }
///
/// impl Payload for PortKnock {
///     const KIND: &'static str = "port_knock";
///     const ROOM: &'static str = "alerts";
///     const SEVERITY: Severity = Severity::Warning;
/// }
/// ```
pub trait Payload: Serialize {
    /// The kind's wire name: a known kind's name or a custom name following the naming rule.
    const KIND: &'static str;
    /// The room the event goes to.
    const ROOM: &'static str;
    /// The severity when [`Payload::severity`] is not overridden.
    const SEVERITY: Severity = Severity::Info;

    /// The severity of this value; override it when it depends on the data (a failed run is an
    /// error, a successful one a success).
    fn severity(&self) -> Severity {
        Self::SEVERITY
    }
}

/// An event before it is published: what the producer decides. The bus adds `seq`, `epoch`, `id`
/// and `time`.
///
/// This is also the body of an untyped publish (HTTP or a remote client): deserialising it
/// validates the kind and room names.
///
/// ```
/// use event_bus::{EventDraft, Severity};
///
/// let draft: EventDraft = serde_json::from_str(
///     r#"{"kind":"chat_message","room":"chat","data":{"text":"hello"}}"#,
/// ).unwrap();
/// assert_eq!(draft.severity, Severity::Info);
/// assert!(serde_json::from_str::<EventDraft>(r#"{"kind":"Bad Kind","room":"chat"}"#).is_err());
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDraft {
    /// What the event is about.
    pub kind: EventKind,
    /// Where it goes.
    pub room: Room,
    /// How much it matters.
    #[serde(default)]
    pub severity: Severity,
    /// Who or what produced it (an agent id, a user name), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The payload, kept as the JSON text it arrived as.
    #[serde(default = "null_data")]
    pub data: Box<RawValue>,
}

fn null_data() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is valid JSON")
}

impl EventDraft {
    /// An untyped event: names are validated, `data` is any JSON value.
    pub fn new(kind: &str, room: &str, data: &serde_json::Value) -> Result<EventDraft> {
        let kind = EventKind::parse(kind)?;
        let data = serde_json::value::to_raw_value(data).map_err(|source| Error::Payload {
            kind: kind.to_string(),
            source,
        })?;
        Ok(EventDraft {
            kind,
            room: Room::new(room)?,
            severity: Severity::Info,
            source: None,
            data,
        })
    }

    /// A typed event: the payload is encoded to JSON here, once.
    pub fn from_payload<T: Payload + ?Sized>(payload: &T) -> Result<EventDraft> {
        let kind = EventKind::parse(T::KIND)?;
        let data = serde_json::value::to_raw_value(payload).map_err(|source| Error::Payload {
            kind: kind.to_string(),
            source,
        })?;
        Ok(EventDraft {
            kind,
            room: Room::from_static(T::ROOM)?,
            severity: payload.severity(),
            source: None,
            data,
        })
    }

    /// Sets the severity.
    pub fn with_severity(mut self, severity: Severity) -> EventDraft {
        self.severity = severity;
        self
    }

    /// Sets the source.
    pub fn with_source(mut self, source: impl Into<String>) -> EventDraft {
        self.source = Some(source.into());
        self
    }
}

/// A published event, as every subscriber receives it (behind an `Arc`, shared by all).
///
/// Its JSON encoding ([`Event::json`]) was made once, at publish, and is what servers send.
pub struct Event {
    seq: u64,
    epoch: Epoch,
    id: Uuid,
    kind: EventKind,
    room: Room,
    severity: Severity,
    time: DateTime<Utc>,
    source: Option<Box<str>>,
    data: Box<RawValue>,
    json: Bytes,
    /// One value derived from the event by a consumer, kept for the next ones.
    prepared: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Event {
    /// The bus-wide sequence number: strictly increasing in publish order.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The epoch of the bus that published it.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// A unique id.
    pub fn id(&self) -> Uuid {
        self.id
    }
    /// What it is about.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }
    /// The room it was published to.
    pub fn room(&self) -> &Room {
        &self.room
    }
    /// How much it matters.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// When it was published (UTC).
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }
    /// Who or what produced it.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
    /// The payload as JSON text.
    pub fn data(&self) -> &RawValue {
        &self.data
    }
    /// The whole envelope as JSON, encoded once at publish:
    /// `{"seq":..,"epoch":..,"id":..,"kind":..,"room":..,"severity":..,"time":..,"source":..,"data":..}`
    /// (`source` only when set).
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// A value derived from this event once and handed to every later caller: a transport wraps
    /// the JSON in its own frame once per event rather than once per subscriber.
    ///
    /// The event keeps one such value, of the first type asked for; a caller asking for another
    /// type gets a fresh `make(self)` each time.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use event_bus::{Bus, Filter};
    /// # fn main() -> Result<(), event_bus::Error> {
    /// let bus = Bus::new();
    /// let event = bus.publish_json("chat", "chat", &serde_json::json!({"text": "hi"}))?.now()?;
    /// let frame = |e: &event_bus::Event| {
    ///     Bytes::from([b"{\"event\":", &e.json()[..], b"}"].concat())
    /// };
    /// let first: Bytes = event.prepared(frame);
    /// let again: Bytes = event.prepared(|_| unreachable!("made once"));
    /// assert_eq!(first.as_ptr(), again.as_ptr());
    /// # Ok(()) }
    /// ```
    pub fn prepared<T>(&self, make: impl FnOnce(&Event) -> T) -> T
    where
        T: Any + Clone + Send + Sync,
    {
        if let Some(value) = self.prepared.get() {
            return match value.downcast_ref::<T>() {
                Some(value) => value.clone(),
                None => make(self),
            };
        }
        let value = make(self);
        match self.prepared.set(Box::new(value.clone())) {
            Ok(()) => value,
            // Another caller got there first: use its value when it is of this type, so that
            // every caller shares one.
            Err(_) => self
                .prepared
                .get()
                .and_then(|v| v.downcast_ref::<T>())
                .cloned()
                .unwrap_or(value),
        }
    }

    /// Decodes the payload as `T`, after checking that the event is of `T`'s kind.
    pub fn decode<T: Payload + DeserializeOwned>(&self) -> Result<T> {
        if self.kind.as_str() != T::KIND {
            return Err(Error::KindMismatch {
                expected: T::KIND,
                actual: self.kind.to_string(),
            });
        }
        serde_json::from_str(self.data.get()).map_err(|source| Error::Payload {
            kind: self.kind.to_string(),
            source,
        })
    }

    /// An owned copy of the envelope with the payload parsed.
    pub fn to_envelope(&self) -> Envelope {
        Envelope {
            seq: self.seq,
            epoch: self.epoch,
            id: self.id,
            kind: self.kind.clone(),
            room: self.room.clone(),
            severity: self.severity,
            time: self.time,
            source: self.source.as_deref().map(str::to_owned),
            data: serde_json::from_str(self.data.get()).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Rebuilds an event from the JSON another node encoded (see [`Event::json`]); the bytes
    /// are kept as they are, so they are encoded once for the whole cluster.
    pub fn from_json(json: Bytes) -> Result<Event> {
        #[derive(Deserialize)]
        struct Wire<'a> {
            seq: u64,
            epoch: Epoch,
            id: Uuid,
            kind: EventKind,
            room: Room,
            severity: Severity,
            time: DateTime<Utc>,
            #[serde(default, borrow)]
            source: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            data: &'a RawValue,
        }
        let wire: Wire<'_> = serde_json::from_slice(&json).map_err(Error::Envelope)?;
        let event = Event {
            seq: wire.seq,
            epoch: wire.epoch,
            id: wire.id,
            kind: wire.kind,
            room: wire.room,
            severity: wire.severity,
            time: wire.time,
            source: wire.source.map(|s| s.into_owned().into_boxed_str()),
            data: wire.data.to_owned(),
            json: Bytes::new(),
            prepared: OnceLock::new(),
        };
        Ok(Event { json, ..event })
    }

    /// Stamps a draft and encodes it. Brokers call this; `seq` must be strictly increasing.
    pub fn stamp(draft: EventDraft, seq: u64, epoch: Epoch) -> Event {
        Encoder::new(draft, epoch).finish(seq)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("room", &self.room)
            .field("severity", &self.severity)
            .field("data", &self.data.get())
            .finish_non_exhaustive()
    }
}

/// Splits encoding in two so a broker can do the costly part before taking its lock: everything
/// but `seq` is encoded by [`Encoder::new`], and [`Encoder::finish`] only writes the number into
/// room left for it at the front of the same buffer.
pub struct Encoder {
    draft: EventDraft,
    epoch: Epoch,
    id: Uuid,
    time: DateTime<Utc>,
    /// `SEQ_ROOM` bytes reserved for `{"seq":` and the digits, then `,"epoch":...}`.
    buf: Vec<u8>,
}

const SEQ_PREFIX: &[u8] = b"{\"seq\":";
/// Room for the prefix and the 20 digits of the largest `u64`.
const SEQ_ROOM: usize = SEQ_PREFIX.len() + 20;
/// Where the encoded epoch ends (after its closing quote): `,"epoch":"` and 16 digits and `"`.
const EPOCH_END: usize = SEQ_ROOM + 10 + 16 + 1;

impl Encoder {
    /// Gives the draft an id and a time, and encodes all but the sequence number.
    pub fn new(draft: EventDraft, epoch: Epoch) -> Encoder {
        let id = Uuid::new_v4();
        // Microseconds, as on the wire, so that `time()` equals what clients parse.
        let time = Utc::now().trunc_subsecs(6);
        let data = draft.data.get().as_bytes();
        let mut buf = Vec::with_capacity(SEQ_ROOM + 200 + data.len());
        buf.resize(SEQ_ROOM, b' ');
        buf.extend_from_slice(b",\"epoch\":\"");
        write_hex16(&mut buf, epoch.as_u64());
        buf.extend_from_slice(b"\",\"id\":\"");
        buf.extend_from_slice(
            id.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        // Kind and room names are validated to need no escaping.
        buf.extend_from_slice(b"\",\"kind\":\"");
        buf.extend_from_slice(draft.kind.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"room\":\"");
        buf.extend_from_slice(draft.room.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"severity\":\"");
        buf.extend_from_slice(draft.severity.as_str().as_bytes());
        buf.extend_from_slice(b"\",\"time\":\"");
        write_rfc3339(&mut buf, &time);
        buf.push(b'"');
        if let Some(source) = &draft.source {
            buf.extend_from_slice(b",\"source\":");
            // Writing a string to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, source.as_str());
        }
        buf.extend_from_slice(b",\"data\":");
        buf.extend_from_slice(data);
        buf.push(b'}');
        Encoder {
            draft,
            epoch,
            id,
            time,
            buf,
        }
    }

    /// The room the draft goes to.
    pub fn room(&self) -> &Room {
        &self.draft.room
    }

    /// The draft's kind.
    pub fn kind(&self) -> &EventKind {
        &self.draft.kind
    }

    /// Everything after the epoch: `,"id":...}`. A broker that numbers events elsewhere sends
    /// this and has the store put `{"seq":<seq>,"epoch":"<epoch>"` in front.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn tail(&self) -> &[u8] {
        &self.buf[EPOCH_END..]
    }

    /// Completes the event with a sequence number and an epoch that came from elsewhere (the
    /// epoch given to [`Encoder::new`] is overwritten).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn finish_in(mut self, seq: u64, epoch: Epoch) -> Event {
        if epoch != self.epoch {
            let mut hex = Vec::with_capacity(16);
            write_hex16(&mut hex, epoch.as_u64());
            self.buf[EPOCH_END - 17..EPOCH_END - 1].copy_from_slice(&hex);
            self.epoch = epoch;
        }
        self.finish(seq)
    }

    /// Completes the event with its sequence number.
    pub fn finish(self, seq: u64) -> Event {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(seq).as_bytes();
        let mut buf = self.buf;
        let start = SEQ_ROOM - digits.len() - SEQ_PREFIX.len();
        buf[start..start + SEQ_PREFIX.len()].copy_from_slice(SEQ_PREFIX);
        buf[SEQ_ROOM - digits.len()..SEQ_ROOM].copy_from_slice(digits);
        let EventDraft {
            kind,
            room,
            severity,
            source,
            data,
        } = self.draft;
        Event {
            seq,
            epoch: self.epoch,
            id: self.id,
            kind,
            room,
            severity,
            time: self.time,
            source: source.map(String::into_boxed_str),
            data,
            // No copy: the bytes before `start` are simply not part of the view.
            json: Bytes::from(buf).slice(start..),
            prepared: OnceLock::new(),
        }
    }
}

fn write_hex16(out: &mut Vec<u8>, value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((value >> (shift * 4)) & 0xf) as usize]);
    }
}

fn write_digits(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut v = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-21T09:37:00.123456Z`.
fn write_rfc3339(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    let year = time.year();
    if (0..=9999).contains(&year) {
        write_digits(out, year as u32, 4);
    } else {
        // Outside what RFC 3339 can say; chrono's own form keeps it parseable by chrono.
        let _ = write!(out, "{year:+05}");
    }
    out.push(b'-');
    write_digits(out, time.month(), 2);
    out.push(b'-');
    write_digits(out, time.day(), 2);
    out.push(b'T');
    write_digits(out, time.hour(), 2);
    out.push(b':');
    write_digits(out, time.minute(), 2);
    out.push(b':');
    write_digits(out, time.second(), 2);
    out.push(b'.');
    // A leap second shows as 60 in chrono's nanoseconds; keep six digits.
    write_digits(out, (time.nanosecond() % 1_000_000_000) / 1_000, 6);
    out.push(b'Z');
}

/// An owned, parsed event envelope: what a remote client decodes from the bytes of
/// [`Event::json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// See [`Event::seq`].
    pub seq: u64,
    /// See [`Event::epoch`].
    pub epoch: Epoch,
    /// See [`Event::id`].
    pub id: Uuid,
    /// See [`Event::kind`].
    pub kind: EventKind,
    /// See [`Event::room`].
    pub room: Room,
    /// See [`Event::severity`].
    pub severity: Severity,
    /// See [`Event::time`].
    pub time: DateTime<Utc>,
    /// See [`Event::source`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Envelope {
    /// Parses an envelope from JSON bytes.
    pub fn from_slice(json: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(json).map_err(Error::Envelope)
    }

    /// Decodes the payload as `T`, after checking the kind.
    pub fn decode<T: Payload + DeserializeOwned>(&self) -> Result<T> {
        if self.kind.as_str() != T::KIND {
            return Err(Error::KindMismatch {
                expected: T::KIND,
                actual: self.kind.to_string(),
            });
        }
        T::deserialize(&self.data).map_err(|source| Error::Payload {
            kind: self.kind.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Hello {
        text: String,
    }

    impl Payload for Hello {
        const KIND: &'static str = "chat_message";
        const ROOM: &'static str = "chat";
    }

    #[test]
    fn encoding_parses_back_to_the_same_envelope() {
        let draft = EventDraft::from_payload(&Hello {
            text: "a \"quoted\" <b>".into(),
        })
        .unwrap()
        .with_source("agent \"7\"");
        let event = Event::stamp(draft, 42, Epoch::from_u64(0xdead_beef));
        let env = Envelope::from_slice(event.json()).unwrap();
        assert_eq!(env, event.to_envelope());
        assert_eq!(env.seq, 42);
        assert_eq!(env.epoch.to_string(), "00000000deadbeef");
        assert_eq!(env.source.as_deref(), Some("agent \"7\""));
        assert_eq!(env.time, event.time());
        assert_eq!(env.decode::<Hello>().unwrap().text, "a \"quoted\" <b>");
        assert_eq!(event.decode::<Hello>().unwrap().text, "a \"quoted\" <b>");
    }

    #[test]
    fn events_round_trip_through_their_json_and_take_another_epoch() {
        let draft = EventDraft::from_payload(&Hello {
            text: "é \"q\"".into(),
        })
        .unwrap()
        .with_source("a\\b");
        let encoder = Encoder::new(draft, Epoch::from_u64(1));
        let tail = String::from_utf8(encoder.tail().to_vec()).unwrap();
        assert!(tail.starts_with(",\"id\":\""), "{tail}");
        let event = encoder.finish_in(9, Epoch::from_u64(0xabc));
        assert_eq!(event.epoch(), Epoch::from_u64(0xabc));
        let spliced = format!("{{\"seq\":9,\"epoch\":\"0000000000000abc\"{tail}");
        assert_eq!(spliced.as_bytes(), &event.json()[..]);
        let back = Event::from_json(event.json().clone()).unwrap();
        assert_eq!(back.to_envelope(), event.to_envelope());
        assert_eq!(back.json(), event.json());
        assert!(Event::from_json(Bytes::from_static(b"{\"seq\":1}")).is_err());
    }

    #[test]
    fn source_is_omitted_when_unset() {
        let draft = EventDraft::new("scan_update", "scans", &serde_json::json!({"n": 1})).unwrap();
        let event = Event::stamp(draft, 1, Epoch::from_u64(1));
        let text = std::str::from_utf8(event.json()).unwrap();
        assert!(
            text.starts_with("{\"seq\":1,\"epoch\":\"0000000000000001\",\"id\":\""),
            "{text}"
        );
        assert!(!text.contains("source"));
        assert!(text.ends_with(",\"data\":{\"n\":1}}"), "{text}");
    }

    #[test]
    fn decode_checks_the_kind() {
        let draft =
            EventDraft::new("scan_update", "scans", &serde_json::json!({"text": "x"})).unwrap();
        let event = Event::stamp(draft, 1, Epoch::random());
        assert!(matches!(
            event.decode::<Hello>(),
            Err(Error::KindMismatch { .. })
        ));
    }

    #[test]
    fn times_are_written_as_rfc3339_micros() {
        let t: DateTime<Utc> = "2026-01-02T03:04:05.000007Z".parse().unwrap();
        let mut out = Vec::new();
        write_rfc3339(&mut out, &t);
        assert_eq!(out, b"2026-01-02T03:04:05.000007Z");
        let mut hex = Vec::new();
        write_hex16(&mut hex, 0x0123_4567_89ab_cdef);
        assert_eq!(hex, b"0123456789abcdef");
    }

    #[test]
    fn large_sequence_numbers_fit() {
        let draft = EventDraft::new("scan_update", "scans", &serde_json::Value::Null).unwrap();
        let event = Event::stamp(draft, u64::MAX, Epoch::from_u64(3));
        assert_eq!(Envelope::from_slice(event.json()).unwrap().seq, u64::MAX);
    }

    #[test]
    fn epochs_round_trip_and_reject_garbage() {
        let epoch = Epoch::random();
        assert_eq!(epoch.to_string().parse::<Epoch>().unwrap(), epoch);
        for bad in ["", "xyz", "0123456789abcdef0", "0123456789abcdeg"] {
            assert!(
                matches!(bad.parse::<Epoch>(), Err(Error::InvalidEpoch(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn draft_json_rejects_bad_names_and_defaults_the_rest() {
        let draft: EventDraft =
            serde_json::from_str(r#"{"kind":"tool_executed","room":"monitoring"}"#).unwrap();
        assert_eq!(draft.kind, EventKind::ToolExecuted);
        assert_eq!(draft.data.get(), "null");
        assert!(serde_json::from_str::<EventDraft>(r#"{"kind":"x","room":"Bad Room"}"#).is_err());
        assert!(
            serde_json::from_str::<EventDraft>(r#"{"kind":"x","room":"chat","severity":"fatal"}"#)
                .is_err()
        );
    }
}
