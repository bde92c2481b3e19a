//! Charts drawn on the server as SVG (docs/ui.md, "Reports"): no script and no library, so
//! a chart shows without JavaScript, prints, and passes the pages' Content-Security-Policy
//! (only presentation attributes, no inline `style`). Each chart scales to its container
//! through its `viewBox` and keeps its text at least 12 user units, readable at 375 px.

use std::fmt::Write;

/// One bar of a funnel: its label and its value (the number that reached the stage).
#[derive(Debug, Clone)]
pub struct FunnelBar {
    pub label: String,
    pub value: u64,
    /// A second line under the label (the amount, say), possibly empty.
    pub note: String,
    /// `won`, `lost` or empty: the bar's colour.
    pub outcome: &'static str,
}

/// The width of a chart's coordinate system.
const WIDTH: u32 = 320;
/// The height of one funnel bar and the gap under it.
const BAR: u32 = 40;
const GAP: u32 = 6;
/// The narrowest bar, so that a stage nobody reached still shows its label.
const MIN_WIDTH: f64 = 56.0;

/// A funnel: one centred bar per stage, as wide as its value relative to the largest, with
/// its label, value and note written on it. `title` names the chart for screen readers.
pub fn funnel_svg(title: &str, bars: &[FunnelBar]) -> String {
    let height = (bars.len() as u32).max(1) * (BAR + GAP);
    let largest = bars.iter().map(|bar| bar.value).max().unwrap_or(0).max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart funnel-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="funnel-chart-title" preserveAspectRatio="xMidYMin meet"><title id="funnel-chart-title">{}</title>"#,
        escape(title)
    );
    for (index, bar) in bars.iter().enumerate() {
        let y = index as u32 * (BAR + GAP);
        let width = MIN_WIDTH + (f64::from(WIDTH) - MIN_WIDTH) * (bar.value as f64 / largest);
        let x = (f64::from(WIDTH) - width) / 2.0;
        let fill = match bar.outcome {
            "won" => "#16794c",
            "lost" => "#c0262d",
            _ => "#1d4ed8",
        };
        // Later stages are lighter, so the funnel reads top to bottom.
        let opacity = 1.0 - (index as f64 * 0.08).min(0.45);
        let centre = f64::from(WIDTH) / 2.0;
        let _ = write!(
            svg,
            r##"<g class="funnel-bar" data-value="{value}"><rect x="{x:.1}" y="{y}" width="{width:.1}" height="{BAR}" rx="4" fill="{fill}" fill-opacity="{opacity:.2}"/><text x="{centre}" y="{label_y}" text-anchor="middle" font-size="13" font-weight="600" fill="#ffffff" stroke="#1f2328" stroke-width="2.5" stroke-opacity="0.35" paint-order="stroke">{label} · {value}</text>"##,
            value = bar.value,
            label = escape(&bar.label),
            label_y = y + if bar.note.is_empty() { 25 } else { 17 },
        );
        if !bar.note.is_empty() {
            let _ = write!(
                svg,
                r##"<text x="{centre}" y="{}" text-anchor="middle" font-size="12" fill="#ffffff" stroke="#1f2328" stroke-width="2.5" stroke-opacity="0.35" paint-order="stroke">{}</text>"##,
                y + 33,
                escape(&bar.note)
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// Text made safe inside SVG markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: u64) -> FunnelBar {
        FunnelBar {
            label: label.to_owned(),
            value,
            note: String::new(),
            outcome: "",
        }
    }

    #[test]
    fn a_funnel_draws_a_bar_per_stage_as_wide_as_its_share_of_the_largest() {
        let svg = funnel_svg(
            "漏斗",
            &[bar("初步接洽", 10), bar("赢单", 5), bar("输单", 0)],
        );
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains(r#"width="320.0""#), "{svg}");
        assert!(svg.contains(r#"width="188.0""#), "{svg}");
        assert!(svg.contains(r#"width="56.0""#), "{svg}");
        assert!(svg.contains("初步接洽 · 10"));
        assert!(svg.contains(r#"viewBox="0 0 320 138""#), "{svg}");
        assert!(!svg.contains("style="));
    }

    #[test]
    fn a_funnel_escapes_its_labels_and_draws_an_empty_funnel() {
        let svg = funnel_svg("<t>", &[bar("a<b & \"c\"", 1)]);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot; · 1"), "{svg}");
        assert!(svg.contains("<title id=\"funnel-chart-title\">&lt;t&gt;</title>"));
        let empty = funnel_svg("empty", &[]);
        assert!(empty.starts_with("<svg") && empty.ends_with("</svg>"));
    }
}
