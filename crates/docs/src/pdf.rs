//! PDF rendering of a [`crate::doc::Document`] in-process: text in the standard Helvetica fonts, tables, and diagrams drawn as vector graphics.
//!
//! The layout is done here (pdf-writer only serialises objects): A4 pages, numbered headings kept
//! with what follows, wrapped paragraphs, lists, tables whose header row repeats on every page,
//! shaded callouts and diagrams scaled to the text width, then a footer with the document title and
//! "page N of M" once the page count is known, a bookmark per section and the info dictionary.
//!
//! Text uses the standard 14 fonts (Helvetica, Helvetica-Bold, Helvetica-Oblique) with
//! WinAnsiEncoding and no embedded font program, so lines are wrapped with the Adobe AFM glyph
//! widths kept below. A character that WinAnsiEncoding cannot represent is shown as `?`; invisible
//! formatting characters (soft hyphen, zero-width space/joiners, byte order mark) are dropped.
//! Bookmarks and the info dictionary are PDF text strings, so they keep every character.
//!
//! Output is deterministic: no clock, no random file id, no hash-map iteration, so the same
//! document and `created` give the same bytes.

use pdf_writer::types::{LineCapStyle, LineJoinStyle, PageMode};
use pdf_writer::{Content, Date, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use time::OffsetDateTime;

use crate::DocsError;
use crate::doc::{Block, Diagram, Document, EdgeStyle, Node, NodeKind, Section, Table};

// ---------------------------------------------------------------------------------------------
// Page geometry (points; layout works top-down, y = 0 at the top edge of the page).

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 56.7;
const MARGIN_TOP: f32 = 56.7;
/// Content stops here; the footer lives below it.
const CONTENT_BOTTOM: f32 = PAGE_H - 70.0;
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN_X;
const USABLE_H: f32 = CONTENT_BOTTOM - MARGIN_TOP;
const FOOTER_RULE: f32 = PAGE_H - 54.0;
const FOOTER_BASELINE: f32 = PAGE_H - 40.0;
/// Slack for float comparisons so a block that fits exactly is not pushed to the next page.
const EPS: f32 = 0.01;

const BODY_SIZE: f32 = 10.0;
const BODY_LEADING: f32 = 13.5;
const BLOCK_GAP: f32 = 8.0;

const TABLE_SIZE: f32 = 8.5;
const TABLE_LEADING: f32 = 10.5;
const CELL_PAD_X: f32 = 4.0;
const CELL_PAD_Y: f32 = 3.0;
/// No column gets narrower than this, whatever its content.
const MIN_COL: f32 = 24.0;

// ---------------------------------------------------------------------------------------------
// Colours.

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rgb(f32, f32, f32);

const BLACK: Rgb = Rgb(0.1, 0.1, 0.1);
const DARK: Rgb = Rgb(0.2, 0.2, 0.22);
const GREY: Rgb = Rgb(0.4, 0.4, 0.42);
const RULE: Rgb = Rgb(0.7, 0.7, 0.72);
const WHITE: Rgb = Rgb(1.0, 1.0, 1.0);
const ACCENT: Rgb = Rgb(0.12, 0.27, 0.5);
const HEADER_FILL: Rgb = Rgb(0.87, 0.9, 0.95);
const ZEBRA_FILL: Rgb = Rgb(0.965, 0.965, 0.97);
const CALLOUT_FILL: Rgb = Rgb(1.0, 0.955, 0.86);
const CALLOUT_BAR: Rgb = Rgb(0.85, 0.5, 0.08);
const WEAK: Rgb = Rgb(0.8, 0.1, 0.1);
const SECURE: Rgb = Rgb(0.08, 0.42, 0.2);
const FLOW: Rgb = Rgb(0.5, 0.5, 0.52);

// ---------------------------------------------------------------------------------------------
// Fonts, encoding and metrics.

/// The standard-14 fonts used; Oblique has the same metrics as Regular.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
    Oblique,
}

impl Font {
    const ALL: [Font; 3] = [Font::Regular, Font::Bold, Font::Oblique];

    fn resource(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
            Font::Oblique => Name(b"F3"),
        }
    }

    fn base_font(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"Helvetica"),
            Font::Bold => Name(b"Helvetica-Bold"),
            Font::Oblique => Name(b"Helvetica-Oblique"),
        }
    }

    fn widths(self) -> &'static [u16; 224] {
        match self {
            Font::Regular | Font::Oblique => &HELVETICA_WIDTHS,
            Font::Bold => &HELVETICA_BOLD_WIDTHS,
        }
    }
}

/// Glyph widths (1/1000 em) of Helvetica for WinAnsiEncoding codes 32..=255, from Adobe's
/// Core14 AFM. Codes WinAnsi leaves undefined (127, 129, 141, 143, 144, 157) are never emitted.
#[rustfmt::skip]
const HELVETICA_WIDTHS: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // 32..=47
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 48..=63
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 64..=79
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 80..=95
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 96..=111
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 350, // 112..=127
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350, // 128..=143
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667, // 144..=159
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 160..=175
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 176..=191
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 192..=207
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 208..=223
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, // 224..=239
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, // 240..=255
];

/// Glyph widths (1/1000 em) of Helvetica-Bold for WinAnsiEncoding codes 32..=255 (Adobe AFM).
#[rustfmt::skip]
const HELVETICA_BOLD_WIDTHS: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // 32..=47
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 48..=63
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // 64..=79
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // 80..=95
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // 96..=111
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 350, // 112..=127
    556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350, // 128..=143
    350, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667, // 144..=159
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 160..=175
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 176..=191
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 192..=207
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 208..=223
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, // 224..=239
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556, // 240..=255
];

/// WinAnsiEncoding (Windows-1252 as the PDF spec defines it) code for `c`, if it has one.
fn winansi(c: char) -> Option<u8> {
    let code = match c {
        ' '..='~' | '\u{a0}'..='\u{ff}' => return u8::try_from(u32::from(c)).ok(),
        '€' => 128,
        '‚' => 130,
        'ƒ' => 131,
        '„' => 132,
        '…' => 133,
        '†' => 134,
        '‡' => 135,
        'ˆ' => 136,
        '‰' => 137,
        'Š' => 138,
        '‹' => 139,
        'Œ' => 140,
        'Ž' => 142,
        '‘' => 145,
        '’' => 146,
        '“' => 147,
        '”' => 148,
        '•' => 149,
        '–' => 150,
        '—' => 151,
        '˜' => 152,
        '™' => 153,
        'š' => 154,
        '›' => 155,
        'œ' => 156,
        'ž' => 158,
        'Ÿ' => 159,
        _ => return None,
    };
    Some(code)
}

const BULLET: u8 = 149;
const ELLIPSIS: u8 = 133;

/// Encodes text for a WinAnsi font: one byte per shown character, `?` for characters the
/// encoding lacks, `\n` kept as a forced line break, other control characters as spaces.
fn encode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push(b'\n'),
            // Invisible: a break hint or a joiner would otherwise print as a hyphen or `?`.
            '\r' | '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' => {}
            c if c.is_control() => out.push(b' '),
            c => out.push(winansi(c).unwrap_or(b'?')),
        }
    }
    out
}

/// Width of one encoded byte in 1/1000 em; control bytes take no room.
fn glyph_units(b: u8, font: Font) -> u32 {
    match b.checked_sub(32) {
        Some(i) => font
            .widths()
            .get(usize::from(i))
            .map_or(0, |w| u32::from(*w)),
        None => 0,
    }
}

/// Width of encoded text in points.
fn text_width(bytes: &[u8], font: Font, size: f32) -> f32 {
    let units: u32 = bytes.iter().map(|b| glyph_units(*b, font)).sum();
    units as f32 * size / 1000.0
}

