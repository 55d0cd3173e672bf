//! MNIST-style preprocessing (docs/PREPROCESSING.md) on digits drawn the way
//! users hand them over: any size, position, polarity, pixel format and
//! row stride, on uneven noisy paper. The inputs it makes must be the same
//! bytes on every CPU (the committed checksum; .ci/aarch64.sh runs this file
//! under qemu), classify as well as MNIST itself, and not depend on how the
//! pixels were laid out. Blank and noise images must give "no digit".

mod common;

use common::{repo, test_images, test_labels};
use microvit_engine::preprocess::{
    preprocess, NoDigit, PixelFormat, Polarity, PreprocessError, Scratch, SourceImage, MAX_SIDE,
};
use microvit_engine::{argmax, crc32c, InferError, Model};

const SIDE: usize = 28;

fn int8_model() -> Model<'static> {
    Model::from_bytes(&std::fs::read(repo("models/microvit-seed.int8.mvit")).unwrap()).unwrap()
}

/// xorshift32: the tests' deterministic noise and placement.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// A user's picture of an MNIST digit, as a packed gray canvas: the digit
/// (white on black, 28×28) scaled by `scale`/4 with integer bilinear
/// interpolation, at a random place on paper of a random level with a
/// horizontal lighting gradient and noise; dark ink on light paper unless
/// `light_ink`.
struct Drawing {
    width: usize,
    height: usize,
    gray: Vec<u8>,
}

fn draw(digit: &[u8], seed: u32, scale: usize, light_ink: bool) -> Drawing {
    let mut rng = Rng(seed.wrapping_mul(2_654_435_761).max(1));
    let size = SIDE * scale / 4;
    let (width, height) = (size + 20 + rng.below(200) as usize, size + 20 + rng.below(150) as usize);
    let (x0, y0) = (rng.below((width - size) as u32) as usize, rng.below((height - size) as u32) as usize);
    let paper = 150 + rng.below(90) as i32; // 150..240
    let slope = rng.below(81) as i32 - 40; // −40..40 across the canvas
    let contrast = 110 + rng.below(30) as i32;
    let mut gray = vec![0u8; width * height];
    for y in 0..height {
        for x in 0..width {
            let lit = paper + slope * x as i32 / width as i32;
            let ink = if (x0..x0 + size).contains(&x) && (y0..y0 + size).contains(&y) {
                sample(digit, (x - x0) * 256 * SIDE / size, (y - y0) * 256 * SIDE / size)
            } else {
                0
            };
            let noise = rng.below(13) as i32 - 6;
            let v = if light_ink { 255 - lit + ink * contrast / 255 } else { lit - ink * contrast / 255 };
            gray[y * width + x] = (v + noise).clamp(0, 255) as u8;
        }
    }
    Drawing { width, height, gray }
}

/// The digit's value at (x, y) in 1/256 pixels, bilinear.
fn sample(digit: &[u8], x: usize, y: usize) -> i32 {
    let (xi, yi, fx, fy) = (x / 256, y / 256, (x % 256) as i32, (y % 256) as i32);
    let at = |x: usize, y: usize| if x < SIDE && y < SIDE { digit[y * SIDE + x] as i32 } else { 0 };
    let top = at(xi, yi) * (256 - fx) + at(xi + 1, yi) * fx;
    let bottom = at(xi, yi + 1) * (256 - fx) + at(xi + 1, yi + 1) * fx;
    (top * (256 - fy) + bottom * fy) >> 16
}

/// The drawing in `format`, rows padded to a stride of `width × bpp + pad`.
fn layout(d: &Drawing, format: PixelFormat, pad: usize) -> (Vec<u8>, usize) {
    let stride = d.width * format.bytes_per_pixel() + pad;
    let mut bytes = vec![0xA5u8; stride * d.height];
    for y in 0..d.height {
        for x in 0..d.width {
            let v = d.gray[y * d.width + x];
            let px: &[u8] = match format {
                PixelFormat::Gray8 => &[v],
                PixelFormat::Rgb8 => &[v, v, v],
                PixelFormat::Rgba8 | PixelFormat::Bgra8 => &[v, v, v, 255],
            };
            let at = y * stride + x * px.len();
            bytes[at..at + px.len()].copy_from_slice(px);
        }
    }
    (bytes, stride)
}

fn prepare(
    pixels: &[u8],
    format: PixelFormat,
    width: usize,
    height: usize,
    stride: usize,
) -> Result<[u8; 784], NoDigit> {
    let mut scratch = Scratch::boxed();
    let mut input = [0u8; 784];
    let image = SourceImage::new(pixels, format, width, height, stride).unwrap();
    match preprocess(&image, Polarity::Auto, &mut scratch, SIDE, &mut input) {
        Ok(_) => Ok(input),
        Err(PreprocessError::NoDigit(why)) => Err(why),
        Err(e) => panic!("{e}"),
    }
}

