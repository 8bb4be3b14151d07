//! The loss curve as a small hand-written SVG: train loss (per step) and validation loss
//! (at each evaluation) against steps, with axes, ticks and a legend.
use std::fmt::Write;

/// One curve: (step, loss) points, a colour and a label.
pub struct Series<'a> {
    pub points: &'a [(usize, f64)],
    pub color: &'a str,
    pub label: &'a str,
}

fn nice_step(range: f64, ticks: usize) -> f64 {
    let raw = range / ticks as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    }
}

pub fn loss_svg(series: &[Series<'_>], title: &str) -> String {
    let (w, h) = (720.0, 420.0);
    let (l, r, t, b) = (60.0, 20.0, 40.0, 50.0);
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x as f64);
        x1 = x1.max(x as f64);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-6 {
        y1 = y0 + 1.0;
    }
    let ystep = nice_step(y1 - y0, 6);
    let (y0, y1) = ((y0 / ystep).floor() * ystep, (y1 / ystep).ceil() * ystep);
    let sx = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let sy = |y: f64| h - b - (y - y0) / (y1 - y0) * (h - t - b);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    let mut y = y0;
    while y <= y1 + ystep * 1e-6 {
        let py = sy(y);
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" text-anchor="end">{y:.2}</text>"##,
            w - r,
            l - 6.0,
            py + 4.0
        );
        y += ystep;
    }
    let xstep = nice_step(x1 - x0, 8).max(1.0);
    let mut x = (x0 / xstep).ceil() * xstep;
    while x <= x1 {
        let px = sx(x);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="#999"/><text x="{px:.1}" y="{}" text-anchor="middle">{x}</text>"##,
            h - b,
            h - b + 5.0,
            h - b + 18.0
        );
        x += xstep;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="black"/>"#,
        w - l - r,
        h - t - b
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">step</text>"#,
        (l + w - r) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">loss (nats/token)</text>"#,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0
    );
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = se
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| (sx(x as f64), sy(y)))
            .collect();
        if pts.len() >= 2 {
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                se.color,
                path.join(" ")
            );
        }
        // Sparse series (evaluations) get a marker on each point.
        if pts.len() <= 50 {
            for (x, y) in &pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{}"/>"#,
                    se.color
                );
            }
        }
        let ly = t + 16.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            w - r - 185.0,
            w - r - 165.0,
            se.color,
            w - r - 159.0,
            ly + 4.0,
            escape(se.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_curves() {
        let train = [(1, 4.0), (2, 3.0), (3, 2.5)];
        let val = [(3, 2.7)];
        let svg = loss_svg(
            &[
                Series {
                    points: &train,
                    color: "#1f77b4",
                    label: "train",
                },
                Series {
                    points: &val,
                    color: "#d62728",
                    label: "val <x>",
                },
            ],
            "loss",
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains("<polyline") && svg.contains("<circle") && svg.contains("val &lt;x&gt;")
        );
        assert!(loss_svg(&[], "empty").contains("</svg>"));
    }
}
