//! PNG plots for the dataset card.
//!
//! Each plot is drawn into an in-memory RGB buffer, encoded as PNG and moved into place with a
//! rename, so the card never points at a half-written image. All text is measured and drawn from
//! a font compiled into the binary, so plots render the same on a machine with no fonts at all,
//! and the same input always gives the same bytes, which snapshot tests can hash.
//!
//! The face is `DejaVu Sans` 2.37 (Bitstream Vera licence, `DejaVu` changes in the public
//! domain; see `fonts/LICENSE-DejaVu.txt`), cut down to Basic Latin, Latin-1 and the few symbols
//! the plots use. Other characters in a caller's title render as empty boxes. The subset was made
//! with fontTools:
//!
//! ```text
//! pyftsubset DejaVuSans.ttf --output-file=DejaVuSans-subset.ttf \
//!   --unicodes=U+0020-007E,U+00A0-00FF,U+2013,U+2014,U+2018-201D,U+2022,U+2026,U+2190-2193,U+2212,U+2248,U+2260,U+2264,U+2265 \
//!   --layout-features='' --legacy-kern --drop-tables+=GPOS,GSUB,GDEF,MATH,FFTM \
//!   --no-hinting --notdef-outline --name-IDs='*' --name-languages='*'
//! ```
//!
//! The legacy `kern` table is kept because it is the only kerning the rasteriser reads; hinting is
//! dropped because the rasteriser ignores it. The name table is kept whole for its copyright and
//! licence notices.

use ab_glyph::{Font as _, FontRef, Glyph, PxScale, ScaleFont as _, point};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendColor, BackendCoord, DrawingErrorKind};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Size of the single-panel plots, in pixels (width, height).
pub const SIZE: (u32, u32) = (800, 480);

/// Size of the two-panel plots, in pixels (width, height).
pub const WIDE: (u32, u32) = (1000, 420);

/// Errors while drawing or writing a plot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Rasterising the plot or encoding it as PNG failed.
    #[error("{path}: cannot draw the plot: {message}", path = path.display())]
    Draw {
        /// The image that was being drawn.
        path: PathBuf,
        /// The drawing backend's or encoder's message.
        message: String,
    },
    /// Writing the image or moving it into place failed.
    #[error("{path}: cannot write the plot", path = path.display())]
    Io {
        /// The image that was being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Draws the bar chart of outcome counts with each bar's count and share of all rows above it.
///
/// Known labels are drawn in the order kept, swapped, tie, failed, invalid, whatever order they
/// come in; any other label follows them in the order given. No rows at all draws "no data".
///
/// # Errors
///
/// [`PlotError::Draw`] if rendering fails, [`PlotError::Io`] if the file cannot be written.
pub fn outcomes(path: &Path, counts: &[(&str, u64)], title: &str) -> Result<(), PlotError> {
    render(path, SIZE, |root| draw_outcomes(root, counts, title))
}

/// Score distributions before and after re-ranking, in two panels side by side.
///
/// `before` holds the judge's scores of the stored chosen and stored rejected responses, `after`
/// those of the re-ranked chosen and rejected ones. Each panel overlays the two histograms over
/// 1..5 in bins of 0.25 centred on the quarter points, so integer scores sit on their ticks;
/// scores outside 1..5 count in the end bins, and NaN or infinite ones are skipped. Both panels
/// share one count axis so that they compare at a glance.
///
/// # Errors
///
/// [`PlotError::Draw`] if rendering fails, [`PlotError::Io`] if the file cannot be written.
pub fn score_distributions(
    path: &Path,
    before: (&[f64], &[f64]),
    after: (&[f64], &[f64]),
) -> Result<(), PlotError> {
    render(path, WIDE, |root| {
        draw_scores(
            root,
            before,
            after,
            "Judge scores of chosen and rejected responses",
        )
    })
}

/// Histogram of the decision margin (stored chosen score minus stored rejected score).
///
/// Bins of 0.25 over -4..4, centred on the quarter points; values beyond the range count in the
/// end bins. The tie band `[-tie_margin, tie_margin]` is shaded, and each bar is stacked by the
/// outcome of the rows it counts, so a bar never says "tie" for a row that was kept. A
/// `tie_margin` that is not a positive finite number draws no band.
///
/// # Errors
///
/// [`PlotError::Draw`] if rendering fails, [`PlotError::Io`] if the file cannot be written.
pub fn margin_histogram(
    path: &Path,
    margins: &[(f64, MarginOutcome)],
    tie_margin: f64,
) -> Result<(), PlotError> {
    margin_histogram_on(path, margins, tie_margin, MarginScale::SCORES)
}

/// What became of a row whose margin is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginOutcome {
    /// The judge agreed with the stored labels.
    Kept,
    /// The judge preferred the stored rejected response.
    Swapped,
    /// Neither response was preferred enough (the margin, a panel's disagreement, a
    /// calibration).
    Tie,
}

/// The scale of a decision margin: score points (-4 to 4) under the rating protocol, a
/// difference of probabilities (-1 to 1) under the pairwise one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarginScale {
    /// The largest absolute margin the axis shows.
    pub extent: f64,
    /// What the margin measures, for the axis title.
    pub unit: &'static str,
    /// The plot's title.
    pub title: &'static str,
}

impl MarginScale {
    /// Score differences.
    pub const SCORES: MarginScale = MarginScale {
        extent: 4.0,
        unit: "margin (score points)",
        title: "Decision margin: stored chosen minus stored rejected score",
    };
    /// Differences of probabilities.
    pub const PROBABILITIES: MarginScale = MarginScale {
        extent: 1.0,
        unit: "margin (probability difference)",
        title: "Decision margin: P(stored chosen better) minus P(stored rejected better)",
    };
}

/// [`margin_histogram`] on another scale: 33 bins over `-extent..extent`.
///
/// # Errors
///
/// [`PlotError::Draw`] if rendering fails, [`PlotError::Io`] if the file cannot be written.
pub fn margin_histogram_on(
    path: &Path,
    margins: &[(f64, MarginOutcome)],
    tie_margin: f64,
    scale: MarginScale,
) -> Result<(), PlotError> {
    render(path, SIZE, |root| {
        draw_margins(root, margins, tie_margin, scale, scale.title)
    })
}