/// The first 600 test digits drawn at scales 1× to 6×, a quarter of them
/// light on dark, in the four pixel formats with padded rows.
fn drawings() -> Vec<(Drawing, PixelFormat, u8)> {
    let (images, labels) = (test_images(), test_labels());
    let formats = [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8, PixelFormat::Bgra8];
    (0..600)
        .map(|i| {
            let digit = &images[i * 784..][..784];
            let drawing = draw(digit, i as u32 + 1, 4 + i % 21, i % 4 == 3);
            (drawing, formats[i % 4], labels[i])
        })
        .collect()
}

/// The bytes preprocessing makes are part of its definition: any change to
/// them must be deliberate (update docs/PREPROCESSING.md and this checksum
/// together). Run under qemu on aarch64 by .ci/aarch64.sh.
#[cfg_attr(miri, ignore)]
#[test]
fn preprocessing_is_bit_identical_everywhere() {
    let committed = std::fs::read_to_string(repo("tests/fixtures/preprocess.crc32c")).unwrap();
    let committed = u32::from_str_radix(committed.trim().trim_start_matches("0x"), 16).unwrap();
    let mut all = Vec::new();
    for (i, (d, format, _)) in drawings().iter().enumerate() {
        let (bytes, stride) = layout(d, *format, i % 5);
        match prepare(&bytes, *format, d.width, d.height, stride) {
            Ok(input) => all.extend_from_slice(&input),
            Err(why) => all.extend_from_slice(why.describe().as_bytes()),
        }
    }
    let got = crc32c(&all);
    assert_eq!(got, committed, "preprocessing changed: {got:#010x}, committed {committed:#010x}");
}

