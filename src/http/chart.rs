//! Charts drawn on the server as inline SVG: no script, no chart library, nothing from another
//! site (the CSP stays `script-src 'self'`). Each bar has a `<title>` (a tooltip, and what a
//! screen reader says), and the numbers follow the chart as a table for those who read them.
//! The CSV downloads of the same figures quote their fields here too.

use std::fmt::Write as _;

use crate::domain::calendar;
use crate::store::UsageDay;

/// Bar colours, in order of the series; a colour-blind-safe palette (Okabe-Ito).
const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999",
];

/// One stacked series: its name and a value per day.
pub struct Series {
    pub name: String,
    pub values: Vec<i64>,
    /// A fixed colour (refusals are always red); `None` takes the palette's next.
    pub colour: Option<&'static str>,
}

/// Predictions allowed per day, one series per predictor, for `days` days from `first_day`
/// (rows outside them are left out).
pub fn per_predictor(rows: &[UsageDay], first_day: i64, days: usize) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for row in rows {
        let Ok(day) = usize::try_from((row.day - first_day) / calendar::DAY) else {
            continue;
        };
        if day >= days {
            continue;
        }
        match series.iter_mut().find(|s| s.name == row.tag) {
            Some(s) => s.values[day] += row.predictions,
            None => {
                let mut values = vec![0; days];
                values[day] = row.predictions;
                series.push(Series {
                    name: row.tag.clone(),
                    values,
                    colour: None,
                });
            }
        }
    }
    series
}

/// A chart of stacked bars, one per day from `first_day` (midnight UTC), with its legend and
/// a table of the numbers.
pub fn stacked_days(title: &str, first_day: i64, series: &[Series]) -> String {
    let days = series.first().map_or(0, |s| s.values.len());
    let totals: Vec<i64> = (0..days)
        .map(|d| series.iter().map(|s| s.values[d]).sum())
        .collect();
    let top = totals.iter().copied().max().unwrap_or(0).max(1);
    let (bar, gap, height, left, bottom) = (16.0, 4.0, 160.0, 44.0, 22.0);
    let width = left + days as f64 * (bar + gap);
    let colours: Vec<&str> = {
        let mut next = 0;
        series
            .iter()
            .map(|s| {
                s.colour.unwrap_or_else(|| {
                    let c = PALETTE[next % PALETTE.len()];
                    next += 1;
                    c
                })
            })
            .collect()
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure class="chart"><svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}: {total} in all"><title>{title}</title>"#,
        w = width,
        h = height + bottom,
        title = escape(title),
        total = totals.iter().sum::<i64>(),
    );
    let _ = write!(
        svg,
        r##"<text x="0" y="10" font-size="10" fill="#5b6470">{top}</text><text x="0" y="{h}" font-size="10" fill="#5b6470">0</text><line x1="{left}" y1="{h}" x2="{w}" y2="{h}" stroke="#c9ced6"/>"##,
        top = top,
        h = height,
        left = left - 4.0,
        w = width,
    );
    for day in 0..days {
        let x = left + day as f64 * (bar + gap);
        let date = calendar::date(first_day + day as i64 * calendar::DAY);
        let mut y = height;
        for (s, colour) in series.iter().zip(&colours) {
            let value = s.values[day];
            if value == 0 {
                continue;
            }
            let h = (value as f64 / top as f64 * (height - 12.0)).max(1.0);
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x}" y="{y:.1}" width="{bar}" height="{h:.1}" fill="{colour}"><title>{date} {name}: {value}</title></rect>"#,
                name = escape(&s.name),
            );
        }
        // The first and last days, and every seventh between them with room for its label.
        if day == 0 || day + 1 == days || (day % 7 == 0 && day + 4 < days) {
            // The last label ends at its bar's right edge, inside the chart.
            let (x, anchor) = match day + 1 == days {
                true => (x + bar, "end"),
                false => (x, "start"),
            };
            let _ = write!(
                svg,
                r##"<text x="{x}" y="{y}" font-size="9" fill="#5b6470" text-anchor="{anchor}">{label}</text>"##,
                y = height + 14.0,
                label = &date[5..],
            );
        }
    }
    svg.push_str("</svg><figcaption>");
    for (s, colour) in series.iter().zip(&colours) {
        let _ = write!(
            svg,
            r#"<span class="legend"><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="{colour}"/></svg> {}</span> "#,
            escape(&s.name)
        );
    }
    svg.push_str("</figcaption></figure>");
    let _ = write!(
        svg,
        "<details><summary>{} as numbers</summary><table><thead><tr><th>Day (UTC)</th>",
        escape(title)
    );
    for s in series {
        let _ = write!(svg, "<th>{}</th>", escape(&s.name));
    }
    svg.push_str("</tr></thead><tbody>");
    for day in 0..days {
        let _ = write!(
            svg,
            "<tr><td>{}</td>",
            calendar::date(first_day + day as i64 * calendar::DAY)
        );
        for s in series {
            let _ = write!(svg, "<td>{}</td>", s.values[day]);
        }
        svg.push_str("</tr>");
    }
    svg.push_str("</tbody></table></details>");
    svg
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180); a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
pub fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// Text made safe for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("@acme/sdxl"), "'@acme/sdxl");
        assert_eq!(csv_field("key_1"), "key_1");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
    }

    #[test]
    fn a_chart_has_a_bar_per_value_a_title_each_and_its_numbers() {
        let chart = stacked_days(
            "Predictions",
            0,
            &[
                Series {
                    name: "@acme/<sdxl>".into(),
                    values: vec![3, 0, 1],
                    colour: None,
                },
                Series {
                    name: "refused".into(),
                    values: vec![1, 2, 0],
                    colour: Some("#b00020"),
                },
            ],
        );
        assert_eq!(chart.matches("<rect x=").count(), 4, "no bar for a zero");
        assert!(chart.contains("<title>1970-01-01 @acme/&lt;sdxl&gt;: 3</title>"));
        assert!(chart.contains("aria-label=\"Predictions: 7 in all\""));
        assert!(chart.contains("<td>1970-01-03</td><td>1</td><td>0</td>"));
        assert!(!chart.contains("<sdxl>"));
    }
}