/// Swap rate against the length ratio of the two stored responses.
///
/// Each point is `(log2(len(stored chosen) / len(stored rejected)), swapped)` for one decided
/// row. Points are binned to the nearest integer in -4..=4 (values beyond count in the end bins);
/// each bar is the share of its rows that were swapped, labelled with its row count, and the
/// dashed line is the swap rate over all rows. Empty bins are left out, non-finite ratios skipped.
///
/// # Errors
///
/// [`PlotError::Draw`] if rendering fails, [`PlotError::Io`] if the file cannot be written.
pub fn swap_rate_by_length(path: &Path, points: &[(f64, bool)]) -> Result<(), PlotError> {
    render(path, SIZE, |root| {
        draw_swap_rate(root, points, "Swap rate by response length ratio")
    })
}

/// Agreement with human labels and coverage against the decision margin threshold.
///
/// `curve` holds `(margin, agreement, coverage)` points, the last two as shares in 0..=1
/// (agreement: share of decided rows that agree with the gold label; coverage: share of rows
/// decided). Points with a non-finite value are skipped; shares are clamped to 0..=1. `marked`,
/// typically the calibrated margin, is drawn as a vertical line with both curves' values there
/// (interpolated between neighbouring points) in the legend.
///
/// # Errors
///
/// [`PlotError::Draw`] if rendering fails, [`PlotError::Io`] if the file cannot be written.
pub fn agreement_coverage(
    path: &Path,
    curve: &[(f64, f64, f64)],
    marked: Option<f64>,
) -> Result<(), PlotError> {
    render(path, SIZE, |root| {
        draw_agreement(
            root,
            curve,
            marked,
            "Agreement with human labels and coverage by margin",
        )
    })
}

// Okabe and Ito's palette: its colours stay apart under the common colour-vision deficiencies.
const BLUE: RGBColor = RGBColor(0, 114, 178);
const ORANGE: RGBColor = RGBColor(230, 159, 0);
const SKY: RGBColor = RGBColor(86, 180, 233);
const GREEN: RGBColor = RGBColor(0, 158, 115);
const VERMILLION: RGBColor = RGBColor(213, 94, 0);
const PURPLE: RGBColor = RGBColor(204, 121, 167);
const GREY: RGBColor = RGBColor(140, 140, 140);

/// The outcomes in the order the bar chart shows them, with their colours.
const OUTCOMES: [(&str, RGBColor); 5] = [
    ("kept", GREEN),
    ("swapped", ORANGE),
    ("tie", SKY),
    ("failed", VERMILLION),
    ("invalid", PURPLE),
];

const INK: RGBColor = RGBColor(33, 33, 33);
const MUTED: RGBColor = RGBColor(100, 100, 100);
const GRID: RGBColor = RGBColor(226, 226, 226);
const BAND: RGBColor = RGBColor(222, 222, 222);

const TITLE_PX: f64 = 22.0;
const CAPTION_PX: f64 = 17.0;
const AXIS_PX: f64 = 16.0;
const TICK_PX: f64 = 14.0;
const NOTE_PX: f64 = 14.0;
const LEGEND_PX: f64 = 15.0;

/// Height reserved for the title whether or not there is one, so the layout never shifts.
const TITLE_BAND: u32 = 44;
const LEGEND_BAND: u32 = 28;

/// Score bins: centres 1.00, 1.25, ..., 5.00.
const SCORE_BINS: usize = 17;
/// Margin bins: centres -4.00, -3.75, ..., 4.00.
const MARGIN_BINS: usize = 33;
const BIN_WIDTH: f64 = 0.25;
/// Length-ratio bins: log2 ratios -4, -3, ..., 4.
const RATIO_BINS: usize = 9;

/// The bundled face. Plotters is built without font support of its own: its `ttf` feature looks
/// up the system's fonts through fontconfig, and its `ab_glyph` one (0.3.7) places glyphs without
/// their side bearings, which visibly breaks words apart. [`Canvas`] measures and draws every text
/// with this face instead, whatever family a style names.
const FONT: &[u8] = include_bytes!("fonts/DejaVuSans-subset.ttf");

type Area<'a> = DrawingArea<Canvas<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type CanvasError<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

/// The bundled font failed to parse; only a corrupted build can get here.
#[derive(Debug, thiserror::Error)]
#[error("the bundled font could not be read")]
struct FontUnreadable;

fn bundled_font() -> Result<&'static FontRef<'static>, FontUnreadable> {
    static PARSED: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    PARSED
        .get_or_init(|| FontRef::try_from_slice(FONT).ok())
        .as_ref()
        .ok_or(FontUnreadable)
}

/// A line of text laid out along a baseline at y = 0, starting at x = 0.
struct Line {
    glyphs: Vec<Glyph>,
    width: f32,
    ascent: f32,
    descent: f32,
}

/// Lays out `text` at `em_px` pixels to the em (the usual meaning of a font size in pixels), with
/// the font's kerning.
fn lay_out(font: &FontRef<'static>, text: &str, em_px: f64) -> Line {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "font sizes are a few dozen pixels, well inside f32"
    )]
    let em = em_px as f32;
    let units = font.units_per_em().unwrap_or(2048.0);
    let scale = PxScale::from(em * font.height_unscaled() / units);
    let scaled = font.as_scaled(scale);
    let mut glyphs = Vec::with_capacity(text.len());
    let mut caret = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(before) = previous {
            caret += scaled.kern(before, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(caret, 0.0)));
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    Line {
        glyphs,
        width: caret,
        ascent: scaled.ascent(),
        descent: scaled.descent(),
    }
}

/// The bitmap backend, with text measured and drawn from the bundled font.
struct Canvas<'a> {
    bitmap: BitMapBackend<'a>,
}

