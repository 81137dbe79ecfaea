//! The map as PNG: the SVG rendered by resvg with the embedded fonts, so that
//! no system font is needed.
//!
//! The font database holds only DejaVu Sans, regular and bold, from
//! `data/fonts/`; the pixels are encoded as 8-bit RGB with the png crate's
//! fast deflate.

use std::sync::{Arc, LazyLock};

use resvg::{tiny_skia, usvg};

use crate::map::{self, Embedding, WIDTH};
use crate::{MapError, MapSpec};

/// DejaVu Sans, regular and bold (`data/fonts/`, Bitstream Vera licence).
const FONT_REGULAR: &[u8] = include_bytes!("../../../data/fonts/DejaVuSans.ttf");
const FONT_BOLD: &[u8] = include_bytes!("../../../data/fonts/DejaVuSans-Bold.ttf");

/// Narrowest PNG map.
pub const MIN_PNG_WIDTH: u32 = 300;
/// Widest PNG map (about 8K; the pixel buffer then takes about 170 MB).
pub const MAX_PNG_WIDTH: u32 = 8000;

/// The font database: only the embedded fonts, loaded once.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: LazyLock<Arc<usvg::fontdb::Database>> = LazyLock::new(|| {
        let mut db = usvg::fontdb::Database::new();
        for font in [FONT_REGULAR, FONT_BOLD] {
            db.load_font_source(usvg::fontdb::Source::Binary(Arc::new(font)));
        }
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    });
    FONTS.clone()
}

/// The map of [`svg`](crate::svg) as a PNG image `width_px` pixels wide (the
/// height follows the map's aspect ratio), rendered with the embedded DejaVu
/// Sans, so the text looks the same on every machine.
///
/// `width_px` must be within [`MIN_PNG_WIDTH`]..=[`MAX_PNG_WIDTH`]; 1200 gives
/// one pixel per SVG unit, 2400 a print-quality image.
pub fn png(spec: &MapSpec, width_px: u32) -> Result<Vec<u8>, MapError> {
    if !(MIN_PNG_WIDTH..=MAX_PNG_WIDTH).contains(&width_px) {
        return Err(MapError::InvalidWidth { width_px, min: MIN_PNG_WIDTH, max: MAX_PNG_WIDTH });
    }
    render_png(&map::render(spec, Embedding::Standalone), width_px)
}

/// Renders an SVG document produced by this crate to PNG.
pub(crate) fn render_png(svg: &str, width_px: u32) -> Result<Vec<u8>, MapError> {
    let options = usvg::Options { font_family: "DejaVu Sans".to_owned(), fontdb: fonts(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &options)?;
    let size = tree.size();
    let scale = width_px as f32 / WIDTH as f32;
    let height_px = (size.height() * scale).round() as u32;
    let invalid = || MapError::InvalidWidth { width_px, min: MIN_PNG_WIDTH, max: MAX_PNG_WIDTH };
    let mut pixmap = tiny_skia::Pixmap::new(width_px, height_px).ok_or_else(invalid)?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    encode_rgb(&pixmap).map_err(|e| MapError::PngEncoding { message: e.to_string() })
}

/// Encodes an opaque pixmap (every map has a white page under everything) as
/// 8-bit RGB with the png crate's fast DEFLATE: about three times faster than
/// tiny-skia's RGBA encoder at the default level, for files a little larger.
fn encode_rgb(pixmap: &tiny_skia::Pixmap) -> Result<Vec<u8>, png::EncodingError> {
    let mut rgb = Vec::with_capacity(pixmap.pixels().len() * 3);
    for pixel in pixmap.pixels() {
        let colour = pixel.demultiply();
        rgb.extend_from_slice(&[colour.red(), colour.green(), colour.blue()]);
    }
    let mut bytes = Vec::with_capacity(rgb.len() / 4);
    let mut encoder = png::Encoder::new(&mut bytes, pixmap.width(), pixmap.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testing::{cell_values, route, spec};

    #[test]
    fn png_has_the_requested_width_and_real_content() {
        let route = route("western-balkans");
        let spec = spec(&route, cell_values(&route, 7, 1));
        let bytes = png(&spec, 1200).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let image = tiny_skia::Pixmap::decode_png(&bytes).unwrap();
        assert_eq!(image.width(), 1200);
        let svg_height: f64 = {
            let svg = crate::svg(&spec);
            let start = svg.find("height=\"").unwrap() + 8;
            svg[start..start + svg[start..].find('"').unwrap()].parse().unwrap()
        };
        assert_eq!(f64::from(image.height()), svg_height.round());
        let colours: HashSet<[u8; 4]> =
            image.pixels().iter().map(|p| [p.red(), p.green(), p.blue(), p.alpha()]).collect();
        assert!(colours.len() > 20, "{} distinct colours", colours.len());
        // The sea, the land and at least three of the viridis classes are there.
        let has = |hex: &str| {
            let rgb = u32::from_str_radix(&hex[1..], 16).unwrap();
            let [_, r, g, b] = rgb.to_be_bytes();
            colours.contains(&[r, g, b, 255])
        };
        assert!(has("#dfe8ef") && has("#f3f0ea"));
        let classes = (0..6).filter(|&t| has(&crate::colour::viridis(f64::from(t) / 5.0))).count();
        assert!(classes >= 3, "{classes} viridis classes visible");
    }

    #[test]
    fn text_renders_with_the_embedded_font() {
        // The title band holds nothing but the title, so dark pixels there are
        // glyphs from the embedded font (resvg skips text it has no font for).
        let route = route("channel");
        let spec = spec(&route, Vec::new());
        let image = tiny_skia::Pixmap::decode_png(&png(&spec, 600).unwrap()).unwrap();
        assert_eq!(image.width(), 600);
        let band_rows = 30;
        let dark = image.pixels()[..600 * band_rows].iter().filter(|p| p.red() < 100 && p.alpha() == 255).count();
        assert!(dark > 300, "{dark} dark pixels in the title band");
        let mut no_title = spec.clone();
        no_title.title = String::new();
        let blank = tiny_skia::Pixmap::decode_png(&png(&no_title, 600).unwrap()).unwrap();
        let dark_blank = blank.pixels()[..600 * band_rows].iter().filter(|p| p.red() < 100).count();
        assert_eq!(dark_blank, 0);
    }

    #[test]
    fn png_width_is_checked() {
        let route = route("channel");
        let spec = spec(&route, Vec::new());
        for width_px in [0, MIN_PNG_WIDTH - 1, MAX_PNG_WIDTH + 1] {
            assert!(matches!(png(&spec, width_px), Err(MapError::InvalidWidth { .. })), "{width_px}");
        }
    }
}