/// Drawn digits classify about as well as the MNIST digits they came from:
/// within 3 points here (bilinear upscales of 28-pixel digits are blurrier
/// than any real drawing); the 2-point goal is measured on the realistic
/// set (`microvit eval --images`, README).
#[cfg_attr(miri, ignore)]
#[test]
fn drawn_digits_classify_like_mnist() {
    let model = int8_model();
    let mut ws = model.workspace();
    let images = test_images();
    let (mut plain, mut drawn, mut none) = (0, 0, 0);
    let set = drawings();
    for (i, (d, format, label)) in set.iter().enumerate() {
        plain += (model.classify(&images[i * 784..][..784], &mut ws).unwrap() == *label as usize) as usize;
        let (bytes, stride) = layout(d, *format, 0);
        let image = SourceImage::new(&bytes, *format, d.width, d.height, stride).unwrap();
        match model.infer_image(&image, Polarity::Auto, &mut ws) {
            Ok(result) => drawn += (argmax(result.logits) == *label as usize) as usize,
            Err(InferError::NoDigit(why)) => {
                println!("drawing {i} ({}×{}, {format}): {why}", d.width, d.height);
                none += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let n = set.len();
    println!("plain MNIST {plain}/{n}, drawn {drawn}/{n}, no digit {none}");
    assert_eq!(none, 0, "a drawn digit was not found");
    assert!(drawn + 3 * n / 100 >= plain, "drawn digits: {drawn}/{n} correct, the MNIST originals {plain}/{n}");
}

/// The MNIST digits themselves come back almost unchanged (they were made
/// this way) and classify as well.
#[cfg_attr(miri, ignore)]
#[test]
fn mnist_digits_survive_a_round_trip() {
    let model = int8_model();
    let mut ws = model.workspace();
    let (images, labels) = (test_images(), test_labels());
    let n = 2000;
    let (mut plain, mut again, mut difference) = (0, 0, 0u64);
    for (digit, &label) in images.chunks_exact(784).zip(&labels).take(n) {
        plain += (model.classify(digit, &mut ws).unwrap() == label as usize) as usize;
        let input = prepare(digit, PixelFormat::Gray8, SIDE, SIDE, SIDE).unwrap();
        again += (model.classify(&input, &mut ws).unwrap() == label as usize) as usize;
        difference += digit.iter().zip(&input).map(|(&a, &b)| a.abs_diff(b) as u64).sum::<u64>();
    }
    let mean = difference as f64 / (n * 784) as f64;
    println!("plain {plain}/{n}, preprocessed again {again}/{n}, mean |difference| {mean:.2} per pixel");
    assert!(again + n / 200 >= plain, "round trip: {again}/{n} correct, the MNIST digits {plain}/{n}");
    assert!(mean < 2.0, "round trip changes the digits by {mean:.2} per pixel on average");
}

/// Layout does not matter: the same picture in every pixel format and with
/// any row padding, and its negative read as light ink, give one input.
#[cfg_attr(miri, ignore)]
#[test]
fn format_stride_and_polarity_do_not_change_the_input() {
    let images = test_images();
    for i in [0usize, 1, 7, 42] {
        let d = draw(&images[i * 784..][..784], 99 + i as u32, 12, false);
        let (gray, _) = layout(&d, PixelFormat::Gray8, 0);
        let reference = prepare(&gray, PixelFormat::Gray8, d.width, d.height, d.width).unwrap();
        for format in [PixelFormat::Gray8, PixelFormat::Rgb8, PixelFormat::Rgba8, PixelFormat::Bgra8] {
            for pad in [0, 1, 13] {
                let (bytes, stride) = layout(&d, format, pad);
                assert_eq!(
                    prepare(&bytes, format, d.width, d.height, stride).unwrap(),
                    reference,
                    "{format} pad {pad}"
                );
            }
        }
        // The negative, read as light ink on a dark ground.
        let negative: Vec<u8> = gray.iter().map(|&v| 255 - v).collect();
        let mut scratch = Scratch::boxed();
        let mut input = [0u8; 784];
        let image = SourceImage::packed(&negative, PixelFormat::Gray8, d.width, d.height).unwrap();
        let found = preprocess(&image, Polarity::Auto, &mut scratch, SIDE, &mut input).unwrap();
        assert_eq!(found.polarity, Polarity::LightOnDark);
        assert_eq!(input, reference, "digit {i}: the negative gives another input");
    }
}

/// A drawing on a transparent canvas (the strokes opaque, anti-aliased in
/// alpha) gives the same input as the strokes on white.
#[cfg_attr(miri, ignore)]
#[test]
fn transparent_canvases_are_read_as_paper() {
    let images = test_images();
    let digit = &images[..784];
    let d = draw(digit, 5, 16, false);
    let clean: Vec<u8> = (0..d.width * d.height)
        .map(|i| {
            let (x, y) = (i % d.width, i / d.width);
            let size = SIDE * 4;
            if x < size && y < size {
                sample(digit, x * 256 * SIDE / size, y * 256 * SIDE / size) as u8
            } else {
                0
            }
        })
        .collect();
    // Black strokes whose alpha is the ink, on a transparent canvas...
    let rgba: Vec<u8> = clean.iter().flat_map(|&a| [0, 0, 0, a]).collect();
    // ...and the same strokes composited on white by hand.
    let white: Vec<u8> = clean.iter().map(|&a| 255 - a).collect();
    let on_white = prepare(&white, PixelFormat::Gray8, d.width, d.height, d.width).unwrap();
    let transparent = prepare(&rgba, PixelFormat::Rgba8, d.width, d.height, 4 * d.width).unwrap();
    assert_eq!(transparent, on_white);
    // White strokes on a transparent canvas: over black, the same digit.
    let light: Vec<u8> = clean.iter().flat_map(|&a| [255, 255, 255, a]).collect();
    assert_eq!(prepare(&light, PixelFormat::Rgba8, d.width, d.height, 4 * d.width).unwrap(), on_white);
}

/// Moving the digit by whole analysis-grid blocks does not change the input.
#[cfg_attr(miri, ignore)]
#[test]
fn the_input_does_not_depend_on_where_the_digit_is() {
    let images = test_images();
    let digit = &images[3 * 784..][..784];
    let (size, width, height) = (84usize, 300usize, 200usize); // blocks of 3 pixels
    let mut inputs = Vec::new();
    for (x0, y0) in [(0, 0), (9, 30), (150, 99), (216, 116)] {
        let mut gray = vec![230u8; width * height];
        for y in 0..size {
            for x in 0..size {
                let ink = sample(digit, x * 256 * SIDE / size, y * 256 * SIDE / size);
                gray[(y0 + y) * width + x0 + x] = (230 - ink * 200 / 255) as u8;
            }
        }
        inputs.push(prepare(&gray, PixelFormat::Gray8, width, height, width).unwrap());
    }
    assert!(inputs.windows(2).all(|w| w[0] == w[1]), "the input changed with the position");
}

fn no_digit(pixels: &[u8], format: PixelFormat, width: usize, height: usize) -> NoDigit {
    let stride = width * format.bytes_per_pixel();
    match prepare(pixels, format, width, height, stride) {
        Ok(_) => panic!("{width}×{height} {format}: a digit was found"),
        Err(why) => why,
    }
}

#[cfg_attr(miri, ignore)]
#[test]
fn blank_and_noise_images_hold_no_digit() {
    assert_eq!(no_digit(&[255], PixelFormat::Gray8, 1, 1), NoDigit::Blank);
    assert_eq!(no_digit(&[0; 64 * 48], PixelFormat::Gray8, 64, 48), NoDigit::Blank);
    assert_eq!(no_digit(&[255; 640 * 480], PixelFormat::Gray8, 640, 480), NoDigit::Blank);
    assert_eq!(no_digit(&[9, 9, 9, 0].repeat(100 * 100), PixelFormat::Rgba8, 100, 100), NoDigit::Blank);
    // A smooth gradient, a vignette: lighting, not ink.
    let gradient: Vec<u8> = (0..300 * 200).map(|i| (60 + (i % 300) * 150 / 300) as u8).collect();
    assert_eq!(no_digit(&gradient, PixelFormat::Gray8, 300, 200), NoDigit::Blank);
    let vignette: Vec<u8> = (0..200 * 200)
        .map(|i| {
            let (x, y) = (i % 200 - 100, i / 200 - 100);
            (230 - (x * x + y * y) * 120 / 20_000).clamp(0, 255) as u8
        })
        .collect();
    assert_eq!(no_digit(&vignette, PixelFormat::Gray8, 200, 200), NoDigit::Blank);
    // Paper with sensor noise only.
    let mut rng = Rng(7);
    let noisy: Vec<u8> = (0..400 * 300).map(|_| (200 + rng.below(25) as i32 - 12) as u8).collect();
    assert_eq!(no_digit(&noisy, PixelFormat::Gray8, 400, 300), NoDigit::Blank);
    // Uniform random pixels, and dense salt and pepper: no digit either way.
    let random: Vec<u8> = (0..256 * 256).map(|_| rng.next() as u8).collect();
    no_digit(&random, PixelFormat::Gray8, 256, 256);
    let pepper: Vec<u8> = (0..300 * 300).map(|_| if rng.below(20) == 0 { 0 } else { 240 }).collect();
    assert_eq!(no_digit(&pepper, PixelFormat::Gray8, 300, 300), NoDigit::Scattered);
    // A speck.
    let mut speck = vec![255u8; 200 * 200];
    speck[100 * 200 + 100] = 0;
    speck[100 * 200 + 101] = 0;
    assert_eq!(no_digit(&speck, PixelFormat::Gray8, 200, 200), NoDigit::TooSmall);
    // A fine dark pattern covering three quarters of the page, read as dark
    // ink on light paper: ink everywhere. (Large dark areas are shadows to
    // the background estimate, not ink; Auto would read the light quarter
    // as specks of light ink.)
    let pattern: Vec<u8> =
        (0..200 * 200).map(|i| if (i % 200 / 4) % 2 == 1 && (i / 200 / 4) % 2 == 1 { 255 } else { 0 }).collect();
    let image = SourceImage::packed(&pattern, PixelFormat::Gray8, 200, 200).unwrap();
    let forced = preprocess(&image, Polarity::DarkOnLight, &mut Scratch::boxed(), SIDE, &mut [0; 784]);
    assert_eq!(forced.unwrap_err(), PreprocessError::NoDigit(NoDigit::MostlyInk));
}

/// The extremes of the accepted sizes run (bounded time and memory: the
/// scratch is all there is) and one-pixel-thin images are fine.
#[cfg_attr(miri, ignore)]
#[test]
fn extreme_shapes_are_handled() {
    let line: Vec<u8> = (0..MAX_SIDE).map(|x| if (4000..4100).contains(&x) { 0 } else { 255 }).collect();
    println!("{:?}", prepare(&line, PixelFormat::Gray8, MAX_SIDE, 1, MAX_SIDE).map(|_| ()));
    println!("{:?}", prepare(&line, PixelFormat::Gray8, 1, MAX_SIDE, 1).map(|_| ()));
    println!("{:?}", prepare(&line[..2], PixelFormat::Gray8, 2, 1, 2).map(|_| ()));
    // Every output side of the shape family.
    let images = test_images();
    let d = draw(&images[..784], 3, 8, false);
    let mut scratch = Scratch::boxed();
    for side in 1..=64 {
        let mut out = vec![0u8; side * side];
        let image = SourceImage::packed(&d.gray, PixelFormat::Gray8, d.width, d.height).unwrap();
        preprocess(&image, Polarity::Auto, &mut scratch, side, &mut out).unwrap();
        assert_eq!(out.iter().max(), Some(&255), "side {side}");
    }
    let image = SourceImage::packed(&d.gray, PixelFormat::Gray8, d.width, d.height).unwrap();
    for (side, len) in [(0, 0), (65, 65 * 65), (28, 783)] {
        let mut out = vec![0u8; len];
        let err = preprocess(&image, Polarity::Auto, &mut scratch, side, &mut out).unwrap_err();
        assert_eq!(err, PreprocessError::OutputSize { side, len });
    }
}