impl<'a> DrawingBackend for Canvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.bitmap.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), CanvasError<'a>> {
        self.bitmap.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), CanvasError<'a>> {
        self.bitmap.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), CanvasError<'a>> {
        self.bitmap.blit_bitmap(pos, size, src)
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "text extents are a few hundred pixels"
    )]
    #[allow(clippy::cast_sign_loss, reason = "extents are never negative")]
    fn estimate_text_size<S: plotters_backend::BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), CanvasError<'a>> {
        let font = bundled_font().map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let line = lay_out(font, text, style.size());
        Ok((
            line.width.ceil().max(0.0) as u32,
            (line.ascent - line.descent).ceil().max(0.0) as u32,
        ))
    }

    /// Draws `text` with its anchor at `pos`: the horizontal anchor refers to the advance width,
    /// the vertical one to the box from the font's ascent to its descent.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap,
        reason = "glyph pixel offsets are a few hundred pixels"
    )]
    fn draw_text<S: plotters_backend::BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), CanvasError<'a>> {
        let color = style.color();
        if color.alpha <= 0.0 {
            return Ok(());
        }
        let font = bundled_font().map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let mut line = lay_out(font, text, style.size());
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -line.width / 2.0,
            HPos::Right => -line.width,
        };
        let baseline = match anchor.v_pos {
            VPos::Top => line.ascent,
            VPos::Center => f32::midpoint(line.ascent, line.descent),
            VPos::Bottom => line.descent,
        };
        let transform = style.transform();
        for glyph in &mut line.glyphs {
            // The anchor shift goes into the glyph position before rasterising, so the glyphs
            // keep their sub-pixel placement and need no resampling.
            glyph.position.x += dx;
            glyph.position.y += baseline;
            let Some(outline) = font.outline_glyph(glyph.clone()) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i32, bounds.min.y as i32);
            let mut result = Ok(());
            outline.draw(|x, y, coverage| {
                if coverage <= 0.0 || result.is_err() {
                    return;
                }
                let (ox, oy) = transform.transform(left + x as i32, top + y as i32);
                let shade = BackendColor {
                    alpha: color.alpha * f64::from(coverage.min(1.0)),
                    rgb: color.rgb,
                };
                result = self.bitmap.draw_pixel((pos.0 + ox, pos.1 + oy), shade);
            });
            result?;
        }
        Ok(())
    }
}

fn render<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), PlotError>
where
    F: FnOnce(&Area<'_>) -> Drawn,
{
    let draw_error = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    let pixels = rasterize(size, draw).map_err(|e| draw_error(e.to_string()))?;
    let png = encode_png(size, &pixels).map_err(|e| draw_error(e.to_string()))?;
    super::atomic::write(path, &png).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn rasterize<F>(
    size: (u32, u32),
    draw: F,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>
where
    F: FnOnce(&Area<'_>) -> Drawn,
{
    bundled_font()?;
    let mut pixels = vec![0_u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = Canvas {
            bitmap: BitMapBackend::with_buffer(&mut pixels, size),
        }
        .into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(pixels)
}

fn encode_png((width, height): (u32, u32), pixels: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Balanced);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(out)
}

fn style(px: f64, color: RGBColor) -> TextStyle<'static> {
    // The family is only a name here: the canvas draws every text with the bundled face.
    FontDesc::new(FontFamily::SansSerif, px, FontStyle::Normal).color(&color)
}

fn anchored(px: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    style(px, color).pos(Pos::new(h, v))
}

fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Draws the title centred in the title band and returns the area below the band.
/// A chart frame with the margins and label areas every single-panel plot uses.
fn frame<'a, 'b, 'c>(area: &'a Area<'c>) -> ChartBuilder<'a, 'b, Canvas<'c>> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(12)
        .margin_right(28)
        .margin_top(8)
        .margin_bottom(8)
        .x_label_area_size(56)
        .y_label_area_size(78);
    builder
}

/// The axis text, grid and line styles every plot shares.
fn house_style<'a, 'b, 'c, 'm, X, Y>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, Canvas<'c>>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, Canvas<'c>>
where
    X: plotters::coord::ranged1d::Ranged<ValueType: std::fmt::Debug + Clone>,
    Y: plotters::coord::ranged1d::Ranged<ValueType: std::fmt::Debug + Clone>,
{
    mesh.axis_desc_style(style(AXIS_PX, INK))
        .label_style(style(TICK_PX, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
}

fn titled<'a>(
    root: &Area<'a>,
    title: &str,
) -> Result<Area<'a>, Box<dyn std::error::Error + Send + Sync>> {
    let (width, _) = root.dim_in_pixel();
    let text = fit_text(root, title, TITLE_PX, width.saturating_sub(24))?;
    if !text.is_empty() {
        root.draw_text(
            &text,
            &anchored(TITLE_PX, INK, HPos::Center, VPos::Top),
            (int(width / 2), 14),
        )?;
    }
    Ok(root.margin(TITLE_BAND, 0, 0, 0))
}

/// Shortens `text` with an ellipsis until it fits `max_width` pixels at `px`.
fn fit_text(
    area: &Area<'_>,
    text: &str,
    px: f64,
    max_width: u32,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    // Far more characters than any plot can show; the cap keeps the trimming loop short.
    const MAX_CHARS: usize = 200;
    let font = style(px, INK);
    let mut chars: Vec<char> = text.chars().take(MAX_CHARS + 1).collect();
    if chars.len() <= MAX_CHARS && area.estimate_text_size(text, &font)?.0 <= max_width {
        return Ok(text.to_owned());
    }
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().collect::<String>().trim_end().to_owned() + "…";
        if area.estimate_text_size(&candidate, &font)?.0 <= max_width {
            return Ok(candidate);
        }
    }
    Ok(String::new())
}

#[derive(Clone, Copy)]
enum Swatch {
    Block(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
}

/// Draws a one-line legend centred at the top of `area` and returns the area below it. A legend
/// of its own row never covers data, wherever the bars or lines happen to fall.
fn legend<'a>(
    area: &Area<'a>,
    items: &[(String, Swatch)],
) -> Result<Area<'a>, Box<dyn std::error::Error + Send + Sync>> {
    const MARK: i32 = 22;
    const GAP: i32 = 8;
    const SPACING: i32 = 26;
    let font = anchored(LEGEND_PX, INK, HPos::Left, VPos::Center);
    let mut widths = Vec::with_capacity(items.len());
    for (label, _) in items {
        widths.push(int(area.estimate_text_size(label, &font)?.0));
    }
    let total: i32 = widths.iter().map(|w| MARK + GAP + w).sum::<i32>()
        + SPACING * int(u32::try_from(items.len().saturating_sub(1)).unwrap_or(0));
    let (width, _) = area.dim_in_pixel();
    let mut x = ((int(width) - total) / 2).max(4);
    let y = int(LEGEND_BAND / 2);
    for ((label, swatch), text_width) in items.iter().zip(widths) {
        match *swatch {
            Swatch::Block(color) => area.draw(&Rectangle::new(
                [(x + 4, y - 7), (x + MARK - 4, y + 7)],
                color.filled(),
            ))?,
            Swatch::Line(color) => area.draw(&PathElement::new(
                [(x, y), (x + MARK, y)],
                color.stroke_width(3),
            ))?,
            Swatch::Dashed(color) => area.draw(&DashedPathElement::new(
                [(x, y), (x + MARK, y)],
                5,
                3,
                color.stroke_width(3),
            ))?,
        }
        area.draw_text(label, &font, (x + MARK + GAP, y))?;
        x += MARK + GAP + text_width + SPACING;
    }
    Ok(area.margin(LEGEND_BAND, 0, 0, 0))
}