/// Greedy line breaking of encoded text at spaces; `\n` forces a break and a word wider than
/// `max_w` is split between characters. Whitespace-only text gives no lines.
fn wrap(text: &[u8], font: Font, size: f32, max_w: f32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if text.iter().all(|b| matches!(b, b' ' | b'\n')) {
        return out;
    }
    let space = text_width(b" ", font, size);
    for raw in text.split(|b| *b == b'\n') {
        let mut line: Vec<u8> = Vec::new();
        let mut line_w = 0.0_f32;
        for word in raw.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
            let word_w = text_width(word, font, size);
            if !line.is_empty() {
                if line_w + space + word_w <= max_w + EPS {
                    line.push(b' ');
                    line.extend_from_slice(word);
                    line_w += space + word_w;
                    continue;
                }
                out.push(std::mem::take(&mut line));
            }
            if word_w <= max_w + EPS {
                line.extend_from_slice(word);
                line_w = word_w;
                continue;
            }
            // Too long for any line (hashes, URLs): break between characters.
            line_w = 0.0;
            for &b in word {
                let w = text_width(&[b], font, size);
                if !line.is_empty() && line_w + w > max_w + EPS {
                    out.push(std::mem::take(&mut line));
                    line_w = 0.0;
                }
                line.push(b);
                line_w += w;
            }
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// Cuts encoded text to `max_w`, ending it with an ellipsis when something was cut.
fn truncate(text: &[u8], font: Font, size: f32, max_w: f32) -> Vec<u8> {
    if text_width(text, font, size) <= max_w + EPS {
        return text.to_vec();
    }
    let budget = max_w - text_width(&[ELLIPSIS], font, size);
    let mut out = Vec::new();
    let mut w = 0.0;
    for &b in text {
        let bw = text_width(&[b], font, size);
        if w + bw > budget {
            break;
        }
        out.push(b);
        w += bw;
    }
    out.push(ELLIPSIS);
    out
}

/// Widest single word, for the narrowest sensible column.
fn longest_word(text: &[u8], font: Font, size: f32) -> f32 {
    text.split(|b| matches!(b, b' ' | b'\n'))
        .map(|w| text_width(w, font, size))
        .fold(0.0, f32::max)
}

/// Widest forced line, for the column width the text would like.
fn longest_line(text: &[u8], font: Font, size: f32) -> f32 {
    text.split(|b| *b == b'\n')
        .map(|l| text_width(l, font, size))
        .fold(0.0, f32::max)
}

/// Baseline offset inside a line box of `leading`, centring Helvetica's ascender-descender span.
fn baseline(size: f32, leading: f32) -> f32 {
    (leading - 0.925 * size) / 2.0 + 0.718 * size
}

// ---------------------------------------------------------------------------------------------
// Drawing primitives, in top-down page coordinates.

fn pdf_y(y: f32) -> f32 {
    PAGE_H - y
}

/// Shows encoded text with its baseline at `(x, y)`.
fn show(c: &mut Content, (x, y): (f32, f32), font: Font, size: f32, color: Rgb, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    c.begin_text();
    c.set_font(font.resource(), size);
    c.set_fill_rgb(color.0, color.1, color.2);
    c.next_line(x, pdf_y(y));
    c.show(Str(bytes));
    c.end_text();
}

fn fill_rect(c: &mut Content, (x, y, w, h): (f32, f32, f32, f32), color: Rgb) {
    c.set_fill_rgb(color.0, color.1, color.2);
    c.rect(x, pdf_y(y + h), w, h);
    c.fill_nonzero();
}

fn stroke_rect(c: &mut Content, (x, y, w, h): (f32, f32, f32, f32), color: Rgb, width: f32) {
    c.set_stroke_rgb(color.0, color.1, color.2);
    c.set_line_width(width);
    c.rect(x, pdf_y(y + h), w, h);
    c.stroke();
}

fn hline(c: &mut Content, x1: f32, x2: f32, y: f32, color: Rgb, width: f32) {
    c.set_stroke_rgb(color.0, color.1, color.2);
    c.set_line_width(width);
    c.move_to(x1, pdf_y(y));
    c.line_to(x2, pdf_y(y));
    c.stroke();
}

/// Rounded-rectangle path (Bézier quarter circles); `r` is clamped to half the shorter side.
fn rounded_rect_path(c: &mut Content, (x, y, w, h): (f32, f32, f32, f32), r: f32) {
    let r = r.min(w / 2.0).min(h / 2.0).max(0.0);
    let k = 0.552_284_8 * r;
    let (l, rt, top, bot) = (x, x + w, pdf_y(y), pdf_y(y + h));
    c.move_to(l + r, bot);
    c.line_to(rt - r, bot);
    c.cubic_to(rt - r + k, bot, rt, bot + r - k, rt, bot + r);
    c.line_to(rt, top - r);
    c.cubic_to(rt, top - r + k, rt - r + k, top, rt - r, top);
    c.line_to(l + r, top);
    c.cubic_to(l + r - k, top, l, top - r + k, l, top - r);
    c.line_to(l, bot + r);
    c.cubic_to(l, bot + r - k, l + r - k, bot, l + r, bot);
    c.close_path();
}

/// Polygon path through top-down points.
fn polygon_path(c: &mut Content, points: &[(f32, f32)]) {
    let mut first = true;
    for &(x, y) in points {
        if first {
            c.move_to(x, pdf_y(y));
            first = false;
        } else {
            c.line_to(x, pdf_y(y));
        }
    }
    c.close_path();
}

// ---------------------------------------------------------------------------------------------
// Page flow.

/// A bookmark: the numbered heading, its depth (0 = top level) and where it starts.
struct OutlineEntry {
    depth: usize,
    title: String,
    page: usize,
    y: f32,
}

/// Finished pages plus the page being filled and the cursor on it.
struct Layout {
    done: Vec<Content>,
    page: Content,
    y: f32,
    outline: Vec<OutlineEntry>,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            done: Vec::new(),
            page: Content::new(),
            y: MARGIN_TOP,
            outline: Vec::new(),
        }
    }

    fn new_page(&mut self) {
        let full = std::mem::replace(&mut self.page, Content::new());
        self.done.push(full);
        self.y = MARGIN_TOP;
    }

    fn at_top(&self) -> bool {
        self.y <= MARGIN_TOP + EPS
    }

    fn fits(&self, h: f32) -> bool {
        self.y + h <= CONTENT_BOTTOM + EPS
    }

    /// Starts a new page unless `h` fits below the cursor (or the page is still empty, where a
    /// break would not help).
    fn ensure(&mut self, h: f32) {
        if !self.fits(h) && !self.at_top() {
            self.new_page();
        }
    }

    /// Vertical space between blocks; dropped at the top of a page.
    fn gap(&mut self, h: f32) {
        if !self.at_top() {
            self.y += h;
        }
    }

    /// Draws lines one by one, breaking pages between lines.
    fn lines(&mut self, x: f32, lines: &[Vec<u8>], font: Font, size: f32, leading: f32) {
        for line in lines {
            self.ensure(leading);
            let at = (x, self.y + baseline(size, leading));
            show(&mut self.page, at, font, size, BLACK, line);
            self.y += leading;
        }
    }

    fn finish(mut self) -> (Vec<Content>, Vec<OutlineEntry>) {
        self.done.push(self.page);
        (self.done, self.outline)
    }
}

// ---------------------------------------------------------------------------------------------
// Document structure.

/// Renders `doc` to PDF bytes (PDF 1.7, A4).
///
/// `created` becomes the info dictionary's CreationDate and is the only input besides the
/// document, so the same document and `created` give the same bytes. Text is set in the
/// standard Helvetica fonts with WinAnsiEncoding: characters outside it print as `?` (bookmarks
/// and the info dictionary keep them).
///
/// Fails with [`DocsError::Render`] when a table row does not have one cell per header column,
/// when a diagram's size or coordinates are not finite (size positive, everything within
/// ±1e6) or an edge has fewer than two points,
/// or when `created` lies outside the years 0..=9999.
pub fn render_pdf(doc: &Document, created: OffsetDateTime) -> Result<Vec<u8>, DocsError> {
    for s in &doc.sections {
        validate_section(s)?;
    }
    let date = pdf_date(created)?;
    let mut lay = Layout::new();
    title_block(&mut lay, doc);
    for (i, s) in doc.sections.iter().enumerate() {
        section(&mut lay, s, &[i + 1]);
    }
    let (pages, outline) = lay.finish();
    Ok(emit(doc, pages, &outline, date))
}

fn render_err(message: String) -> DocsError {
    DocsError::Render {
        format: "pdf",
        message,
    }
}

fn validate_section(s: &Section) -> Result<(), DocsError> {
    for b in &s.blocks {
        match b {
            Block::Table(t) => {
                for (i, row) in t.rows.iter().enumerate() {
                    if row.len() != t.header.len() {
                        return Err(render_err(format!(
                            "section {:?}: table row {} has {} cells, the header has {}",
                            s.id,
                            i + 1,
                            row.len(),
                            t.header.len()
                        )));
                    }
                }
            }
            Block::Diagram(d) => validate_diagram(d)
                .map_err(|m| render_err(format!("section {:?}: diagram {:?}: {m}", s.id, d.id)))?,
            _ => {}
        }
    }
    for c in &s.children {
        validate_section(c)?;
    }
    Ok(())
}

/// Largest diagram coordinate accepted (points in the diagram's own space).
const MAX_COORD: f32 = 1.0e6;

fn validate_diagram(d: &Diagram) -> Result<(), String> {
    // Bounded so that scaling to the page cannot overflow to infinities in the content stream.
    let ok = |v: f32| v.is_finite() && v.abs() <= MAX_COORD;
    if !(ok(d.width) && ok(d.height) && d.width > 0.0 && d.height > 0.0) {
        return Err(format!(
            "size {} x {} is not positive and at most {MAX_COORD}",
            d.width, d.height
        ));
    }
    for n in &d.nodes {
        let v = [n.x, n.y, n.w, n.h];
        if !v.into_iter().all(ok) || n.w < 0.0 || n.h < 0.0 {
            return Err(format!("node {:?} has invalid geometry {v:?}", n.id));
        }
    }
    for e in &d.edges {
        if e.points.len() < 2 {
            return Err(format!(
                "edge {:?} -> {:?} has fewer than 2 points",
                e.from, e.to
            ));
        }
        if !e.points.iter().all(|(x, y)| ok(*x) && ok(*y)) {
            return Err(format!(
                "edge {:?} -> {:?} has a point that is not finite or beyond {MAX_COORD}",
                e.from, e.to
            ));
        }
    }
    Ok(())
}

fn pdf_date(t: OffsetDateTime) -> Result<Date, DocsError> {
    let year = u16::try_from(t.year())
        .ok()
        .filter(|y| *y <= 9999)
        .ok_or_else(|| render_err(format!("creation year {} is outside 0..=9999", t.year())))?;
    let offset = t.offset();
    Ok(Date::new(year)
        .month(u8::from(t.month()))
        .day(t.day())
        .hour(t.hour())
        .minute(t.minute())
        .second(t.second())
        .utc_offset_hour(offset.whole_hours())
        .utc_offset_minute(offset.minutes_past_hour().unsigned_abs()))
}

