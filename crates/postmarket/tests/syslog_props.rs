//! Seeded pseudo-random properties of the syslog layer: generated well-formed messages
//! round-trip every field, mutated ones never panic, and framing is chunking-independent.
//! A fixed seed keeps failures reproducible; the workspace has no property-test crate.

use std::collections::BTreeMap;

use medsec_postmarket::event::{MAX_DETAIL_VALUE, MAX_DETAILS};
use medsec_postmarket::syslog::{FrameDecoder, MEDSEC_SD_ID, parse_message, to_event};
use medsec_postmarket::{EventType, Severity};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// xorshift64*: tiny, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.range(1, 100) <= percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() - 1)]
    }
}

/// Characters for values and MSG: the escape-relevant ones, multi-byte UTF-8, controls.
const CHARS: &[char] = &[
    'a', 'Z', '0', '9', ' ', '"', '\\', ']', '[', '=', '-', '@', 'é', '漢', '🙂', '\n', '\t', '\0',
];

#[derive(Debug, Clone)]
struct Expected {
    pri: u8,
    at: OffsetDateTime,
    header: [Option<String>; 4],
    sd: Vec<(String, Vec<(String, String)>)>,
    msg: Option<String>,
}

fn printusascii(rng: &mut Rng, max: usize, sd_name: bool) -> String {
    let len = rng.range(1, max);
    (0..len)
        .map(|_| {
            loop {
                let c = char::from(rng.range(33, 126) as u8);
                if !sd_name || !matches!(c, '=' | ']' | '"') {
                    break c;
                }
            }
        })
        .collect()
}

fn text(rng: &mut Rng, max: usize) -> String {
    let len = rng.range(0, max);
    (0..len).map(|_| rng.pick(CHARS)).collect()
}

fn timestamp(rng: &mut Rng) -> (String, OffsetDateTime) {
    let year = rng.range(0, 9999) as i32;
    let month = Month::try_from(rng.range(1, 12) as u8).unwrap();
    let day = rng.range(1, time::util::days_in_month(month, year) as usize) as u8;
    let (h, mi, s) = (rng.range(0, 23), rng.range(0, 59), rng.range(0, 59));
    let mut out = format!(
        "{year:04}-{:02}-{day:02}T{h:02}:{mi:02}:{s:02}",
        month as u8
    );
    let mut micro = 0u32;
    if rng.chance(50) {
        let digits = rng.range(1, 6);
        let frac = rng.range(0, 10usize.pow(digits as u32) - 1);
        out += &format!(".{frac:0digits$}");
        micro = (frac * 10usize.pow(6 - digits as u32)) as u32;
    }
    let offset = if rng.chance(30) {
        out.push('Z');
        UtcOffset::UTC
    } else {
        let (oh, om) = (rng.range(0, 23) as i8, rng.range(0, 59) as i8);
        let neg = rng.chance(50);
        out += &format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' });
        if neg {
            UtcOffset::from_hms(-oh, -om, 0).unwrap()
        } else {
            UtcOffset::from_hms(oh, om, 0).unwrap()
        }
    };
    let date = Date::from_calendar_date(year, month, day).unwrap();
    let time = Time::from_hms_micro(h as u8, mi as u8, s as u8, micro).unwrap();
    (
        out,
        PrimitiveDateTime::new(date, time).assume_offset(offset),
    )
}

fn escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn render_sd(sd: &[(String, Vec<(String, String)>)]) -> String {
    if sd.is_empty() {
        return "-".into();
    }
    sd.iter()
        .map(|(id, params)| {
            let ps: String = params
                .iter()
                .map(|(n, v)| format!(" {n}=\"{}\"", escape(v)))
                .collect();
            format!("[{id}{ps}]")
        })
        .collect()
}