/// Draws a framed "no data" message filling `area`.
fn no_data(area: &Area<'_>) -> Drawn {
    let (width, height) = area.dim_in_pixel();
    let (width, height) = (int(width), int(height));
    area.draw(&Rectangle::new(
        [(24, 8), ((width - 24).max(25), (height - 24).max(9))],
        GRID.stroke_width(2),
    ))?;
    area.draw_text(
        "no data",
        &anchored(20.0, MUTED, HPos::Center, VPos::Center),
        (width / 2, height / 2),
    )?;
    Ok(())
}

/// Formats an axis value with a true minus sign and no needless decimals.
fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".to_owned(),
        _ => text.replace('-', "\u{2212}"),
    }
}

fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.001 {
        "<0.1%".to_owned()
    } else {
        format!("{:.1}%", share * 100.0)
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52 are exact; the share is only printed"
)]
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Index of the bin whose centre is nearest `value`, for bins of `width` centred from `first`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "positions at or below zero return early, and float-to-integer casts saturate"
)]
fn bin(value: f64, first: f64, width: f64, bins: usize) -> usize {
    let last = bins.saturating_sub(1);
    let position = ((value - first) / width).round();
    if position <= 0.0 {
        0
    } else {
        (position as usize).min(last)
    }
}

fn histogram(values: &[f64], first: f64, width: f64, bins: usize) -> Vec<u64> {
    let mut counts = vec![0_u64; bins];
    for &value in values.iter().filter(|v| v.is_finite()) {
        counts[bin(value, first, width, bins)] += 1;
    }
    counts
}

fn mean(values: &[f64]) -> Option<f64> {
    let (sum, n) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0, 0.0), |(sum, n), &v| (sum + v, n + 1.0));
    (n > 0.0).then(|| sum / n)
}

/// Upper end of a count axis, leaving headroom above the tallest bar for its label.
fn count_axis(top: u64) -> u64 {
    top.saturating_add(top / 6).saturating_add(1)
}

/// Position of a known outcome in the fixed order; unknown labels sort after all of them.
fn outcome_rank(label: &str) -> usize {
    OUTCOMES
        .iter()
        .position(|(known, _)| known.eq_ignore_ascii_case(label.trim()))
        .unwrap_or(OUTCOMES.len())
}

fn outcome_color(label: &str) -> RGBColor {
    OUTCOMES
        .get(outcome_rank(label))
        .map_or(GREY, |(_, color)| *color)
}

/// The right edge of segment `i` of `count`: the last one ends at the axis' end, not at a value.
fn segment_end(i: u32, count: u32) -> SegmentValue<u32> {
    if i + 1 < count {
        SegmentValue::Exact(i + 1)
    } else {
        SegmentValue::Last
    }
}