fn title_block(lay: &mut Layout, doc: &Document) {
    let title = wrap(&encode(&doc.title), Font::Bold, 22.0, TEXT_W);
    lay.lines(MARGIN_X, &title, Font::Bold, 22.0, 27.0);
    if let Some(sub) = &doc.subtitle {
        lay.y += 2.0;
        for line in wrap(&encode(sub), Font::Regular, 13.0, TEXT_W) {
            lay.ensure(17.0);
            let at = (MARGIN_X, lay.y + baseline(13.0, 17.0));
            show(&mut lay.page, at, Font::Regular, 13.0, GREY, &line);
            lay.y += 17.0;
        }
    }
    lay.y += 8.0;
    hline(
        &mut lay.page,
        MARGIN_X,
        MARGIN_X + TEXT_W,
        lay.y,
        ACCENT,
        1.5,
    );
    lay.y += 8.0;
    if !doc.meta.is_empty() {
        key_values(lay, &doc.meta, 9.5, 12.5);
        lay.y += 4.0;
        hline(&mut lay.page, MARGIN_X, MARGIN_X + TEXT_W, lay.y, RULE, 0.5);
    }
    lay.y += 22.0;
}

struct HeadingStyle {
    size: f32,
    leading: f32,
    before: f32,
    after: f32,
}

fn heading_style(depth: usize) -> HeadingStyle {
    match depth {
        1 => HeadingStyle {
            size: 15.0,
            leading: 19.0,
            before: 16.0,
            after: 8.0,
        },
        2 => HeadingStyle {
            size: 12.5,
            leading: 16.0,
            before: 12.0,
            after: 5.0,
        },
        _ => HeadingStyle {
            size: 11.0,
            leading: 14.0,
            before: 9.0,
            after: 4.0,
        },
    }
}

/// Number and title of a heading laid out with a hanging indent: `(number, indent, lines)`.
fn heading_lines(number: &str, title: &str, st: &HeadingStyle) -> (Vec<u8>, f32, Vec<Vec<u8>>) {
    let num = encode(number);
    let indent = text_width(&num, Font::Bold, st.size) + 0.6 * st.size;
    let lines = wrap(&encode(title), Font::Bold, st.size, TEXT_W - indent);
    (num, indent, lines)
}

fn heading_height(number: &str, title: &str, depth: usize) -> f32 {
    let st = heading_style(depth);
    let (_, _, lines) = heading_lines(number, title, &st);
    lines.len().max(1) as f32 * st.leading + st.after
}

/// Height of what must stay on the same page as a section's heading: the start of its first
/// block, or the heading and start of its first subsection.
fn keep_with_heading(s: &Section, number: &str, depth: usize) -> f32 {
    if let Some(b) = s.blocks.first() {
        return block_start_height(b);
    }
    match s.children.first() {
        Some(c) => {
            let n = format!("{number}.1");
            heading_height(&n, &c.title, depth + 1) + keep_with_heading(c, &n, depth + 1)
        }
        None => 0.0,
    }
}

/// Height of the part of a block that a page must hold before the block may start there.
fn block_start_height(b: &Block) -> f32 {
    match b {
        Block::Paragraph(p) => {
            let n = wrap(&encode(p), Font::Regular, BODY_SIZE, TEXT_W).len();
            n.min(2) as f32 * BODY_LEADING
        }
        Block::Bullets(items) => items.first().map_or(0.0, |i| {
            let n = wrap(&encode(i), Font::Regular, BODY_SIZE, TEXT_W - BULLET_INDENT).len();
            n.clamp(1, 2) as f32 * BODY_LEADING
        }),
        Block::KeyValue(pairs) => {
            let kv = KvLayout::new(pairs, BODY_SIZE);
            kv.rows.first().map_or(0.0, |r| r.height(BODY_LEADING))
        }
        Block::Table(t) => {
            let tl = TableLayout::new(t);
            tl.caption_h() + tl.header_h + tl.rows.first().map_or(0.0, |r| r.height())
        }
        Block::Diagram(d) => DiagramLayout::new(d).total_h,
        Block::Callout(text) => {
            let n = wrap(&encode(text), Font::Regular, BODY_SIZE, CALLOUT_TEXT_W).len();
            n.clamp(1, 2) as f32 * BODY_LEADING + 2.0 * CALLOUT_PAD
        }
    }
}

fn section(lay: &mut Layout, s: &Section, number: &[usize]) {
    let depth = number.len();
    let num = number
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".");
    let st = heading_style(depth);
    let (num_bytes, indent, lines) = heading_lines(&num, &s.title, &st);
    let h = lines.len().max(1) as f32 * st.leading;
    lay.gap(st.before);
    let keep = h + st.after + keep_with_heading(s, &num, depth);
    lay.ensure(keep.min(USABLE_H));
    lay.outline.push(OutlineEntry {
        depth: depth - 1,
        title: format!("{num} {}", s.title),
        page: lay.done.len(),
        y: lay.y,
    });
    let color = if depth == 1 { ACCENT } else { BLACK };
    let base = lay.y + baseline(st.size, st.leading);
    show(
        &mut lay.page,
        (MARGIN_X, base),
        Font::Bold,
        st.size,
        color,
        &num_bytes,
    );
    for (i, line) in lines.iter().enumerate() {
        let at = (MARGIN_X + indent, base + i as f32 * st.leading);
        show(&mut lay.page, at, Font::Bold, st.size, color, line);
    }
    lay.y += h;
    if depth == 1 {
        hline(
            &mut lay.page,
            MARGIN_X,
            MARGIN_X + TEXT_W,
            lay.y + 2.0,
            RULE,
            0.6,
        );
    }
    lay.y += st.after;
    for (i, b) in s.blocks.iter().enumerate() {
        if i > 0 {
            lay.gap(BLOCK_GAP);
        }
        block(lay, b);
    }
    for (i, c) in s.children.iter().enumerate() {
        let mut n = number.to_vec();
        n.push(i + 1);
        section(lay, c, &n);
    }
}

fn block(lay: &mut Layout, b: &Block) {
    match b {
        Block::Paragraph(p) => paragraph(lay, p),
        Block::Bullets(items) => bullets(lay, items),
        Block::KeyValue(pairs) => key_values(lay, pairs, BODY_SIZE, BODY_LEADING),
        Block::Table(t) => table(lay, t),
        Block::Diagram(d) => diagram(lay, d),
        Block::Callout(text) => callout(lay, text),
    }
}

fn paragraph(lay: &mut Layout, text: &str) {
    let lines = wrap(&encode(text), Font::Regular, BODY_SIZE, TEXT_W);
    // No single line of a paragraph left alone at the bottom of a page.
    lay.ensure(lines.len().min(2) as f32 * BODY_LEADING);
    lay.lines(MARGIN_X, &lines, Font::Regular, BODY_SIZE, BODY_LEADING);
}

const BULLET_INDENT: f32 = 16.0;

fn bullets(lay: &mut Layout, items: &[String]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            lay.y += 2.0;
        }
        let lines = wrap(
            &encode(item),
            Font::Regular,
            BODY_SIZE,
            TEXT_W - BULLET_INDENT,
        );
        lay.ensure(lines.len().clamp(1, 2) as f32 * BODY_LEADING);
        let at = (MARGIN_X + 4.0, lay.y + baseline(BODY_SIZE, BODY_LEADING));
        show(
            &mut lay.page,
            at,
            Font::Regular,
            BODY_SIZE,
            ACCENT,
            &[BULLET],
        );
        if lines.is_empty() {
            lay.y += BODY_LEADING;
        }
        lay.lines(
            MARGIN_X + BULLET_INDENT,
            &lines,
            Font::Regular,
            BODY_SIZE,
            BODY_LEADING,
        );
    }
}

struct KvRow {
    key: Vec<Vec<u8>>,
    value: Vec<Vec<u8>>,
}

impl KvRow {
    fn height(&self, leading: f32) -> f32 {
        self.key.len().max(self.value.len()).max(1) as f32 * leading
    }
}

/// Key-value list as two columns: bold keys, wrapped values.
struct KvLayout {
    key_w: f32,
    rows: Vec<KvRow>,
}

impl KvLayout {
    fn new(pairs: &[(String, String)], size: f32) -> KvLayout {
        let widest = pairs
            .iter()
            .map(|(k, _)| longest_line(&encode(k), Font::Bold, size))
            .fold(0.0, f32::max);
        let key_w = (widest + 14.0).clamp(70.0, TEXT_W * 0.38);
        let rows = pairs
            .iter()
            .map(|(k, v)| KvRow {
                key: wrap(&encode(k), Font::Bold, size, key_w - 10.0),
                value: wrap(&encode(v), Font::Regular, size, TEXT_W - key_w),
            })
            .collect();
        KvLayout { key_w, rows }
    }
}

