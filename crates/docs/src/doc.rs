//! The intermediate document form every generator produces and every renderer consumes:
//! sections of paragraphs, lists, key-value lists, tables and laid-out diagrams.

use serde::Serialize;

/// A whole document (one output file per format).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// File stem used for outputs, e.g. `premarket-cybersecurity`.
    pub slug: String,
    pub title: String,
    pub subtitle: Option<String>,
    /// Shown under the title: model, firmware version, data snapshot, generator.
    pub meta: Vec<(String, String)>,
    pub sections: Vec<Section>,
}

/// A numbered section; children are its subsections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    /// Stable anchor, e.g. `sbom`.
    pub id: String,
    pub title: String,
    pub blocks: Vec<Block>,
    pub children: Vec<Section>,
}

impl Section {
    pub fn new(id: &str, title: &str) -> Section {
        Section {
            id: id.to_string(),
            title: title.to_string(),
            blocks: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn push(mut self, b: Block) -> Section {
        self.blocks.push(b);
        self
    }

    pub fn child(mut self, s: Section) -> Section {
        self.children.push(s);
        self
    }
}

/// One block of content. Text is plain (renderers escape it); no markup inside strings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Block {
    Paragraph(String),
    Bullets(Vec<String>),
    /// Label: value pairs, e.g. a device's identification.
    KeyValue(Vec<(String, String)>),
    Table(Table),
    Diagram(Diagram),
    /// Something the reader must act on (a gap, a warning).
    Callout(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub caption: Option<String>,
    pub header: Vec<String>,
    /// Every row has `header.len()` cells.
    pub rows: Vec<Vec<String>>,
}

/// A diagram already laid out in its own coordinate space (points, origin top-left, y down),
/// so SVG and PDF draw exactly the same picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagram {
    pub id: String,
    pub title: String,
    pub width: f32,
    pub height: f32,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Explanation of colours and line styles.
    pub legend: Vec<(EdgeStyle, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// The device under review.
    Device,
    /// Manufacturer-operated server or service.
    Server,
    /// Third-party or hospital system (EHR, tablet, cloud).
    External,
    /// A person (clinician, service technician, attacker in misuse views).
    Person,
    /// A trust boundary drawn around other nodes (drawn first, behind them).
    Boundary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub label: String,
    pub sublabel: Option<String>,
    pub kind: NodeKind,
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeStyle {
    /// Authenticated and encrypted.
    Secure,
    /// A finding: no encryption, one-way or no authentication, or an old protocol.
    Weak,
    /// Neutral flow (a step of a use case).
    Flow,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    pub style: EdgeStyle,
    /// Polyline from the source border to the target border; the last segment gets the arrow.
    pub points: Vec<(f32, f32)>,
    /// Arrowheads at both ends (bidirectional link).
    pub both_ways: bool,
}
