//! `microvit bench` as a user runs it: what it prints and how it fails. No
//! timing assertions: speed goals live in the benchmarks, not in tests.

use std::process::{Command, Output};

use microvit_engine::Backend;

fn microvit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microvit")).args(args).output().expect("runs the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A JSON value, as much of JSON as the bench prints.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A small recursive-descent JSON parser; panics on anything malformed.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> Json {
        let mut p = Parser { s: text.as_bytes(), at: 0 };
        let v = p.value();
        p.ws();
        assert_eq!(p.at, p.s.len(), "trailing text after the JSON value: {:?}", &text[p.at..]);
        v
    }

    fn ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(self.s.get(self.at), Some(&c), "expected {:?} at byte {}", c as char, self.at);
        self.at += 1;
    }

    fn peek(&mut self) -> u8 {
        self.ws();
        *self.s.get(self.at).expect("unexpected end of JSON")
    }

    fn value(&mut self) -> Json {
        match self.peek() {
            b'[' => {
                self.eat(b'[');
                let mut items = Vec::new();
                if self.peek() == b']' {
                    self.eat(b']');
                    return Json::Array(items);
                }
                loop {
                    items.push(self.value());
                    match self.peek() {
                        b',' => self.eat(b','),
                        _ => break self.eat(b']'),
                    }
                }
                Json::Array(items)
            }
            b'{' => {
                self.eat(b'{');
                let mut fields = Vec::new();
                if self.peek() == b'}' {
                    self.eat(b'}');
                    return Json::Object(fields);
                }
                loop {
                    let Json::String(key) = self.value() else { panic!("object key is not a string") };
                    self.eat(b':');
                    fields.push((key, self.value()));
                    match self.peek() {
                        b',' => self.eat(b','),
                        _ => break self.eat(b'}'),
                    }
                }
                Json::Object(fields)
            }
            b'"' => {
                self.eat(b'"');
                let mut out = String::new();
                loop {
                    let c = self.s[self.at];
                    self.at += 1;
                    match c {
                        b'"' => break,
                        b'\\' => {
                            let e = self.s[self.at];
                            self.at += 1;
                            match e {
                                b'u' => {
                                    let hex = std::str::from_utf8(&self.s[self.at..self.at + 4]).unwrap();
                                    out.push(char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap());
                                    self.at += 4;
                                }
                                b'n' => out.push('\n'),
                                b't' => out.push('\t'),
                                other => out.push(other as char),
                            }
                        }
                        _ => {
                            // Copy the whole UTF-8 sequence.
                            let start = self.at - 1;
                            let len = match c {
                                0x00..=0x7f => 1,
                                0xc0..=0xdf => 2,
                                0xe0..=0xef => 3,
                                _ => 4,
                            };
                            out.push_str(std::str::from_utf8(&self.s[start..start + len]).unwrap());
                            self.at = start + len;
                        }
                    }
                }
                Json::String(out)
            }
            b'n' => self.word("null", Json::Null),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            _ => {
                let start = self.at;
                while self.at < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.at]) {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).unwrap();
                Json::Number(text.parse().unwrap_or_else(|_| panic!("bad number {text:?} at byte {start}")))
            }
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Json {
        assert!(self.s[self.at..].starts_with(w.as_bytes()), "expected {w} at byte {}", self.at);
        self.at += w.len();
        v
    }
}