fn key_values(lay: &mut Layout, pairs: &[(String, String)], size: f32, leading: f32) {
    let kv = KvLayout::new(pairs, size);
    for (i, row) in kv.rows.iter().enumerate() {
        if i > 0 {
            lay.y += 2.0;
        }
        // A row stays on one page unless it is taller than a page.
        lay.ensure(row.height(leading).min(USABLE_H));
        let n = row.key.len().max(row.value.len()).max(1);
        for li in 0..n {
            lay.ensure(leading);
            let base = lay.y + baseline(size, leading);
            if let Some(k) = row.key.get(li) {
                show(&mut lay.page, (MARGIN_X, base), Font::Bold, size, DARK, k);
            }
            if let Some(v) = row.value.get(li) {
                let at = (MARGIN_X + kv.key_w, base);
                show(&mut lay.page, at, Font::Regular, size, BLACK, v);
            }
            lay.y += leading;
        }
    }
}

const CALLOUT_PAD: f32 = 7.0;
const CALLOUT_BAR_W: f32 = 3.5;
const CALLOUT_TEXT_W: f32 = TEXT_W - 2.0 * CALLOUT_PAD - CALLOUT_BAR_W;

/// A shaded box with an accent bar; a long one continues on the next page as another box.
fn callout(lay: &mut Layout, text: &str) {
    let lines = wrap(&encode(text), Font::Regular, BODY_SIZE, CALLOUT_TEXT_W);
    let n = lines.len().max(1);
    lay.ensure((n.min(2) as f32 * BODY_LEADING + 2.0 * CALLOUT_PAD).min(USABLE_H));
    let mut from = 0;
    while from < n {
        let room = CONTENT_BOTTOM - lay.y - 2.0 * CALLOUT_PAD + EPS;
        let mut fit = (room / BODY_LEADING).floor().max(0.0) as usize;
        if fit == 0 {
            if !lay.at_top() {
                lay.new_page();
                continue;
            }
            fit = 1;
        }
        let fit = fit.min(n - from);
        let h = fit as f32 * BODY_LEADING + 2.0 * CALLOUT_PAD;
        fill_rect(&mut lay.page, (MARGIN_X, lay.y, TEXT_W, h), CALLOUT_FILL);
        fill_rect(
            &mut lay.page,
            (MARGIN_X, lay.y, CALLOUT_BAR_W, h),
            CALLOUT_BAR,
        );
        let x = MARGIN_X + CALLOUT_BAR_W + CALLOUT_PAD;
        for (i, line) in lines.iter().skip(from).take(fit).enumerate() {
            let base =
                lay.y + CALLOUT_PAD + i as f32 * BODY_LEADING + baseline(BODY_SIZE, BODY_LEADING);
            show(
                &mut lay.page,
                (x, base),
                Font::Regular,
                BODY_SIZE,
                BLACK,
                line,
            );
        }
        lay.y += h;
        from += fit;
        if from < n {
            lay.new_page();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tables.

struct TableRow {
    cells: Vec<Vec<Vec<u8>>>,
    lines: usize,
}

impl TableRow {
    fn new(cells: &[Vec<u8>], widths: &[f32], font: Font) -> TableRow {
        let cells: Vec<Vec<Vec<u8>>> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| wrap(c, font, TABLE_SIZE, w - 2.0 * CELL_PAD_X))
            .collect();
        let lines = cells.iter().map(Vec::len).max().unwrap_or(0).max(1);
        TableRow { cells, lines }
    }

    fn height(&self) -> f32 {
        part_height(self.lines)
    }
}

fn part_height(lines: usize) -> f32 {
    lines as f32 * TABLE_LEADING + 2.0 * CELL_PAD_Y
}

struct TableLayout {
    widths: Vec<f32>,
    caption: Vec<Vec<u8>>,
    header: TableRow,
    header_h: f32,
    rows: Vec<TableRow>,
}

const CAPTION_SIZE: f32 = 9.0;
const CAPTION_LEADING: f32 = 12.0;

impl TableLayout {
    fn new(t: &Table) -> TableLayout {
        let header: Vec<Vec<u8>> = t.header.iter().map(|h| encode(h)).collect();
        let rows: Vec<Vec<Vec<u8>>> = t
            .rows
            .iter()
            .map(|r| r.iter().map(|c| encode(c)).collect())
            .collect();
        let widths = column_widths(&header, &rows);
        let caption = t.caption.as_deref().map_or_else(Vec::new, |c| {
            wrap(&encode(c), Font::Bold, CAPTION_SIZE, TEXT_W)
        });
        let header = TableRow::new(&header, &widths, Font::Bold);
        let header_h = header.height();
        let rows = rows
            .iter()
            .map(|r| TableRow::new(r, &widths, Font::Regular))
            .collect();
        TableLayout {
            widths,
            caption,
            header,
            header_h,
            rows,
        }
    }

    fn caption_h(&self) -> f32 {
        if self.caption.is_empty() {
            0.0
        } else {
            self.caption.len() as f32 * CAPTION_LEADING + 3.0
        }
    }
}

/// Column widths from content: every column at least its longest word and at most its longest
/// line (both bounded, so one hash or one paragraph cannot starve the others), the room left
/// shared by how much more each column would like, and the table filling the text width.
fn column_widths(header: &[Vec<u8>], rows: &[Vec<Vec<u8>>]) -> Vec<f32> {
    let n = header.len();
    if n == 0 {
        return Vec::new();
    }
    if n as f32 * MIN_COL >= TEXT_W {
        return vec![TEXT_W / n as f32; n];
    }
    let pad = 2.0 * CELL_PAD_X;
    let word_cap = TEXT_W * 0.25;
    let mut min_w = Vec::with_capacity(n);
    let mut nat_w = Vec::with_capacity(n);
    for (c, h) in header.iter().enumerate() {
        let mut natural = longest_line(h, Font::Bold, TABLE_SIZE);
        let mut word = longest_word(h, Font::Bold, TABLE_SIZE);
        for cell in rows.iter().filter_map(|r| r.get(c)) {
            natural = natural.max(longest_line(cell, Font::Regular, TABLE_SIZE));
            word = word.max(longest_word(cell, Font::Regular, TABLE_SIZE));
        }
        let lo = (word + pad).clamp(MIN_COL, word_cap);
        min_w.push(lo);
        nat_w.push((natural + pad).min(TEXT_W * 0.6).max(lo));
    }
    let sum_nat: f32 = nat_w.iter().sum();
    if sum_nat <= TEXT_W {
        return nat_w.iter().map(|w| w * TEXT_W / sum_nat).collect();
    }
    // A column whose natural width is within an equal share of the room still unassigned gets
    // it whole (short ids and versions stay on one line); repeated, since each such column
    // leaves more for the rest. The remaining columns share what is left.
    let mut fixed = vec![false; n];
    let mut room = TEXT_W;
    loop {
        let open = fixed.iter().filter(|f| !**f).count();
        if open == 0 {
            break;
        }
        let share = room / open as f32;
        let mut changed = false;
        for (i, f) in fixed.iter_mut().enumerate() {
            let nat = nat_w.get(i).copied().unwrap_or(0.0);
            if !*f && nat <= share {
                *f = true;
                room -= nat;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let open: Vec<usize> = (0..n)
        .filter(|i| !fixed.get(*i).copied().unwrap_or(true))
        .collect();
    let (mut min_open, mut flex) = (0.0_f32, 0.0_f32);
    for &i in &open {
        let (lo, nat) = (
            min_w.get(i).copied().unwrap_or(0.0),
            nat_w.get(i).copied().unwrap_or(0.0),
        );
        min_open += lo;
        flex += nat - lo;
    }
    if !open.is_empty() && min_open <= room {
        let extra = room - min_open;
        return (0..n)
            .map(|i| {
                let (lo, nat) = (
                    min_w.get(i).copied().unwrap_or(0.0),
                    nat_w.get(i).copied().unwrap_or(0.0),
                );
                if fixed.get(i).copied().unwrap_or(false) {
                    nat
                } else if flex > 0.0 {
                    lo + extra * (nat - lo) / flex
                } else {
                    lo + extra / open.len() as f32
                }
            })
            .collect();
    }
    // Even the narrowest widths do not fit next to the satisfied columns: share by word widths.
    let sum_min: f32 = min_w.iter().sum();
    if sum_min >= TEXT_W {
        return min_w.iter().map(|w| w * TEXT_W / sum_min).collect();
    }
    let flex: f32 = nat_w.iter().zip(&min_w).map(|(n, m)| n - m).sum();
    let extra = TEXT_W - sum_min;
    nat_w
        .iter()
        .zip(&min_w)
        .map(|(n, m)| m + extra * (n - m) / flex)
        .collect()
}

/// Draws lines `from..from + count` of a row as one band of cells.
fn draw_row_part(
    lay: &mut Layout,
    widths: &[f32],
    row: &TableRow,
    part: (usize, usize),
    header: bool,
    zebra: bool,
) {
    let (from, count) = part;
    let h = part_height(count);
    let total: f32 = widths.iter().sum();
    if header {
        fill_rect(&mut lay.page, (MARGIN_X, lay.y, total, h), HEADER_FILL);
    } else if zebra {
        fill_rect(&mut lay.page, (MARGIN_X, lay.y, total, h), ZEBRA_FILL);
    }
    let mut x = MARGIN_X;
    for w in widths {
        stroke_rect(&mut lay.page, (x, lay.y, *w, h), RULE, 0.5);
        x += w;
    }
    let font = if header { Font::Bold } else { Font::Regular };
    let color = if header { DARK } else { BLACK };
    let mut x = MARGIN_X;
    for (cell, w) in row.cells.iter().zip(widths) {
        for (i, line) in cell.iter().skip(from).take(count).enumerate() {
            let base =
                lay.y + CELL_PAD_Y + i as f32 * TABLE_LEADING + baseline(TABLE_SIZE, TABLE_LEADING);
            show(
                &mut lay.page,
                (x + CELL_PAD_X, base),
                font,
                TABLE_SIZE,
                color,
                line,
            );
        }
        x += w;
    }
    lay.y += h;
}

fn table(lay: &mut Layout, t: &Table) {
    let tl = TableLayout::new(t);
    if tl.widths.is_empty() {
        return;
    }
    let first = tl.rows.first().map_or(0.0, TableRow::height);
    lay.ensure((tl.caption_h() + tl.header_h + first).min(USABLE_H));
    if !tl.caption.is_empty() {
        for line in &tl.caption {
            let at = (MARGIN_X, lay.y + baseline(CAPTION_SIZE, CAPTION_LEADING));
            show(&mut lay.page, at, Font::Bold, CAPTION_SIZE, DARK, line);
            lay.y += CAPTION_LEADING;
        }
        lay.y += 3.0;
    }
    let header_part = (0, tl.header.lines);
    draw_row_part(lay, &tl.widths, &tl.header, header_part, true, false);
    let break_page = |lay: &mut Layout| {
        lay.new_page();
        draw_row_part(lay, &tl.widths, &tl.header, header_part, true, false);
    };
    for (i, row) in tl.rows.iter().enumerate() {
        let zebra = i % 2 == 1;
        let h = row.height();
        if lay.fits(h) {
            draw_row_part(lay, &tl.widths, row, (0, row.lines), false, zebra);
            continue;
        }
        if h + tl.header_h <= USABLE_H + EPS {
            break_page(lay);
            draw_row_part(lay, &tl.widths, row, (0, row.lines), false, zebra);
            continue;
        }
        // Taller than a page: the only row that is split, at line boundaries.
        let mut from = 0;
        let mut fresh = false;
        while from < row.lines {
            let room = CONTENT_BOTTOM - lay.y - 2.0 * CELL_PAD_Y + EPS;
            let mut fit = (room / TABLE_LEADING).floor().max(0.0) as usize;
            if fit == 0 {
                if !fresh {
                    break_page(lay);
                    fresh = true;
                    continue;
                }
                fit = 1;
            }
            let fit = fit.min(row.lines - from);
            draw_row_part(lay, &tl.widths, row, (from, fit), false, zebra);
            from += fit;
            fresh = false;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Diagrams.

const LEGEND_SIZE: f32 = 8.5;
const LEGEND_ROW: f32 = 13.0;
const LEGEND_SAMPLE: f32 = 26.0;
const DIAGRAM_TITLE_SIZE: f32 = 10.0;
const DIAGRAM_TITLE_LEADING: f32 = 14.0;

struct LegendItem {
    style: EdgeStyle,
    text: Vec<u8>,
    x: f32,
    row: usize,
}

/// Scale and vertical budget of a diagram: title, picture scaled to the text width (smaller if
/// it would not fit on a page), legend rows.
struct DiagramLayout {
    scale: f32,
    title: Vec<Vec<u8>>,
    legend: Vec<LegendItem>,
    legend_h: f32,
    total_h: f32,
}

impl DiagramLayout {
    fn new(d: &Diagram) -> DiagramLayout {
        let title = wrap(&encode(&d.title), Font::Bold, DIAGRAM_TITLE_SIZE, TEXT_W);
        let title_h = if title.is_empty() {
            0.0
        } else {
            title.len() as f32 * DIAGRAM_TITLE_LEADING + 4.0
        };
        let mut legend = Vec::new();
        let (mut x, mut row) = (0.0_f32, 0_usize);
        let text_max = TEXT_W - LEGEND_SAMPLE - 5.0;
        for (style, text) in &d.legend {
            let text = truncate(&encode(text), Font::Regular, LEGEND_SIZE, text_max);
            let w = LEGEND_SAMPLE + 5.0 + text_width(&text, Font::Regular, LEGEND_SIZE);
            if x > 0.0 && x + w > TEXT_W {
                x = 0.0;
                row += 1;
            }
            legend.push(LegendItem {
                style: *style,
                text,
                x,
                row,
            });
            x += w + 16.0;
        }
        let legend_h = if legend.is_empty() {
            0.0
        } else {
            6.0 + (row + 1) as f32 * LEGEND_ROW
        };
        let room = (USABLE_H - title_h - legend_h).max(USABLE_H * 0.3);
        let mut scale = TEXT_W / d.width;
        if d.height * scale > room {
            scale = room / d.height;
        }
        let total_h = title_h + d.height * scale + legend_h;
        DiagramLayout {
            scale,
            title,
            legend,
            legend_h,
            total_h,
        }
    }
}

/// Maps diagram coordinates onto the page.
#[derive(Clone, Copy)]
struct Frame {
    x0: f32,
    y0: f32,
    s: f32,
    w: f32,
    h: f32,
}

impl Frame {
    fn pt(&self, (x, y): (f32, f32)) -> (f32, f32) {
        (self.x0 + x * self.s, self.y0 + y * self.s)
    }

    fn rect(&self, n: &Node) -> (f32, f32, f32, f32) {
        let (x, y) = self.pt((n.x, n.y));
        (x, y, n.w * self.s, n.h * self.s)
    }
}

fn diagram(lay: &mut Layout, d: &Diagram) {
    let dl = DiagramLayout::new(d);
    // A diagram is never split: it fits a page by construction, so start one if needed.
    lay.ensure(dl.total_h.min(USABLE_H));
    for line in &dl.title {
        let at = (
            MARGIN_X,
            lay.y + baseline(DIAGRAM_TITLE_SIZE, DIAGRAM_TITLE_LEADING),
        );
        show(
            &mut lay.page,
            at,
            Font::Bold,
            DIAGRAM_TITLE_SIZE,
            DARK,
            line,
        );
        lay.y += DIAGRAM_TITLE_LEADING;
    }
    if !dl.title.is_empty() {
        lay.y += 4.0;
    }
    let s = dl.scale;
    let f = Frame {
        x0: MARGIN_X + (TEXT_W - d.width * s) / 2.0,
        y0: lay.y,
        s,
        w: d.width * s,
        h: d.height * s,
    };
    let c = &mut lay.page;
    c.save_state();
    c.set_line_join(LineJoinStyle::RoundJoin);
    for n in d.nodes.iter().filter(|n| n.kind == NodeKind::Boundary) {
        boundary(c, n, f);
    }
    for n in d.nodes.iter().filter(|n| n.kind != NodeKind::Boundary) {
        node(c, n, f);
    }
    let arrow = (7.0 * s).clamp(4.0, 8.0);
    for e in &d.edges {
        let pts: Vec<(f32, f32)> = e.points.iter().map(|p| f.pt(*p)).collect();
        styled_polyline(c, &pts, e.style, (e.both_ways, true), arrow);
    }
    for e in &d.edges {
        if let Some(label) = &e.label {
            let pts: Vec<(f32, f32)> = e.points.iter().map(|p| f.pt(*p)).collect();
            edge_label(c, &pts, label, e.style, f);
        }
    }
    c.restore_state();
    lay.y += f.h;
    if !dl.legend.is_empty() {
        lay.y += 6.0;
        let top = lay.y;
        for item in &dl.legend {
            let y = top + item.row as f32 * LEGEND_ROW;
            let x = MARGIN_X + item.x;
            let mid = y + LEGEND_ROW / 2.0;
            let c = &mut lay.page;
            c.save_state();
            styled_polyline(
                c,
                &[(x, mid), (x + LEGEND_SAMPLE, mid)],
                item.style,
                (false, true),
                5.0,
            );
            c.restore_state();
            let at = (
                x + LEGEND_SAMPLE + 5.0,
                y + baseline(LEGEND_SIZE, LEGEND_ROW),
            );
            show(c, at, Font::Regular, LEGEND_SIZE, DARK, &item.text);
        }
        lay.y = top + dl.legend_h - 6.0;
    }
}

/// Trust boundary: dashed box behind the nodes with its label in the top-left corner.
fn boundary(c: &mut Content, n: &Node, f: Frame) {
    let r = f.rect(n);
    c.save_state();
    c.set_fill_rgb(0.97, 0.975, 0.99);
    c.set_stroke_rgb(GREY.0, GREY.1, GREY.2);
    c.set_line_width(1.0);
    c.set_dash_pattern([5.0, 3.0], 0.0);
    rounded_rect_path(c, r, 4.0 * f.s);
    c.fill_nonzero_and_stroke();
    c.restore_state();
    let size = (9.0 * f.s).clamp(7.0, 9.0);
    let max_w = (r.2 - 8.0).max(1.0);
    let label = truncate(&encode(&n.label), Font::Bold, size, max_w);
    let mut y = r.1 + 3.0 + size;
    show(c, (r.0 + 4.0, y), Font::Bold, size, GREY, &label);
    if let Some(sub) = &n.sublabel {
        y += size * 1.15;
        let sub = truncate(&encode(sub), Font::Oblique, size * 0.9, max_w);
        show(c, (r.0 + 4.0, y), Font::Oblique, size * 0.9, GREY, &sub);
    }
}

/// One shape per kind: device rounded, server with a header band, external system with cut
/// corners, person as a pill.
fn node(c: &mut Content, n: &Node, f: Frame) {
    let r @ (x, y, w, h) = f.rect(n);
    let (fill, stroke) = match n.kind {
        NodeKind::Device => (Rgb(0.86, 0.91, 0.99), ACCENT),
        NodeKind::Server => (Rgb(0.9, 0.96, 0.91), Rgb(0.18, 0.42, 0.26)),
        NodeKind::External => (Rgb(0.94, 0.94, 0.95), GREY),
        NodeKind::Person | NodeKind::Boundary => (Rgb(1.0, 0.95, 0.86), Rgb(0.62, 0.42, 0.1)),
    };
    c.set_fill_rgb(fill.0, fill.1, fill.2);
    c.set_stroke_rgb(stroke.0, stroke.1, stroke.2);
    c.set_line_width(1.1);
    let mut band = 0.0;
    match n.kind {
        NodeKind::Device => rounded_rect_path(c, r, 7.0 * f.s),
        NodeKind::Server => {
            c.rect(x, pdf_y(y + h), w, h);
            band = (6.0 * f.s).clamp(2.0, 6.0).min(h * 0.25);
        }
        NodeKind::External => {
            let k = (9.0 * f.s).min(w / 4.0).min(h / 4.0);
            let pts = [
                (x + k, y),
                (x + w - k, y),
                (x + w, y + k),
                (x + w, y + h - k),
                (x + w - k, y + h),
                (x + k, y + h),
                (x, y + h - k),
                (x, y + k),
            ];
            polygon_path(c, &pts);
        }
        NodeKind::Person | NodeKind::Boundary => rounded_rect_path(c, r, w.min(h) / 2.0),
    }
    c.fill_nonzero_and_stroke();
    if band > 0.0 {
        fill_rect(c, (x, y, w, band), stroke);
    }
    node_text(
        c,
        n,
        (x, y + band, w, h - band),
        (9.5 * f.s).clamp(7.0, 10.0),
    );
}

/// Label (bold) and sublabel (oblique) centred in the box, wrapped, shrunk until they fit.
fn node_text(c: &mut Content, n: &Node, (x, y, w, h): (f32, f32, f32, f32), size: f32) {
    let label = encode(&n.label);
    let sub = n.sublabel.as_deref().map(encode).unwrap_or_default();
    let inner_w = (w - 8.0).max(4.0);
    let inner_h = (h - 4.0).max(4.0);
    let mut size = size;
    let (lines, subs, lead, sub_lead) = loop {
        let sub_size = size * 0.85;
        let lines = wrap(&label, Font::Bold, size, inner_w);
        let subs = wrap(&sub, Font::Oblique, sub_size, inner_w);
        let (lead, sub_lead) = (size * 1.2, sub_size * 1.2);
        let th = lines.len() as f32 * lead + subs.len() as f32 * sub_lead;
        if th <= inner_h || size <= 4.5 {
            break (lines, subs, lead, sub_lead);
        }
        size -= 0.5;
    };
    let sub_size = size * 0.85;
    let th = lines.len() as f32 * lead + subs.len() as f32 * sub_lead;
    let mut top = y + (h - th) / 2.0;
    for line in &lines {
        let lw = text_width(line, Font::Bold, size);
        let at = (x + (w - lw) / 2.0, top + baseline(size, lead));
        show(c, at, Font::Bold, size, BLACK, line);
        top += lead;
    }
    for line in &subs {
        let lw = text_width(line, Font::Oblique, sub_size);
        let at = (x + (w - lw) / 2.0, top + baseline(sub_size, sub_lead));
        show(c, at, Font::Oblique, sub_size, DARK, line);
        top += sub_lead;
    }
}

fn style_pen(style: EdgeStyle) -> (Rgb, f32, Option<[f32; 2]>) {
    match style {
        EdgeStyle::Weak => (WEAK, 1.3, Some([4.0, 2.5])),
        EdgeStyle::Secure => (SECURE, 1.4, None),
        EdgeStyle::Flow => (FLOW, 1.0, None),
    }
}

/// A point in top-down page coordinates.
type Pt = (f32, f32);

/// An arrowhead and where the line it ends should stop.
struct Arrow {
    tri: [Pt; 3],
    stop: Pt,
}

/// Arrowhead triangle whose tip is `tip`, pointing away from `from`, and the point where the
/// line should stop so its stroke does not show through the tip.
fn arrowhead(from: Pt, tip: Pt, size: f32) -> Option<Arrow> {
    let (dx, dy) = (tip.0 - from.0, tip.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len < 0.01 {
        return None;
    }
    let (ux, uy) = (dx / len, dy / len);
    let base = (tip.0 - ux * size, tip.1 - uy * size);
    let half = size * 0.42;
    let tri = [
        tip,
        (base.0 - uy * half, base.1 + ux * half),
        (base.0 + uy * half, base.1 - ux * half),
    ];
    let stop = if len > size { base } else { from };
    Some(Arrow { tri, stop })
}

/// Strokes a polyline (page coordinates, top-down) in the edge style with arrowheads at the
/// start and/or end. The caller saves and restores the graphics state.
fn styled_polyline(
    c: &mut Content,
    pts: &[(f32, f32)],
    style: EdgeStyle,
    (at_start, at_end): (bool, bool),
    size: f32,
) {
    let (color, width, dash) = style_pen(style);
    let mut line = pts.to_vec();
    let mut heads = Vec::new();
    if at_end
        && let [.., a, b] = pts
        && let Some(Arrow { tri, stop }) = arrowhead(*a, *b, size)
    {
        heads.push(tri);
        if let Some(last) = line.last_mut() {
            *last = stop;
        }
    }
    if at_start
        && let [a, b, ..] = pts
        && let Some(Arrow { tri, stop }) = arrowhead(*b, *a, size)
    {
        heads.push(tri);
        if let Some(first) = line.first_mut() {
            *first = stop;
        }
    }
    c.set_stroke_rgb(color.0, color.1, color.2);
    c.set_line_width(width);
    c.set_line_cap(LineCapStyle::ButtCap);
    match dash {
        Some(d) => c.set_dash_pattern(d, 0.0),
        None => c.set_dash_pattern([], 0.0),
    };
    let mut first = true;
    for (x, y) in &line {
        if first {
            c.move_to(*x, pdf_y(*y));
            first = false;
        } else {
            c.line_to(*x, pdf_y(*y));
        }
    }
    c.stroke();
    c.set_fill_rgb(color.0, color.1, color.2);
    for tri in &heads {
        polygon_path(c, tri);
        c.fill_nonzero();
    }
}

/// Edge label on a white background at the middle of the middle segment (the longer of the two
/// middle ones for an even count), kept inside the diagram.
fn edge_label(c: &mut Content, pts: &[(f32, f32)], label: &str, style: EdgeStyle, f: Frame) {
    let segs: Vec<(Pt, Pt)> = pts
        .iter()
        .copied()
        .zip(pts.iter().copied().skip(1))
        .collect();
    let m = segs.len();
    if m == 0 {
        return;
    }
    let seg_len = |i: usize| {
        segs.get(i).map_or(0.0, |(a, b)| {
            ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt()
        })
    };
    let idx = if m % 2 == 1 || m < 2 || seg_len(m / 2) >= seg_len(m / 2 - 1) {
        m / 2
    } else {
        m / 2 - 1
    };
    let Some((a, b)) = segs.get(idx) else {
        return;
    };
    let (mx, my) = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
    let size = (7.5 * f.s).clamp(6.5, 8.0);
    let lead = size * 1.2;
    let lines = wrap(&encode(label), Font::Regular, size, 110.0_f32.min(f.w));
    if lines.is_empty() {
        return;
    }
    let bw = lines
        .iter()
        .map(|l| text_width(l, Font::Regular, size))
        .fold(0.0, f32::max)
        + 4.0;
    let bh = lines.len() as f32 * lead + 2.0;
    let bx = (mx - bw / 2.0).min(f.x0 + f.w - bw).max(f.x0);
    let by = (my - bh / 2.0).min(f.y0 + f.h - bh).max(f.y0);
    fill_rect(c, (bx, by, bw, bh), WHITE);
    let color = match style {
        EdgeStyle::Weak => WEAK,
        EdgeStyle::Secure => SECURE,
        EdgeStyle::Flow => DARK,
    };
    for (i, line) in lines.iter().enumerate() {
        let lw = text_width(line, Font::Regular, size);
        let at = (
            bx + (bw - lw) / 2.0,
            by + 1.0 + i as f32 * lead + baseline(size, lead),
        );
        show(c, at, Font::Regular, size, color, line);
    }
}

// ---------------------------------------------------------------------------------------------
// Serialisation.

fn footer(c: &mut Content, title: &[u8], page: usize, total: usize) {
    let size = 8.0;
    hline(c, MARGIN_X, MARGIN_X + TEXT_W, FOOTER_RULE, RULE, 0.5);
    let label = encode(&format!("page {page} of {total}"));
    let label_w = text_width(&label, Font::Regular, size);
    let right = MARGIN_X + TEXT_W;
    show(
        c,
        (right - label_w, FOOTER_BASELINE),
        Font::Regular,
        size,
        GREY,
        &label,
    );
    let title = truncate(title, Font::Regular, size, TEXT_W - label_w - 24.0);
    show(
        c,
        (MARGIN_X, FOOTER_BASELINE),
        Font::Regular,
        size,
        GREY,
        &title,
    );
}

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn emit(doc: &Document, pages: Vec<Content>, outline: &[OutlineEntry], date: Date) -> Vec<u8> {
    let mut alloc = Ref::new(1);
    let catalog_id = alloc.bump();
    let tree_id = alloc.bump();
    let info_id = alloc.bump();
    let font_ids: Vec<Ref> = Font::ALL.iter().map(|_| alloc.bump()).collect();
    let outline_id = alloc.bump();
    let page_ids: Vec<(Ref, Ref)> = pages.iter().map(|_| (alloc.bump(), alloc.bump())).collect();
    let item_ids: Vec<Ref> = outline.iter().map(|_| alloc.bump()).collect();

    let mut pdf = Pdf::new();
    {
        let mut catalog = pdf.catalog(catalog_id);
        catalog.pages(tree_id);
        if !outline.is_empty() {
            catalog.outlines(outline_id);
            catalog.page_mode(PageMode::UseOutlines);
        }
        catalog.viewer_preferences().display_doc_title(true);
    }
    pdf.pages(tree_id)
        .kids(page_ids.iter().map(|(p, _)| *p))
        .count(count_i32(page_ids.len()));
    for (font, id) in Font::ALL.iter().zip(&font_ids) {
        pdf.type1_font(*id)
            .base_font(font.base_font())
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    let total = pages.len();
    let title = encode(&doc.title);
    for (i, (mut content, (page_id, content_id))) in pages.into_iter().zip(&page_ids).enumerate() {
        footer(&mut content, &title, i + 1, total);
        let data = content.finish();
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree_id)
            .contents(*content_id);
        {
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            for (font, id) in Font::ALL.iter().zip(&font_ids) {
                fonts.pair(font.resource(), *id);
            }
        }
        page.finish();
        pdf.stream(*content_id, &data);
    }
    if !outline.is_empty() {
        write_outline(&mut pdf, outline, outline_id, &item_ids, &page_ids);
    }
    let mut info = pdf.document_info(info_id);
    info.title(TextStr(&doc.title))
        .producer(TextStr("medsec"))
        .creation_date(date);
    if let Some(sub) = &doc.subtitle {
        info.subject(TextStr(sub));
    }
    info.finish();
    pdf.finish()
}

/// Bookmarks mirror the section tree (entries arrive in document order with their depth), all
/// expanded, each pointing at its heading.
fn write_outline(
    pdf: &mut Pdf,
    entries: &[OutlineEntry],
    root: Ref,
    ids: &[Ref],
    pages: &[(Ref, Ref)],
) {
    let n = entries.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut top: Vec<usize> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        while stack
            .last()
            .is_some_and(|&s| entries.get(s).is_some_and(|p| p.depth >= e.depth))
        {
            stack.pop();
        }
        match stack.last() {
            Some(&p) => {
                if let Some(ch) = children.get_mut(p) {
                    ch.push(i);
                }
            }
            None => top.push(i),
        }
        stack.push(i);
    }
    // Open items count every descendant, which in document order are the entries that follow
    // until one at the same or a shallower depth.
    let descendants = |i: usize| {
        let d = entries.get(i).map_or(0, |e| e.depth);
        entries
            .iter()
            .skip(i + 1)
            .take_while(|e| e.depth > d)
            .count()
    };
    let id = |i: usize| ids.get(i).copied();
    {
        let mut o = pdf.outline(root);
        if let (Some(f), Some(l)) = (
            top.first().and_then(|&i| id(i)),
            top.last().and_then(|&i| id(i)),
        ) {
            o.first(f).last(l);
        }
        o.count(count_i32(n));
    }
    let mut siblings_of = |list: &[usize], parent_ref: Ref| {
        for (k, &i) in list.iter().enumerate() {
            let (Some(e), Some(me)) = (entries.get(i), id(i)) else {
                continue;
            };
            let mut item = pdf.outline_item(me);
            item.title(TextStr(&e.title)).parent(parent_ref);
            if let Some(prev) = k
                .checked_sub(1)
                .and_then(|k| list.get(k))
                .and_then(|&p| id(p))
            {
                item.prev(prev);
            }
            if let Some(next) = list.get(k + 1).and_then(|&p| id(p)) {
                item.next(next);
            }
            let ch = children.get(i).map(Vec::as_slice).unwrap_or_default();
            if let (Some(f), Some(l)) = (
                ch.first().and_then(|&c| id(c)),
                ch.last().and_then(|&c| id(c)),
            ) {
                item.first(f).last(l).count(count_i32(descendants(i)));
            }
            if let Some((page, _)) = pages.get(e.page) {
                item.dest().page(*page).xyz(0.0, pdf_y(e.y) + 4.0, None);
            }
        }
    };
    siblings_of(&top, root);
    for (i, ch) in children.iter().enumerate() {
        if let (false, Some(me)) = (ch.is_empty(), id(i)) {
            siblings_of(ch, me);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Edge;

    #[test]
    fn widths_match_the_afm_metrics() {
        // H e l l o: 722 + 556 + 222 + 222 + 556 (Helvetica), 722 + 556 + 278 + 278 + 611 (Bold).
        assert_eq!(text_width(b"Hello", Font::Regular, 10.0), 22.78);
        assert_eq!(text_width(b"Hello", Font::Bold, 10.0), 24.45);
        assert_eq!(text_width(b"Hello", Font::Oblique, 10.0), 22.78);
        assert_eq!(glyph_units(b' ', Font::Regular), 278);
        assert_eq!(glyph_units(b'W', Font::Bold), 944);
        assert_eq!(glyph_units(b'@', Font::Regular), 1015);
        assert_eq!(glyph_units(b'@', Font::Bold), 975);
        // é, em dash, Euro, mu, ÿ.
        assert_eq!(glyph_units(0xe9, Font::Regular), 556);
        assert_eq!(glyph_units(151, Font::Regular), 1000);
        assert_eq!(glyph_units(128, Font::Bold), 556);
        assert_eq!(glyph_units(181, Font::Regular), 556);
        assert_eq!(glyph_units(255, Font::Bold), 556);
        assert_eq!(glyph_units(b'\n', Font::Regular), 0);
        assert_eq!(HELVETICA_WIDTHS.len(), 224);
        assert!(HELVETICA_WIDTHS.iter().all(|w| (191..=1015).contains(w)));
    }

    #[test]
    fn encoding_maps_winansi_and_replaces_the_rest() {
        assert_eq!(
            encode("Aé—€“x”"),
            vec![b'A', 0xe9, 151, 128, 147, b'x', 148]
        );
        assert_eq!(encode("a→b ☃ 日"), b"a?b ? ?".to_vec());
        // Invisible characters vanish, controls become spaces, \n stays a break.
        assert_eq!(encode("co\u{ad}op\u{200b}\r\n\tz"), b"coop\n z".to_vec());
        assert_eq!(encode("\u{a0}\u{ff}"), vec![0xa0, 0xff]);
        for c in ['\u{81}', '\u{8d}', '\u{9d}'] {
            assert_eq!(encode(&c.to_string()), vec![b' '], "C1 control {c:?}");
        }
    }

    #[test]
    fn text_is_escaped_in_content_strings() {
        let mut c = Content::new();
        show(
            &mut c,
            (10.0, 10.0),
            Font::Regular,
            10.0,
            BLACK,
            &encode(r"a) (b\c"),
        );
        show(
            &mut c,
            (10.0, 20.0),
            Font::Regular,
            10.0,
            BLACK,
            &encode("(ok)"),
        );
        show(
            &mut c,
            (10.0, 30.0),
            Font::Regular,
            10.0,
            BLACK,
            &encode("café"),
        );
        let out = String::from_utf8_lossy(&c.finish()).into_owned();
        assert!(out.contains(r"(a\) \(b\\c) Tj"), "{out}");
        // Balanced parentheses are legal unescaped inside a literal string.
        assert!(out.contains("((ok)) Tj"), "{out}");
        // Non-ASCII bytes go out as a hex string of WinAnsi codes.
        assert!(out.contains("<636166E9> Tj"), "{out}");
    }

    #[test]
    fn wrapping_respects_the_width() {
        let text = encode("The quick brown fox jumps over the lazy dog and keeps running far away");
        let max = 100.0;
        let lines = wrap(&text, Font::Regular, 10.0, max);
        assert!(lines.len() > 2);
        for l in &lines {
            assert!(text_width(l, Font::Regular, 10.0) <= max + EPS);
            assert!(!l.starts_with(b" ") && !l.ends_with(b" "));
        }
        // Nothing lost: rejoined lines give the words back.
        assert_eq!(lines.join(&b' '), text);
        // Greedy: the next word would not have fitted on any line.
        for pair in lines.windows(2) {
            let next = pair[1].split(|b| *b == b' ').next().unwrap_or_default();
            let joined = [pair[0].as_slice(), b" ", next].concat();
            assert!(text_width(&joined, Font::Regular, 10.0) > max);
        }
    }

    #[test]
    fn wrapping_breaks_long_words_and_keeps_forced_breaks() {
        let long = encode(&"a1b2c3d4".repeat(20));
        let lines = wrap(&long, Font::Regular, 10.0, 50.0);
        assert!(lines.len() > 3);
        assert_eq!(lines.concat(), long);
        assert!(
            lines
                .iter()
                .all(|l| text_width(l, Font::Regular, 10.0) <= 50.0 + EPS)
        );

        let lines = wrap(b"one\n\ntwo  three\n", Font::Regular, 10.0, 500.0);
        assert_eq!(
            lines,
            vec![b"one".to_vec(), Vec::new(), b"two three".to_vec()]
        );
        assert!(wrap(b"  \n ", Font::Bold, 10.0, 100.0).is_empty());
        // A width too small for any glyph still makes progress, one glyph a line.
        assert_eq!(wrap(b"abc", Font::Regular, 10.0, 0.5).len(), 3);
    }

    #[test]
    fn truncation_ends_with_an_ellipsis() {
        let t = encode("A rather long document title that cannot fit");
        let cut = truncate(&t, Font::Regular, 8.0, 60.0);
        assert_eq!(cut.last(), Some(&ELLIPSIS));
        assert!(text_width(&cut, Font::Regular, 8.0) <= 60.0);
        assert_eq!(
            truncate(b"short", Font::Regular, 8.0, 60.0),
            b"short".to_vec()
        );
    }

    #[test]
    fn columns_fill_the_text_width_and_stay_bounded() {
        let header: Vec<Vec<u8>> = ["Id", "Component", "Description"]
            .iter()
            .map(|h| encode(h))
            .collect();
        let rows: Vec<Vec<Vec<u8>>> = (0..10)
            .map(|i| {
                vec![
                    encode(&format!("C-{i}")),
                    encode("openssl"),
                    encode(&"a long description of the component ".repeat(4)),
                ]
            })
            .collect();
        let w = column_widths(&header, &rows);
        assert_eq!(w.len(), 3);
        assert!((w.iter().sum::<f32>() - TEXT_W).abs() < 0.05);
        assert!(w.iter().all(|w| *w >= MIN_COL - EPS));
        assert!(w[2] > w[0] && w[2] > w[1], "{w:?}");
        // The short columns keep their text on one line; the prose column wraps.
        let rows_w: Vec<TableRow> = rows
            .iter()
            .map(|r| TableRow::new(r, &w, Font::Regular))
            .collect();
        for r in &rows_w {
            assert_eq!(r.cells[0].len(), 1);
            assert_eq!(r.cells[1].len(), 1);
            assert!(r.cells[2].len() > 1);
        }

        // One unbreakable hash does not starve a column of prose.
        let rows = vec![vec![
            encode("x"),
            encode(&"f".repeat(300)),
            encode(&"words of prose ".repeat(40)),
        ]];
        let w = column_widths(&header, &rows);
        assert!(w[1] <= TEXT_W * 0.6 && w[2] >= TEXT_W * 0.3, "{w:?}");
        assert!(column_widths(&[], &[]).is_empty());
    }

    fn doc_with(blocks: Vec<Block>) -> Document {
        let mut s = Section::new("s", "Section");
        s.blocks = blocks;
        Document {
            slug: "t".into(),
            title: "Test".into(),
            subtitle: None,
            meta: vec![],
            sections: vec![s],
        }
    }

    fn created() -> OffsetDateTime {
        time::macros::datetime!(2025-03-04 05:06:07 +01:30)
    }

    #[test]
    fn mismatched_rows_and_bad_diagrams_are_render_errors() {
        let t = Table {
            caption: None,
            header: vec!["a".into(), "b".into()],
            rows: vec![vec!["1".into()]],
        };
        let err = render_pdf(&doc_with(vec![Block::Table(t)]), created());
        assert!(
            matches!(err, Err(DocsError::Render { format: "pdf", .. })),
            "{err:?}"
        );

        let mut d = Diagram {
            id: "d".into(),
            title: "D".into(),
            width: f32::NAN,
            height: 100.0,
            nodes: vec![],
            edges: vec![],
            legend: vec![],
        };
        let err = render_pdf(&doc_with(vec![Block::Diagram(d.clone())]), created());
        assert!(matches!(err, Err(DocsError::Render { .. })));
        d.width = 100.0;
        d.edges.push(Edge {
            from: "a".into(),
            to: "b".into(),
            label: None,
            style: EdgeStyle::Flow,
            points: vec![(1.0, 1.0)],
            both_ways: false,
        });
        let err = render_pdf(&doc_with(vec![Block::Diagram(d.clone())]), created());
        assert!(matches!(err, Err(DocsError::Render { .. })));
        if let Some(e) = d.edges.first_mut() {
            e.points = vec![(0.0, 0.0), (1.0e20, 5.0)];
        }
        let err = render_pdf(&doc_with(vec![Block::Diagram(d)]), created());
        assert!(matches!(err, Err(DocsError::Render { .. })));
    }

    #[test]
    fn creation_dates_keep_their_offset() {
        let doc = doc_with(vec![]);
        let west = time::macros::datetime!(2024-12-31 23:59:58 -03:30);
        let pdf = render_pdf(&doc, west).unwrap_or_default();
        assert!(String::from_utf8_lossy(&pdf).contains("/CreationDate (D:20241231235958-03'30)"));
        let utc = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        let pdf = render_pdf(&doc, utc).unwrap_or_default();
        assert!(String::from_utf8_lossy(&pdf).contains("/CreationDate (D:20240102030405Z)"));
        let far = time::macros::datetime!(-0001-01-01 00:00:00 UTC);
        assert!(render_pdf(&doc, far).is_err());
    }

    #[test]
    fn info_dictionary_and_determinism() {
        let doc = doc_with(vec![Block::Paragraph("Hello (world)".into())]);
        let a = render_pdf(&doc, created()).unwrap_or_default();
        let b = render_pdf(&doc, created()).unwrap_or_default();
        assert!(a.starts_with(b"%PDF-1.7"));
        assert_eq!(a, b);
        let s = String::from_utf8_lossy(&a);
        assert!(s.contains("/Producer (medsec)"), "{s}");
        assert!(s.contains("/CreationDate (D:20250304050607+01'30)"), "{s}");
        assert!(s.contains("/BaseFont /Helvetica-Bold"));
        assert!(s.contains("/Encoding /WinAnsiEncoding"));
        assert!(s.contains("(page 1 of 1) Tj"));
        assert!(s.contains("/Title (1 Section)"), "bookmark: {s}");
        let later = render_pdf(&doc, created() + time::Duration::seconds(1)).unwrap_or_default();
        assert_ne!(a, later);
    }

    #[test]
    fn empty_document_still_has_a_page() {
        let doc = Document {
            slug: "e".into(),
            title: String::new(),
            subtitle: None,
            meta: vec![],
            sections: vec![],
        };
        let pdf = render_pdf(&doc, created()).unwrap_or_default();
        let s = String::from_utf8_lossy(&pdf);
        assert!(s.contains("/Count 1"));
        assert!(!s.contains("/Outlines"));
    }

    #[test]
    fn headings_are_kept_with_the_following_content() {
        // Fill the first page almost to the bottom, then a heading with a table: the heading
        // must move to page 2 together with the table header.
        let mut lay = Layout::new();
        lay.y = CONTENT_BOTTOM - 30.0;
        let mut s = Section::new("t", "Table section");
        s.blocks.push(Block::Table(Table {
            caption: Some("Caption".into()),
            header: vec!["A".into()],
            rows: vec![vec!["1".into()]],
        }));
        section(&mut lay, &s, &[3]);
        assert_eq!(lay.outline.first().map(|e| e.page), Some(1));
        assert_eq!(lay.done.len(), 1);
    }

    fn page_count(pdf: &[u8]) -> usize {
        String::from_utf8_lossy(pdf)
            .matches("/Type /Page\n")
            .count()
    }

    #[test]
    fn blocks_taller_than_a_page_are_split() {
        let huge = "word ".repeat(3000);
        let table = Table {
            caption: None,
            header: vec!["Key".into(), "Text".into()],
            rows: vec![
                vec!["a".into(), "short".into()],
                vec!["b".into(), huge.clone()],
                vec!["c".into(), "short".into()],
            ],
        };
        let doc = doc_with(vec![
            Block::Table(table),
            Block::Callout(huge.clone()),
            Block::KeyValue(vec![("k".into(), huge.clone())]),
            Block::Bullets(vec![huge]),
        ]);
        let pdf = render_pdf(&doc, created()).unwrap_or_default();
        assert!(page_count(&pdf) >= 8, "{} pages", page_count(&pdf));
        let s = String::from_utf8_lossy(&pdf);
        // The header row is repeated on each page the split row continues on.
        assert!(s.matches("(Key) Tj").count() >= 2);
    }

    #[test]
    fn a_tall_diagram_is_scaled_onto_one_page() {
        let d = Diagram {
            id: "tall".into(),
            title: "Tall".into(),
            width: 100.0,
            height: 5000.0,
            nodes: vec![Node {
                id: "n".into(),
                label: "Node".into(),
                sublabel: None,
                kind: NodeKind::Device,
                x: 0.0,
                y: 0.0,
                w: 100.0,
                h: 5000.0,
            }],
            edges: vec![],
            legend: vec![(EdgeStyle::Weak, "weak".into())],
        };
        let dl = DiagramLayout::new(&d);
        assert!(dl.total_h <= USABLE_H + EPS);
        assert!(dl.scale < 0.2);
        let wide = Diagram {
            width: 2000.0,
            height: 100.0,
            ..d
        };
        assert!((DiagramLayout::new(&wide).scale - TEXT_W / 2000.0).abs() < 1e-6);
        let pdf = render_pdf(&doc_with(vec![Block::Diagram(wide)]), created()).unwrap_or_default();
        assert_eq!(page_count(&pdf), 1);
    }
}