fn draw_outcomes(root: &Area<'_>, counts: &[(&str, u64)], title: &str) -> Drawn {
    let body = titled(root, title)?;
    let mut rows = counts.to_vec();
    rows.sort_by_key(|(label, _)| outcome_rank(label));
    let total = rows
        .iter()
        .fold(0_u64, |sum, (_, n)| sum.saturating_add(*n));
    if total == 0 {
        return no_data(&body);
    }
    let top = rows.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let bars = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    // Plotters' integer ranges include their end, so 0..bars - 1 gives exactly `bars` segments.
    let mut chart = ChartBuilder::on(&body)
        .margin_left(12)
        .margin_right(28)
        .margin_top(8)
        .margin_bottom(8)
        .x_label_area_size(44)
        .y_label_area_size(78)
        .build_cartesian_2d((0..bars - 1).into_segmented(), 0..count_axis(top))?;
    let names = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(i) => rows
            .get(*i as usize)
            .map(|(label, _)| (*label).to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&names)
        .y_desc("rows")
        .axis_desc_style(style(AXIS_PX, INK))
        .label_style(style(AXIS_PX, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
        .draw()?;
    let slot = chart.plotting_area().dim_in_pixel().0 / bars.max(1);
    let gap = slot / 6;
    chart.draw_series(rows.iter().zip(0_u32..).map(|((label, n), i)| {
        let mut bar = Rectangle::new(
            [(SegmentValue::Exact(i), 0), (segment_end(i, bars), *n)],
            outcome_color(label).filled(),
        );
        bar.set_margin(0, 0, gap, gap);
        bar
    }))?;
    chart.draw_series(rows.iter().zip(0_u32..).map(|((_, n), i)| {
        EmptyElement::at((SegmentValue::CenterOf(i), *n))
            + Text::new(
                format!("{n} ({})", percent(share(*n, total))),
                (0, -6),
                anchored(NOTE_PX, INK, HPos::Center, VPos::Bottom),
            )
    }))?;
    Ok(())
}

struct Panel<'p> {
    caption: &'p str,
    chosen: &'p [f64],
    rejected: &'p [f64],
}

fn draw_scores(
    root: &Area<'_>,
    before: (&[f64], &[f64]),
    after: (&[f64], &[f64]),
    title: &str,
) -> Drawn {
    let body = titled(root, title)?;
    let body = legend(
        &body,
        &[
            ("chosen".to_owned(), Swatch::Block(BLUE)),
            ("rejected".to_owned(), Swatch::Block(VERMILLION)),
        ],
    )?;
    let panels = [
        Panel {
            caption: "Before (as stored)",
            chosen: before.0,
            rejected: before.1,
        },
        Panel {
            caption: "After re-ranking",
            chosen: after.0,
            rejected: after.1,
        },
    ];
    let histograms: Vec<[Vec<u64>; 2]> = panels
        .iter()
        .map(|p| [p.chosen, p.rejected].map(|values| histogram(values, 1.0, BIN_WIDTH, SCORE_BINS)))
        .collect();
    let top = histograms
        .iter()
        .flatten()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0);
    let (width, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally(width / 2);
    for ((panel, bins), area) in panels.iter().zip(&histograms).zip([left, right]) {
        draw_score_panel(&area, panel, bins, top)?;
    }
    Ok(())
}

fn draw_score_panel(area: &Area<'_>, panel: &Panel<'_>, bins: &[Vec<u64>; 2], top: u64) -> Drawn {
    let caption = match (mean(panel.chosen), mean(panel.rejected)) {
        (Some(c), Some(r)) => format!("{}: mean {c:.2} chosen, {r:.2} rejected", panel.caption),
        _ => panel.caption.to_owned(),
    };
    if bins.iter().flatten().all(|&n| n == 0) {
        let (width, _) = area.dim_in_pixel();
        area.draw_text(
            &caption,
            &anchored(CAPTION_PX, INK, HPos::Center, VPos::Top),
            (int(width / 2), 6),
        )?;
        return no_data(&area.margin(30, 0, 0, 0));
    }
    let half = BIN_WIDTH / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, style(CAPTION_PX, INK))
        .margin_left(8)
        .margin_right(20)
        .margin_bottom(6)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0 - half)..(5.0 + half), 0..count_axis(top))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(5)
        .x_label_formatter(&|v| number(*v))
        .x_desc("judge score")
        .y_desc("responses")
        .axis_desc_style(style(AXIS_PX, INK))
        .label_style(style(TICK_PX, INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
        .draw()?;
    for (counts, color) in bins.iter().zip([BLUE, VERMILLION]) {
        chart.draw_series(
            counts
                .iter()
                .zip(0_u32..)
                .filter(|(n, _)| **n > 0)
                .map(|(n, i)| {
                    let centre = 1.0 + BIN_WIDTH * f64::from(i);
                    Rectangle::new(
                        [(centre - half, 0), (centre + half, *n)],
                        color.mix(0.4).filled(),
                    )
                }),
        )?;
    }
    // Outlines over both fills keep each series' shape visible where the two overlap.
    for (counts, color) in bins.iter().zip([BLUE, VERMILLION]) {
        chart.draw_series(
            step_outlines(counts, 1.0, half)
                .into_iter()
                .map(|path| PathElement::new(path, color.stroke_width(2))),
        )?;
    }
    Ok(())
}

/// The outline of a histogram: one path per run of non-empty bins, along the tops of its bars and
/// down to zero at both ends, so no line is drawn along the axis between runs.
fn step_outlines(counts: &[u64], first: f64, half: f64) -> Vec<Vec<(f64, u64)>> {
    let mut paths = Vec::new();
    let mut path: Vec<(f64, u64)> = Vec::new();
    for (n, i) in counts.iter().zip(0_u32..) {
        let centre = first + BIN_WIDTH * f64::from(i);
        if *n == 0 {
            if let Some(&(end, _)) = path.last() {
                path.push((end, 0));
                paths.push(std::mem::take(&mut path));
            }
            continue;
        }
        if path.is_empty() {
            path.push((centre - half, 0));
        }
        path.push((centre - half, *n));
        path.push((centre + half, *n));
    }
    if let Some(&(end, _)) = path.last() {
        path.push((end, 0));
        paths.push(path);
    }
    paths
}

fn draw_margins(
    root: &Area<'_>,
    margins: &[(f64, MarginOutcome)],
    tie_margin: f64,
    scale: MarginScale,
    title: &str,
) -> Drawn {
    let body = titled(root, title)?;
    let extent = scale.extent;
    let width = extent / 16.0;
    let band = (tie_margin.is_finite() && tie_margin > 0.0).then(|| tie_margin.min(extent));
    let mut items = vec![
        ("judge agrees (kept)".to_owned(), Swatch::Block(GREEN)),
        (
            "judge disagrees (swapped)".to_owned(),
            Swatch::Block(ORANGE),
        ),
        ("tie".to_owned(), Swatch::Block(SKY)),
    ];
    if let Some(t) = band {
        items.push((format!("tie band ±{}", number(t)), Swatch::Block(BAND)));
    }
    let body = legend(&body, &items)?;
    let counts = stacked_histogram(margins, -extent, width);
    let top = counts.iter().map(|bin| bin.iter().sum()).max().unwrap_or(0);
    if top == 0 {
        return no_data(&body);
    }
    let half = width / 2.0;
    let y_max = count_axis(top);
    let mut chart = frame(&body).build_cartesian_2d((-extent - half)..(extent + half), 0..y_max)?;
    if let Some(t) = band {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(-t, 0), (t, y_max)],
            BAND.filled(),
        )))?;
    }
    house_style(chart.configure_mesh().disable_x_mesh())
        .x_labels(9)
        .x_label_formatter(&|v| number(*v))
        .x_desc(scale.unit)
        .y_desc("rows")
        .draw()?;
    let mut bars = Vec::new();
    for (bin, i) in counts.iter().zip(0_u32..) {
        let centre = -extent + width * f64::from(i);
        let mut base = 0;
        for (n, color) in bin.iter().zip(STACK_COLOURS) {
            if *n == 0 {
                continue;
            }
            let mut bar = Rectangle::new(
                [(centre - half, base), (centre + half, base + n)],
                color.filled(),
            );
            bar.set_margin(0, 0, 1, 1);
            bars.push(bar);
            base += n;
        }
    }
    chart.draw_series(bars)?;
    Ok(())
}

/// The colours of a margin bar's segments, bottom up: kept, tie, swapped.
const STACK_COLOURS: [RGBColor; 3] = [GREEN, SKY, ORANGE];

/// Counts per margin bin, split by outcome in [`STACK_COLOURS`]' order.
fn stacked_histogram(margins: &[(f64, MarginOutcome)], first: f64, width: f64) -> Vec<[u64; 3]> {
    let mut counts = vec![[0_u64; 3]; MARGIN_BINS];
    for &(value, outcome) in margins.iter().filter(|(v, _)| v.is_finite()) {
        let segment = match outcome {
            MarginOutcome::Kept => 0,
            MarginOutcome::Tie => 1,
            MarginOutcome::Swapped => 2,
        };
        counts[bin(value, first, width, MARGIN_BINS)][segment] += 1;
    }
    counts
}

/// Tick label of a length-ratio bin: the ratio itself, the end bins open-ended.
fn ratio_label(bin: usize) -> String {
    let exponent = i32::try_from(bin).unwrap_or(0) - 4;
    let power = 1_u32 << exponent.unsigned_abs();
    let ratio = if exponent < 0 {
        format!("1/{power}")
    } else {
        power.to_string()
    };
    match bin {
        0 => format!("≤{ratio}"),
        8 => format!("≥{ratio}"),
        _ => ratio,
    }
}

/// Upper end of a share axis: room above the highest bar for its label, in steps of 5 points.
/// Near 100% the axis runs a little past it, so a full bar's label stays inside the plot; the
/// ticks (every 20 points there) stop at 100%.
fn share_axis(top: f64) -> f64 {
    let wanted = (top * 1.2 / 0.05).ceil() * 0.05;
    if wanted > 1.0 { 1.12 } else { wanted.max(0.05) }
}

