//! The SVG writer: escaping, the layout units, and a growing document with the few shapes the
//! picture uses (rounded boxes of text, small labels, arrows).

use std::fmt::Write as _;

use hakube_topology::RoleKind;

use super::super::facts::colours;

/// Text for SVG character data and attribute values: the five XML special characters as
/// entities; characters XML 1.0 cannot carry (controls other than tab) become spaces.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// Layout units (pixels). Text is set in a monospace font, so a line's width is known from its
// length without font metrics.
/// Font size.
const FONT: u32 = 12;
/// Tenths of a pixel per character at [`FONT`] px.
const CHAR_W10: u32 = 73;
/// Line height.
pub(super) const LINE_H: u32 = 16;
/// Padding inside a box.
pub(super) const PAD: u32 = 8;
/// Space between boxes.
pub(super) const GAP: u32 = 12;
/// Space around the picture.
pub(super) const MARGIN: u32 = 20;
/// The strip left of the tier labels where the arrows from the load balancers run.
pub(super) const GUTTER: u32 = 64;
/// Height of the title above the columns.
pub(super) const TITLE_H: u32 = 48;
/// Colour of text, arrows and outlines.
const INK: &str = "#334155";

/// Width of a box's text: its longest line.
pub(super) fn text_w(lines: &[String]) -> u32 {
    let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let chars = u32::try_from(chars).unwrap_or(u32::MAX / CHAR_W10);
    (chars * CHAR_W10).div_ceil(10)
}

/// Height of a box of `lines` lines.
pub(super) fn box_h(lines: usize) -> u32 {
    2 * PAD + u32::try_from(lines).unwrap_or(0) * LINE_H
}

/// The fill and stroke of a role's boxes.
pub(super) fn role_style(role: RoleKind) -> String {
    let (fill, stroke) = colours(role);
    format!(r#"fill="{fill}" stroke="{stroke}""#)
}

/// A growing SVG document.
pub(super) struct Svg(String);

impl Svg {
    /// The document's start: its size, title, arrow marker, white background and the two
    /// title lines (the first one large and bold).
    pub(super) fn start(width: u32, height: u32, title: &[String]) -> Self {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}" fill="{INK}">"#
        );
        let _ = writeln!(s, "<title>{}</title>", xml(&title[0]));
        let _ = writeln!(
            s,
            r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{INK}"/></marker></defs>"#
        );
        let _ = writeln!(
            s,
            r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{MARGIN}" y="{}" font-size="16" font-weight="bold">{}</text>"#,
            MARGIN + 16,
            xml(&title[0])
        );
        let _ = writeln!(
            s,
            r#"<text x="{MARGIN}" y="{}">{}</text>"#,
            MARGIN + 36,
            xml(&title[1])
        );
        Self(s)
    }

    /// The finished document.
    pub(super) fn finish(mut self) -> String {
        self.0.push_str("</svg>\n");
        self.0
    }

    /// A rounded rectangle.
    pub(super) fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, style: &str) {
        let _ = writeln!(
            self.0,
            r#"<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" {style}/>"#
        );
    }

    /// Lines of text in a box at (x, y): the first one bold.
    pub(super) fn lines(&mut self, x: u32, y: u32, lines: &[String]) {
        for (i, l) in lines.iter().enumerate() {
            let weight = if i == 0 { r#" font-weight="bold""# } else { "" };
            let baseline = y + PAD + FONT + u32::try_from(i).unwrap_or(0) * LINE_H;
            let _ = writeln!(
                self.0,
                r#"<text x="{}" y="{baseline}"{weight}>{}</text>"#,
                x + PAD,
                xml(l)
            );
        }
    }

    /// A box with its lines; its height.
    pub(super) fn text_box(
        &mut self,
        x: u32,
        y: u32,
        w: u32,
        lines: &[String],
        style: &str,
    ) -> u32 {
        let h = box_h(lines.len());
        self.rect(x, y, w, h, style);
        self.lines(x, y, lines);
        h
    }

    /// A small label (an arrow's port).
    pub(super) fn small(&mut self, x: u32, y: u32, text: &str) {
        let _ = writeln!(
            self.0,
            r#"<text x="{x}" y="{y}" font-size="10">{}</text>"#,
            xml(text)
        );
    }

    /// An arrow along a polyline.
    pub(super) fn arrow(&mut self, points: &[(u32, u32)], dashed: bool) {
        let d: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, (x, y))| format!("{}{x},{y}", if i == 0 { 'M' } else { 'L' }))
            .collect();
        let dash = if dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        let _ = writeln!(
            self.0,
            r#"<path d="{}" fill="none" stroke="{INK}" stroke-width="1.5"{dash} marker-end="url(#arrow)"/>"#,
            d.join(" ")
        );
    }
}