fn generate(rng: &mut Rng) -> (Vec<u8>, Expected) {
    let pri = rng.range(0, 191) as u8;
    let (ts, at) = timestamp(rng);
    let header: [Option<String>; 4] = [255, 48, 128, 32].map(|max| {
        if rng.chance(20) {
            None
        } else {
            Some(printusascii(rng, max, false)).filter(|s| s != "-")
        }
    });
    let mut sd: Vec<(String, Vec<(String, String)>)> = Vec::new();
    if rng.chance(70) {
        for _ in 0..rng.range(1, 3) {
            let id = printusascii(rng, 32, true);
            if sd.iter().any(|(i, _)| *i == id) {
                continue;
            }
            let params = (0..rng.range(0, 4))
                .map(|_| (printusascii(rng, 32, true), text(rng, 20)))
                .collect();
            sd.push((id, params));
        }
    }
    let msg = rng.chance(70).then(|| text(rng, 60));
    let nil = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
    let mut bytes = format!(
        "<{pri}>1 {ts} {} {} {} {} {}",
        nil(&header[0]),
        nil(&header[1]),
        nil(&header[2]),
        nil(&header[3]),
        render_sd(&sd)
    )
    .into_bytes();
    if let Some(m) = &msg {
        bytes.push(b' ');
        if rng.chance(50) {
            bytes.extend_from_slice(b"\xEF\xBB\xBF");
        }
        bytes.extend_from_slice(m.as_bytes());
    }
    let expected = Expected {
        pri,
        at,
        header,
        sd,
        msg,
    };
    (bytes, expected)
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.range(1, 4) {
        let at = rng.range(0, b.len());
        match rng.range(0, 4) {
            0 if at < b.len() => b[at] = rng.next() as u8,
            1 if at < b.len() => {
                b.remove(at);
            }
            2 => b.insert(at, rng.pick(b" \"\\[]=-<>0:.TZ+\xEF\xFF")),
            3 => b.truncate(at),
            _ => {
                let end = rng.range(at, b.len());
                let slice = b[at..end].to_vec();
                b.splice(at..at, slice);
            }
        }
    }
    b
}

#[test]
fn generated_messages_round_trip() {
    let mut rng = Rng(0x5EED_0001);
    for i in 0..3000 {
        let (bytes, want) = generate(&mut rng);
        let m = parse_message(&bytes)
            .unwrap_or_else(|e| panic!("case {i}: {:?}: {e}", String::from_utf8_lossy(&bytes)));
        assert_eq!(m.pri(), want.pri, "case {i}");
        assert_eq!(m.facility() * 8 + m.severity(), want.pri);
        assert_eq!(m.timestamp(), want.at, "case {i}");
        assert_eq!(m.timestamp().offset(), want.at.offset(), "case {i}");
        assert_eq!(
            [m.hostname(), m.app_name(), m.procid(), m.msgid()],
            want.header.each_ref().map(|h| h.as_deref()),
            "case {i}"
        );
        let sd: Vec<(String, Vec<(String, String)>)> = m
            .structured_data()
            .iter()
            .map(|e| (e.id().to_owned(), e.params().to_vec()))
            .collect();
        assert_eq!(sd, want.sd, "case {i}");
        assert_eq!(m.msg(), want.msg.as_deref(), "case {i}");
        assert_eq!(m.raw(), &bytes[..]);
    }
}