/// Rows and swapped rows per length-ratio bin.
fn ratio_bins(points: &[(f64, bool)]) -> ([u64; RATIO_BINS], [u64; RATIO_BINS]) {
    let mut rows = [0_u64; RATIO_BINS];
    let mut swapped = [0_u64; RATIO_BINS];
    for &(ratio, was_swapped) in points.iter().filter(|(r, _)| r.is_finite()) {
        let i = bin(ratio, -4.0, 1.0, RATIO_BINS);
        rows[i] += 1;
        swapped[i] += u64::from(was_swapped);
    }
    (rows, swapped)
}

fn draw_swap_rate(root: &Area<'_>, points: &[(f64, bool)], title: &str) -> Drawn {
    let body = titled(root, title)?;
    let (rows, swapped) = ratio_bins(points);
    let total: u64 = rows.iter().sum();
    let overall = share(swapped.iter().sum(), total);
    let items = [
        (
            "swapped share of the bin's rows".to_owned(),
            Swatch::Block(ORANGE),
        ),
        (
            format!("all rows: {}", percent(overall)),
            Swatch::Dashed(INK),
        ),
    ];
    let body = legend(&body, &items)?;
    if total == 0 {
        return no_data(&body);
    }
    let rates: Vec<(u32, u64, f64)> = (0_u32..)
        .zip(rows.iter().zip(&swapped))
        .filter(|(_, (n, _))| **n > 0)
        .map(|(i, (n, s))| (i, *n, share(*s, *n)))
        .collect();
    let y_max = share_axis(rates.iter().map(|r| r.2).fold(overall, f64::max));
    let bins = u32::try_from(RATIO_BINS).unwrap_or(9);
    let mut chart = frame(&body).build_cartesian_2d((0..bins - 1).into_segmented(), 0.0..y_max)?;
    let labels = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(i) => ratio_label(*i as usize),
        _ => String::new(),
    };
    house_style(chart.configure_mesh().disable_x_mesh())
        .x_labels(RATIO_BINS)
        .x_label_formatter(&labels)
        .y_labels(6)
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .x_desc("length of stored chosen / length of stored rejected")
        .y_desc("swapped")
        .draw()?;
    let gap = chart.plotting_area().dim_in_pixel().0 / bins / 6;
    chart.draw_series(rates.iter().map(|&(i, _, rate)| {
        let corners = [(SegmentValue::Exact(i), 0.0), (segment_end(i, bins), rate)];
        let mut bar = Rectangle::new(corners, ORANGE.filled());
        bar.set_margin(0, 0, gap, gap);
        bar
    }))?;
    let line = [
        (SegmentValue::Exact(0), overall),
        (SegmentValue::Last, overall),
    ];
    chart.draw_series(std::iter::once(DashedPathElement::new(
        line,
        6,
        4,
        INK.stroke_width(2),
    )))?;
    // Labels go last on a white backing, so the reference line never runs through them.
    draw_counts(&mut chart, &body, &rates)?;
    Ok(())
}

/// Each bar's row count above it, on a white backing.
fn draw_counts<X>(
    chart: &mut ChartContext<
        '_,
        Canvas<'_>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    body: &Area<'_>,
    rates: &[(u32, u64, f64)],
) -> Drawn
where
    X: plotters::coord::ranged1d::Ranged<ValueType = SegmentValue<u32>>,
{
    let note = anchored(NOTE_PX, INK, HPos::Center, VPos::Bottom);
    let mut labels = Vec::with_capacity(rates.len());
    for &(i, n, rate) in rates {
        let text = format!("n={n}");
        let (w, h) = body.estimate_text_size(&text, &note)?;
        let (w, h) = (int(w), int(h));
        labels.push(
            EmptyElement::at((SegmentValue::CenterOf(i), rate))
                + Rectangle::new([(-w / 2 - 3, -h - 6), (w / 2 + 3, -4)], WHITE.filled())
                + Text::new(text, (0, -5), note.clone()),
        );
    }
    chart.draw_series(labels)?;
    Ok(())
}

/// Keeps absurd margins from overflowing the axis arithmetic; real ones are a few score points.
fn clamp_margin(margin: f64) -> f64 {
    margin.clamp(-1e6, 1e6)
}

/// Linear interpolation of the curve's value at `x`, from points sorted by their first element.
fn interpolate(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let first = points.first()?;
    let last = points.last()?;
    if x <= first.0 {
        return Some(first.1);
    }
    if x >= last.0 {
        return Some(last.1);
    }
    points.windows(2).find_map(|pair| {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        (x >= x0 && x <= x1).then(|| {
            if x1 > x0 {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            } else {
                y1
            }
        })
    })
}

/// The curve's points with finite values, clamped and sorted by margin.
fn curve_points(curve: &[(f64, f64, f64)]) -> Vec<(f64, f64, f64)> {
    let mut points: Vec<(f64, f64, f64)> = curve
        .iter()
        .filter(|(m, a, c)| m.is_finite() && a.is_finite() && c.is_finite())
        .map(|&(m, a, c)| (clamp_margin(m), a.clamp(0.0, 1.0), c.clamp(0.0, 1.0)))
        .collect();
    points.sort_by(|x, y| x.0.total_cmp(&y.0));
    points
}

fn agreement_legend(
    agreement: &[(f64, f64)],
    coverage: &[(f64, f64)],
    marked: Option<f64>,
) -> Vec<(String, Swatch)> {
    let mut items = vec![
        ("agreement".to_owned(), Swatch::Line(BLUE)),
        ("coverage".to_owned(), Swatch::Dashed(ORANGE)),
    ];
    if let Some(m) = marked {
        let at = |series: &[(f64, f64)]| interpolate(series, m).map_or_else(String::new, percent);
        let text = format!(
            "margin {}: agreement {}, coverage {}",
            number(m),
            at(agreement),
            at(coverage)
        );
        items.push((text, Swatch::Dashed(GREY)));
    }
    items
}