#[test]
fn the_json_parser_reads_what_it_should() {
    let v = Parser::parse(r#" [ {"a": 1.5e3, "b": "x\"\u00e9", "c": null, "d": [true, false]}, {} ] "#);
    let Json::Array(items) = &v else { panic!() };
    assert_eq!(items[0].get("a"), Some(&Json::Number(1500.0)));
    assert_eq!(items[0].get("b"), Some(&Json::String("x\"é".into())));
    assert_eq!(items[0].get("c"), Some(&Json::Null));
    assert_eq!(items[1], Json::Object(vec![]));
}

#[test]
fn json_has_one_object_per_dtype_and_backend_with_positive_figures() {
    let o = microvit(&["bench", "--seconds", "0.2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let Json::Array(runs) = Parser::parse(&stdout(&o)) else { panic!("not an array: {}", stdout(&o)) };
    let available = Backend::available();
    // f32 runs on scalar only; f16 and int8 on every backend this CPU has
    // that holds a kernel for them (a run on the others would be scalar's).
    let runs_on = |file: &str| {
        let bytes = std::fs::read(microvit_dataset::repo_root().join("models").join(file)).unwrap();
        let mut model = microvit_engine::Model::from_bytes(&bytes).unwrap();
        let mut has = |&b: &Backend| model.set_backend(b).is_ok() && model.backend() == b;
        available.iter().filter(|b| has(b)).count()
    };
    let f16_runs = runs_on("microvit-seed.f16.mvit");
    let int8_runs = runs_on("microvit-seed.int8.mvit");
    assert_eq!(int8_runs, available.len(), "every backend has an int8 kernel");
    assert_eq!(runs.len(), 1 + f16_runs + int8_runs, "{}", stdout(&o));
    let mut seen = Vec::new();
    for run in &runs {
        for key in
            ["us_per_digit_min", "us_per_digit_p50", "us_per_digit_p99", "us_per_digit_mean", "digits_per_second"]
        {
            match run.get(key) {
                Some(Json::Number(v)) => assert!(v.is_finite() && *v > 0.0, "{key} = {v} in {run:?}"),
                other => panic!("{key} is {other:?} in {run:?}"),
            }
        }
        let p50 = |k| match run.get(k) {
            Some(Json::Number(v)) => *v,
            _ => unreachable!(),
        };
        assert!(
            p50("us_per_digit_min") <= p50("us_per_digit_p50") && p50("us_per_digit_p50") <= p50("us_per_digit_p99")
        );
        let (Some(Json::String(dtype)), Some(Json::String(backend))) = (run.get("dtype"), run.get("backend")) else {
            panic!("dtype and backend must be strings in {run:?}")
        };
        assert!(["f32", "f16", "int8"].contains(&dtype.as_str()), "{dtype}");
        assert!(available.iter().any(|b| b.name() == backend), "{backend}");
        if dtype == "f32" {
            assert_eq!(backend, "scalar");
        }
        // An accuracy only over the whole test set (95.40 % for every
        // dtype); none when the warm-up ran out of time first.
        match (run.get("accuracy"), run.get("accuracy_digits")) {
            (Some(Json::Number(a)), Some(Json::Number(n))) if *n == 10_000.0 => {
                assert!((0.953..=0.955).contains(a), "accuracy {a}")
            }
            (Some(Json::Null), Some(Json::Number(n))) => assert!(*n < 10_000.0, "{run:?}"),
            other => panic!("accuracy is {other:?}"),
        }
        assert_eq!(run.get("batch"), Some(&Json::Null));
        seen.push((dtype.clone(), backend.clone()));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), runs.len(), "a dtype × backend ran twice: {seen:?}");
}

#[test]
fn the_table_names_every_available_backend() {
    let o = microvit(&["bench", "--seconds", "0.1", "--dtype", "int8,f32", "--batch", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("p50 µs") && out.contains("digits/s") && out.contains("batch100"), "{out}");
    for backend in Backend::available() {
        let row = format!("int8  {:<7}", backend.name());
        assert!(out.lines().any(|l| l.starts_with(&row)), "no row {row:?} in\n{out}");
    }
    assert!(out.lines().any(|l| l.starts_with("f32   scalar")), "{out}");
    assert!(!out.contains("f16"), "f16 was not asked for:\n{out}");
    if Backend::available().len() > 1 {
        assert!(out.contains("f32 is the scalar reference"), "{out}");
    }
}

#[test]
fn an_unknown_or_unavailable_backend_fails_with_a_message() {
    let o = microvit(&["bench", "--backend", "sse9"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("microvit: error: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown backend \"sse9\""), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));

    let missing = Backend::ALL.into_iter().find(|b| !b.is_available()).expect("no CPU has every backend");
    let o = microvit(&["bench", "--backend", missing.name()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not available on this CPU"), "{}", stderr(&o));
}

#[test]
fn a_bad_model_or_argument_fails_with_a_message() {
    let o = microvit(&["bench", "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("Cargo.toml"), "{}", stderr(&o));

    for args in [&["bench", "--threads", "0"][..], &["bench", "--batch", "0"], &["bench", "--seconds", "0"]] {
        let o = microvit(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("microvit: error: --"), "{args:?}: {}", stderr(&o));
    }
}

/// Issue #18: `--seconds 1e-300` panicked (index out of bounds), `--batch
/// 4611686018427387904` panicked in a worker and deadlocked the main thread
/// on the start barrier, `--batch 10000000` aborted on an 8 GB allocation,
/// `--threads 20000` aborted. Each is now a usage message, at once.
#[test]
fn out_of_range_numbers_fail_cleanly_and_at_once() {
    let cases: [(&[&str], &str); 10] = [
        (&["--seconds", "1e-300"], "--seconds must be a number of seconds from 0.001 to 3600, not 1e-300"),
        (&["--seconds", "1e300"], "--seconds must be a number of seconds from 0.001 to 3600"),
        (&["--seconds", "NaN"], "--seconds must be a number of seconds from 0.001 to 3600, not NaN"),
        (&["--seconds", "inf"], "--seconds must be a number of seconds from 0.001 to 3600, not inf"),
        (&["--batch", "4611686018427387904"], "--batch must be from 1 to 10000 digits"),
        (&["--batch", "10000000"], "--batch must be from 1 to 10000 digits (the test set's size), not 10000000"),
        (&["--batch", "10001"], "--batch must be from 1 to 10000"),
        (&["--threads", "20000"], "--threads must be from 1 to 256, not 20000"),
        (&["--threads", "257"], "--threads must be from 1 to 256, not 257"),
        (&["--threads", "64", "--batch", "10000"], "--threads × --batch must be at most 262144 digits in flight"),
    ];
    for (args, needle) in cases {
        let started = std::time::Instant::now();
        let o = microvit(&[&["bench"][..], args].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with(&format!("microvit: error: {needle}")), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
        assert!(started.elapsed().as_secs() < 30, "{args:?} took {:?}", started.elapsed());
    }
    // The largest batch and the shortest time still run (one block each).
    let o = microvit(&[
        "bench",
        "--dtype",
        "int8",
        "--backend",
        "scalar",
        "--batch",
        "10000",
        "--seconds",
        "0.001",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let Json::Array(runs) = Parser::parse(&stdout(&o)) else { panic!("{}", stdout(&o)) };
    assert_eq!(runs[0].get("batch"), Some(&Json::Number(10_000.0)), "{}", stdout(&o));
    assert!(matches!(runs[0].get("us_per_digit_p50"), Some(Json::Number(us)) if *us > 0.0), "{}", stdout(&o));
}

#[test]
fn two_threads_share_one_int8_model() {
    let o = microvit(&["bench", "--threads", "2", "--dtype", "int8", "--seconds", "0.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 threads"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("int8 ")).count(), Backend::available().len(), "{out}");

    let o = microvit(&["bench", "--threads", "2", "--dtype", "int8", "--seconds", "0.1", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let Json::Array(runs) = Parser::parse(&stdout(&o)) else { panic!() };
    assert!(runs.iter().all(|r| r.get("threads") == Some(&Json::Number(2.0))), "{}", stdout(&o));
}

#[test]
fn a_safetensors_model_is_converted_to_each_dtype() {
    let model = microvit_dataset::repo_root().join("models/microvit-seed.safetensors");
    let o = microvit(&[
        "bench",
        model.to_str().unwrap(),
        "--dtype",
        "f16",
        "--dtype",
        "int8",
        "--backend",
        "scalar",
        "--seconds",
        "0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.starts_with("f16   scalar")) && out.lines().any(|l| l.starts_with("int8  scalar")),
        "{out}"
    );
}