#[test]
fn mutated_and_random_input_never_panics() {
    let mut rng = Rng(0x5EED_0002);
    let mut accepted = 0;
    for _ in 0..4000 {
        let (seed, _) = generate(&mut rng);
        let input = if rng.chance(10) {
            (0..rng.range(0, 80)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, &seed)
        };
        if let Ok(m) = parse_message(&input) {
            accepted += 1;
            assert!(m.pri() <= 191);
            assert_eq!(m.raw(), &input[..]);
            for f in [m.hostname(), m.app_name(), m.procid(), m.msgid()]
                .into_iter()
                .flatten()
            {
                assert!(f.bytes().all(|b| (33..=126).contains(&b)));
                assert!(f.len() <= 255);
            }
            let mut ids: Vec<&str> = m.structured_data().iter().map(|e| e.id()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(
                ids.len(),
                m.structured_data().len(),
                "duplicate SD-ID accepted"
            );
            let _ = to_event(&m);
        }
    }
    // Some mutations (e.g. inside MSG) keep the message valid; none at all would mean the
    // generator or mutator is broken and the loop tests nothing.
    assert!(accepted > 100, "only {accepted} mutated inputs parsed");
}

#[test]
fn generated_events_map_like_their_params() {
    let mut rng = Rng(0x5EED_0003);
    let severities = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    for i in 0..2000 {
        let ty = rng.pick(&EventType::ALL);
        let mut params = vec![("type".to_owned(), ty.as_str().to_owned())];
        if ty == EventType::ConfigChanged {
            params.push(("by".into(), format!("local:{}", rng.range(0, 99))));
        }
        let severity = rng.chance(50).then(|| rng.pick(&severities));
        if let Some(s) = severity {
            params.push(("severity".into(), s.as_str().into()));
        }
        let id = rng.chance(50).then(|| printusascii(&mut rng, 40, false));
        if let Some(id) = &id {
            params.push(("id".into(), id.clone()));
        }
        let mut extra = BTreeMap::new();
        for k in 0..rng.range(0, MAX_DETAILS - 4) {
            let v = text(&mut rng, 30);
            extra.insert(format!("x{k}"), v.clone());
            params.push((format!("x{k}"), v));
        }
        // Shuffle so the mapping cannot depend on param order.
        for j in (1..params.len()).rev() {
            params.swap(j, rng.range(0, j));
        }
        let pri = rng.range(0, 191);
        let rendered = render_sd(&[(MEDSEC_SD_ID.to_owned(), params)]);
        let raw = format!("<{pri}>1 2026-03-01T10:00:00Z gw app - - {rendered} hello");
        let m = parse_message(raw.as_bytes()).unwrap();
        let (device, e) = to_event(&m).unwrap_or_else(|err| panic!("case {i}: {raw}: {err}"));
        assert_eq!(device, None);
        assert_eq!(e.event_type(), ty);
        let want_sev = severity.unwrap_or(match pri % 8 {
            0..=2 => Severity::Critical,
            3 => Severity::High,
            4 => Severity::Medium,
            _ => Severity::Low,
        });
        assert_eq!(e.severity, want_sev, "case {i}");
        match &id {
            Some(id) => assert_eq!(e.id.as_str(), id),
            None => assert_eq!(e.id.as_str().len(), "syslog-".len() + 32),
        }
        extra.insert("syslog.hostname".into(), "gw".into());
        extra.insert("syslog.app".into(), "app".into());
        extra.insert("msg".into(), "hello".into());
        assert_eq!(e.details, extra, "case {i}");
        assert!(e.details.values().all(|v| v.len() <= MAX_DETAIL_VALUE));
    }
}

#[test]
fn framing_is_independent_of_chunking() {
    let mut rng = Rng(0x5EED_0004);
    for _ in 0..300 {
        let frames: Vec<Vec<u8>> = (0..rng.range(1, 8)).map(|_| generate(&mut rng).0).collect();
        let max = frames.iter().map(Vec::len).max().unwrap_or(0);
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend_from_slice(format!("{} ", f.len()).as_bytes());
            stream.extend_from_slice(f);
        }
        let mut dec = FrameDecoder::new(max);
        let mut got = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let end = (at + rng.range(1, 200)).min(stream.len());
            dec.push(&stream[at..end]);
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
            assert!(dec.pending() <= max + 10);
            at = end;
        }
        assert_eq!(got, frames);
        assert_eq!(dec.pending(), 0);
    }
}

#[test]
fn random_streams_stay_bounded() {
    let mut rng = Rng(0x5EED_0005);
    for _ in 0..2000 {
        let max = rng.range(0, 64);
        let mut dec = FrameDecoder::new(max);
        for _ in 0..rng.range(1, 10) {
            let chunk: Vec<u8> = (0..rng.range(0, 40))
                .map(|_| rng.pick(b"0123456789 <x\n\xff"))
                .collect();
            dec.push(&chunk);
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => assert!(f.len() <= max),
                    Ok(None) => {
                        assert!(dec.pending() <= max + 10);
                        break;
                    }
                    Err(_) => {
                        assert_eq!(dec.pending(), 0);
                        break;
                    }
                }
            }
        }
    }
}