fn draw_agreement(
    root: &Area<'_>,
    curve: &[(f64, f64, f64)],
    marked: Option<f64>,
    title: &str,
) -> Drawn {
    let body = titled(root, title)?;
    let points = curve_points(curve);
    let agreement: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    let coverage: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
    let marked = marked
        .filter(|m| m.is_finite() && !points.is_empty())
        .map(clamp_margin);
    let body = legend(&body, &agreement_legend(&agreement, &coverage, marked))?;
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return no_data(&body);
    };
    let lo = marked.map_or(first.0, |m| first.0.min(m));
    let hi = marked.map_or(last.0, |m| last.0.max(m));
    let pad = if hi > lo { (hi - lo) * 0.04 } else { 0.5 };
    let mut chart = frame(&body).build_cartesian_2d((lo - pad)..(hi + pad), 0.0..1.04)?;
    house_style(&mut chart.configure_mesh())
        .x_labels(9)
        .x_label_formatter(&|v| number(*v))
        .y_labels(6)
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .x_desc("decision margin threshold")
        .y_desc("share of rows")
        .draw()?;
    if let Some(m) = marked {
        let line = DashedPathElement::new([(m, 0.0), (m, 1.04)], 6, 4, GREY.stroke_width(2));
        chart.draw_series(std::iter::once(line))?;
    }
    let solid = PathElement::new(agreement.clone(), BLUE.stroke_width(3));
    chart.draw_series(std::iter::once(solid))?;
    let dashed = DashedPathElement::new(coverage.clone(), 8, 5, ORANGE.stroke_width(3));
    chart.draw_series(std::iter::once(dashed))?;
    // Markers only where they stay readable; a dense curve is clearer as a bare line.
    if points.len() <= 40 {
        chart.draw_series(agreement.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
        let triangles = coverage
            .iter()
            .map(|&p| TriangleMarker::new(p, 6, ORANGE.filled()));
        chart.draw_series(triangles)?;
    }
    let Some(m) = marked else { return Ok(()) };
    for (series, color) in [(&agreement, BLUE), (&coverage, ORANGE)] {
        if let Some(y) = interpolate(series, m) {
            chart.draw_series(std::iter::once(Circle::new(
                (m, y),
                7,
                color.stroke_width(3),
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::io::BufReader;

    /// Decodes a PNG written by this module into its size and RGB pixels.
    fn decode(path: &Path) -> ((u32, u32), Vec<u8>) {
        let file = BufReader::new(File::open(path).expect("plot file exists"));
        let mut reader = png::Decoder::new(file).read_info().expect("a PNG header");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
        let info = reader.next_frame(&mut pixels).expect("PNG image data");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        ((info.width, info.height), pixels)
    }

    fn non_white_in_rows(pixels: &[u8], width: u32, rows: std::ops::Range<u32>) -> usize {
        let stride = width as usize * 3;
        pixels[rows.start as usize * stride..rows.end as usize * stride]
            .chunks(3)
            .filter(|px| px != &[255, 255, 255])
            .count()
    }

    type Draw = Box<dyn Fn(&Area<'_>, &str) -> Drawn>;

    /// Every plot as a function of its title, with realistic data.
    fn plots() -> Vec<(&'static str, (u32, u32), Draw)> {
        vec![
            (
                "outcomes",
                SIZE,
                Box::new(|root, title| {
                    draw_outcomes(root, &[("kept", 800), ("swapped", 70), ("tie", 70)], title)
                }),
            ),
            (
                "scores",
                WIDE,
                Box::new(|root, title| {
                    draw_scores(
                        root,
                        (&[4.0, 4.5], &[2.0, 3.0]),
                        (&[4.5, 4.0], &[3.0]),
                        title,
                    )
                }),
            ),
            (
                "margins",
                SIZE,
                Box::new(|root, title| {
                    draw_margins(
                        root,
                        &[
                            (-1.0, MarginOutcome::Swapped),
                            (0.0, MarginOutcome::Tie),
                            (0.25, MarginOutcome::Tie),
                            (2.0, MarginOutcome::Kept),
                        ],
                        0.5,
                        MarginScale::SCORES,
                        title,
                    )
                }),
            ),
            (
                "swap_rate",
                SIZE,
                Box::new(|root, title| {
                    draw_swap_rate(root, &[(0.0, false), (1.0, true), (-2.5, false)], title)
                }),
            ),
            (
                "agreement",
                SIZE,
                Box::new(|root, title| {
                    draw_agreement(root, &[(0.0, 0.7, 1.0), (1.0, 0.8, 0.6)], Some(0.5), title)
                }),
            ),
        ]
    }

    #[test]
    fn each_plot_draws_its_title_in_the_title_band() {
        let dir = tempfile::tempdir().unwrap();
        for (name, size, draw) in plots() {
            let with = dir.path().join(format!("{name}-titled.png"));
            let without = dir.path().join(format!("{name}-untitled.png"));
            render(&with, size, |root| draw(root, "A title")).unwrap();
            render(&without, size, |root| draw(root, "")).unwrap();
            let (got, titled) = decode(&with);
            assert_eq!(got, size, "{name}");
            let (_, untitled) = decode(&without);
            let band = 0..TITLE_BAND;
            assert!(
                non_white_in_rows(&titled, size.0, band.clone()) > 100,
                "{name}: no title pixels"
            );
            assert_eq!(non_white_in_rows(&untitled, size.0, band), 0, "{name}");
            // Only the title band changes: the layout below it does not move.
            let below = TITLE_BAND as usize * size.0 as usize * 3;
            assert_eq!(titled[below..], untitled[below..], "{name}");
        }
    }

    #[test]
    fn text_renders_with_the_bundled_font() {
        let pixels = rasterize((200, 40), |root| {
            root.draw_text("Agreement 81%", &style(16.0, INK), (4, 4))?;
            Ok(())
        })
        .unwrap();
        assert!(non_white_in_rows(&pixels, 200, 0..40) > 100);
    }

    /// Runs every public function on `case`'s inputs and checks each writes a PNG of its size.
    fn draws_all(case: &str, scores: &[f64], flags: &[(f64, bool)], curve: &[(f64, f64, f64)]) {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(format!("{case}-{name}.png"));
        let finite = scores.iter().filter(|s| s.is_finite()).count();
        let counts = [("tie", 0), ("kept", u64::try_from(finite).unwrap())];
        outcomes(&file("outcomes"), &counts, "Outcomes").unwrap();
        score_distributions(&file("scores"), (scores, scores), (scores, &[])).unwrap();
        let margins: Vec<(f64, MarginOutcome)> = scores
            .iter()
            .map(|&score| (score, MarginOutcome::Kept))
            .collect();
        margin_histogram(&file("margins"), &margins, 0.5).unwrap();
        margin_histogram(&file("margins-no-band"), &margins, f64::NAN).unwrap();
        swap_rate_by_length(&file("swap"), flags).unwrap();
        agreement_coverage(&file("agreement"), curve, Some(0.5)).unwrap();
        agreement_coverage(&file("agreement-unmarked"), curve, None).unwrap();
        for entry in fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let expected = if path.to_string_lossy().contains("scores") {
                WIDE
            } else {
                SIZE
            };
            assert_eq!(decode(&path).0, expected, "{}", path.display());
        }
    }

    #[test]
    fn empty_inputs_draw_no_data() {
        draws_all("empty", &[], &[], &[]);
    }

    #[test]
    fn a_single_value_draws() {
        draws_all("one", &[3.0], &[(0.3, true)], &[(1.0, 0.8, 0.5)]);
    }

    #[test]
    fn all_equal_values_draw() {
        draws_all(
            "equal",
            &[2.0; 50],
            &[(1.0, false); 50],
            &[(0.5, 0.9, 0.9), (0.5, 0.9, 0.9)],
        );
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        draws_all(
            "nan",
            &odd,
            &[(f64::NAN, true), (f64::INFINITY, false)],
            &[
                (f64::NAN, 0.5, 0.5),
                (1.0, f64::NAN, 0.5),
                (1.0, 0.5, f64::INFINITY),
            ],
        );
        draws_all(
            "mixed",
            &[f64::NAN, 4.0, 9.0, -9.0],
            &[(f64::NAN, true), (7.0, true), (-7.0, false)],
            &[
                (f64::NAN, 0.5, 0.5),
                (2.0, 1.5, -0.5),
                (f64::INFINITY, 0.5, 0.5),
            ],
        );
    }

    #[test]
    fn extreme_values_and_long_titles_draw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extreme.png");
        let curve = [(-1e308, 0.5, 0.5), (1e308, 0.9, 0.1)];
        agreement_coverage(&path, &curve, Some(f64::MAX)).unwrap();
        assert_eq!(decode(&path).0, SIZE);
        let title = "long title ".repeat(10_000);
        outcomes(&path, &[("kept", u64::MAX), ("tie", u64::MAX)], &title).unwrap();
        assert_eq!(decode(&path).0, SIZE);
    }

    #[test]
    fn a_marked_margin_outside_the_curve_widens_the_axis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        agreement_coverage(&path, &[(0.0, 0.7, 1.0), (1.0, 0.8, 0.6)], Some(3.0)).unwrap();
        assert_eq!(decode(&path).0, SIZE);
    }

    #[test]
    fn a_margin_bar_is_split_by_what_its_rows_became() {
        // Margins of 0.05 and -0.05 share the bin centred on 0 with a true tie: under a tie
        // margin of 0 they were kept and swapped, and the bar must say so.
        let margins = [
            (0.05, MarginOutcome::Kept),
            (0.0, MarginOutcome::Tie),
            (-0.05, MarginOutcome::Swapped),
            (3.0, MarginOutcome::Tie),
        ];
        let counts = stacked_histogram(&margins, -4.0, 0.25);
        assert_eq!(counts.len(), MARGIN_BINS);
        assert_eq!(counts[16], [1, 1, 1]);
        // A panel's tie far from zero stays a tie.
        assert_eq!(counts[28], [0, 1, 0]);
        assert_eq!(counts.iter().flatten().sum::<u64>(), 4);
    }

    #[test]
    fn output_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        let margins: Vec<(f64, MarginOutcome)> = (0..500)
            .map(|i| (f64::from(i % 17) * 0.5 - 4.0, MarginOutcome::Kept))
            .collect();
        margin_histogram(&a, &margins, 0.5).unwrap();
        margin_histogram(&b, &margins, 0.5).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    }

    #[test]
    fn writing_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcomes.png");
        fs::write(&path, b"old").unwrap();
        outcomes(&path, &[("kept", 3)], "Outcomes").unwrap();
        assert_eq!(decode(&path).0, SIZE);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["outcomes.png"]);
    }

    #[test]
    fn an_unwritable_path_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("plot.png");
        let error = outcomes(&path, &[("kept", 3)], "Outcomes").unwrap_err();
        assert!(matches!(error, PlotError::Io { .. }), "{error:?}");
        assert!(error.to_string().contains("plot.png"), "{error}");
    }

    #[test]
    fn outcomes_follow_the_fixed_order() {
        let mut rows = [("tie", 1), ("other", 1), ("invalid", 1), ("kept", 1)];
        rows.sort_by_key(|(label, _)| outcome_rank(label));
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ["kept", "tie", "invalid", "other"]
        );
    }

    #[test]
    fn bins_are_centred_and_clamped() {
        assert_eq!(bin(1.0, 1.0, 0.25, SCORE_BINS), 0);
        assert_eq!(bin(1.1, 1.0, 0.25, SCORE_BINS), 0);
        assert_eq!(bin(1.13, 1.0, 0.25, SCORE_BINS), 1);
        assert_eq!(bin(5.0, 1.0, 0.25, SCORE_BINS), 16);
        assert_eq!(bin(-3.0, 1.0, 0.25, SCORE_BINS), 0);
        assert_eq!(bin(80.0, 1.0, 0.25, SCORE_BINS), 16);
        assert_eq!(bin(0.0, -4.0, 1.0, RATIO_BINS), 4);
        assert_eq!(ratio_label(0), "≤1/16");
        assert_eq!(ratio_label(4), "1");
        assert_eq!(ratio_label(8), "≥16");
    }

    #[test]
    fn outlines_skip_empty_bins() {
        let paths = step_outlines(&[0, 2, 3, 0, 0, 1], 1.0, 0.125);
        assert_eq!(
            paths,
            [
                vec![
                    (1.125, 0),
                    (1.125, 2),
                    (1.375, 2),
                    (1.375, 3),
                    (1.625, 3),
                    (1.625, 0)
                ],
                vec![(2.125, 0), (2.125, 1), (2.375, 1), (2.375, 0)],
            ]
        );
        assert!(step_outlines(&[0, 0], 1.0, 0.125).is_empty());
    }

    #[test]
    fn share_axes_leave_room_for_labels_and_stop_near_full() {
        assert!((share_axis(0.0) - 0.05).abs() < 1e-12);
        assert!((share_axis(0.2) - 0.25).abs() < 1e-12);
        assert!((share_axis(1.0) - 1.12).abs() < 1e-12);
    }

    #[test]
    fn numbers_use_a_true_minus_and_no_trailing_zeros() {
        assert_eq!(number(-4.0), "\u{2212}4");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(-0.0001), "0");
        assert_eq!(number(1.25), "1.25");
        assert_eq!(percent(0.0004), "<0.1%");
        assert_eq!(percent(0.8), "80.0%");
    }
}
